"""Serving cost against the corpus size (exact and ANN), ``sweeps.corpus_sizes``."""

from __future__ import annotations

from ..context import RunContext, Section


def run(ctx: RunContext) -> Section:
    from ..sweeps import serving_vs_corpus

    sw = ctx.cfg["sweeps"]
    rows = serving_vs_corpus(
        sw["corpus_sizes"], dim=int(sw["dim"]), n_queries=int(sw["queries"]), ann=sw["ann"],
        ann_ef=int(sw["ann_ef"]), seed=ctx.seed, time_budget_s=float(sw["time_budget_s"]),
        log=ctx.log)
    return Section(sweeps={"serving_vs_corpus": rows})
