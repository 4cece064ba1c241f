"""Training cost of one pass (the class's ``suite.one_pass`` parameters: an ALS iteration, a DNN
epoch) against the data size, for ``sweeps.train_models`` (default: the first MF model and
``sweeps.train_dnn``), each with its tuned params, ``sweeps.train_params`` over them and its
``[engines]`` (so a scale-out config lines up engines and worker counts side by side)."""

from __future__ import annotations

from ..context import RunContext, Section
from ..sweeps import training_vs_size

#: this stage's config sections and their defaults (bench/config.py assembles them)
DEFAULTS = {
    # one pass (an ALS iteration, a DNN epoch) of each of train_models (names of [models]; [] =
    # the first MF model and train_dnn) on synthetic data of each of train_sizes interactions
    # over train_items items; train_params: per-model params for the sweep only, over the tuned
    # ones (e.g. the literature's dims: wals = { dim = 256 }).
    "sweeps": {"train_sizes": [100000, 300000, 1000000], "train_items": 10000,
               "train_dnn": "softmax-sampled-uniform", "time_budget_s": 120, "train_models": [],
               "train_params": {}},
}
#: what ``--quick`` shrinks them to (a smoke run)
QUICK = {"sweeps": {"train_sizes": [20000, 60000], "train_items": 2000, "time_budget_s": 20}}


def chosen_models(ctx: RunContext) -> list[str]:
    """The models the sweep times: ``sweeps.train_models``, else the first MF model and
    ``sweeps.train_dnn`` (when configured)."""
    sw = ctx.cfg["sweeps"]
    if sw.get("train_models"):
        return list(sw["train_models"])
    mf = [n for n, _ in ctx.model_specs(("mf",))]
    return mf[:1] + ([sw["train_dnn"]] if sw.get("train_dnn") in ctx.cfg["models"] else [])


def run(ctx: RunContext) -> Section:
    sw = ctx.cfg["sweeps"]
    builders, families = {}, {}
    for n in chosen_models(ctx):
        p = {**ctx.tuned_params(n), **(sw.get("train_params") or {}).get(n, {}),
             **ctx.model_class(n).suite.one_pass}
        builders[n] = lambda n=n, p=p: ctx.build(n, p)
        families[n] = ctx.family(n)
    rows = training_vs_size(sw["train_sizes"], builders, n_items=int(sw["train_items"]),
                            seed=ctx.seed, time_budget_s=float(sw["time_budget_s"]),
                            families=families, say=ctx.say)
    return Section(sweeps={"training_vs_size": rows})
