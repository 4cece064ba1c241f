"""MF's offline option: the top-k of every user precomputed (time and bytes)."""

from __future__ import annotations

from ..context import MissingInput, RunContext, Section
from ..sweeps import offline_topk

#: this stage's config sections and their defaults (bench/config.py assembles them)
DEFAULTS = {"offline_topk": {"k": 100}}


def run(ctx: RunContext) -> Section:
    mf = [n for n, m in ctx.fitted.items() if m.family == "mf"]
    if not mf:
        raise MissingInput("no fitted MF model")
    model = ctx.fitted[mf[0]]
    return Section(top={"offline_topk": {"model": mf[0], **offline_topk(
        model, ctx.split.train.n_users, k=int(ctx.cfg["offline_topk"]["k"]))}})
