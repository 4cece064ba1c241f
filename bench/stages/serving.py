"""Serving stage: single-query latency and batch throughput of every fitted model, on the path
its class declares (``serving_modes``: known user, and new user where it differs). Every
(model, path) is measured in rounds that alternate across all of them (``serving_profiles``),
so a burst of load on a shared machine lands on one round of each rather than on one model."""

from __future__ import annotations

import numpy as np

from ..context import RunContext, Section


def run(ctx: RunContext) -> Section:
    from mfsoftmax.models import Queries

    from ..serving import serving_profiles

    out = Section()
    scfg = ctx.cfg["serving"]
    train = ctx.split.train
    active = np.flatnonzero(train.user_activity() > 0)
    rng = np.random.default_rng(ctx.seed)
    users = np.sort(rng.choice(active, size=min(len(active), int(scfg["queries"])), replace=False))
    known_q = Queries(users, train.matrix[users], known=True)
    test = ctx.split.test
    new_q = Queries(test.users, test.history, known=test.known_users)
    specs, owners = [], []  # owners[i] = (model name, whether it is the model's main profile)
    for name, model in ctx.fitted.items():
        known_mode, new_mode = model.serving_modes
        specs.append((model, known_q, known_mode))
        owners.append((name, True))
        if new_mode and not test.known_users:
            specs.append((model, new_q, new_mode))
            owners.append((name, False))
    rows = []
    for (name, main), prof in zip(owners, serving_profiles(specs, scfg), strict=True):
        rows.append({"model": name, **prof})
        if main:
            out.model(name)["serving"] = prof
            ctx.say(f"  {name}: p50 {prof['p50_min_us']:.0f} us (fastest round's median; "
                    f"pooled {prof['p50_us']:.0f} us, {prof['mode']})")
    out.top["serving"] = rows
    return out
