"""Serving stage: single-query latency and batch throughput of every fitted model, on the path
its class declares (``serving_modes``: known user, and new user where it differs)."""

from __future__ import annotations

import numpy as np

from ..context import RunContext, Section


def run(ctx: RunContext) -> Section:
    from mfsoftmax.models import Queries

    from ..serving import serving_profile

    out = Section()
    scfg = ctx.cfg["serving"]
    train = ctx.split.train
    active = np.flatnonzero(train.user_activity() > 0)
    rng = np.random.default_rng(ctx.seed)
    users = np.sort(rng.choice(active, size=min(len(active), int(scfg["queries"])), replace=False))
    known_q = Queries(users, train.matrix[users], known=True)
    test = ctx.split.test
    new_q = Queries(test.users, test.history, known=test.known_users)
    rows = []
    for name, model in ctx.fitted.items():
        known_mode, new_mode = model.serving_modes
        prof = serving_profile(model, known_q, scfg, known_mode)
        rows.append({"model": name, **prof})
        if new_mode and not test.known_users:
            rows.append({"model": name, **serving_profile(model, new_q, scfg, new_mode)})
        out.model(name)["serving"] = prof
        ctx.say(f"  {name}: p50 {prof['p50_us']:.0f} us ({prof['mode']})")
    out.top["serving"] = rows
    return out
