"""Training cost of one pass (the class's ``one_pass`` parameters) against the data size: the
first MF model and ``sweeps.train_dnn``."""

from __future__ import annotations

from ..context import RunContext, Section
from ..sweeps import training_vs_size


def run(ctx: RunContext) -> Section:
    sw = ctx.cfg["sweeps"]
    builders = {}
    mf = [n for n, _ in ctx.model_specs(("mf",))]
    chosen = mf[:1] + ([sw["train_dnn"]] if sw.get("train_dnn") in ctx.cfg["models"] else [])
    for n in chosen:
        p = {**ctx.tuned_params(n), **ctx.model_class(n).one_pass}
        builders[n] = lambda n=n, p=p: ctx.build(n, p)
    rows = training_vs_size(sw["train_sizes"], builders, n_items=int(sw["train_items"]),
                            seed=ctx.seed, time_budget_s=float(sw["time_budget_s"]))
    return Section(sweeps={"training_vs_size": rows})
