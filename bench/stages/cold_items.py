"""New-item stage: Recall@10 on items unseen in training as n_known of their interactions are
revealed; each model refitted on the new-items split with its ``suite.new_item_params`` (the DNN's
item tower), every pair paired by user at every point. When an item side table lists items with
no interaction at all (``meta["new_items"]``), the same models also rank those true new items
at n_known = 0 (``cold_items_new``: how many, and where each model puts them; no targets, so no
recall)."""

from __future__ import annotations

from ..coldstart import new_item_curve, true_new_item_ranks
from ..context import RunContext, Section
from . import require
from .paired import paired_rows_by_point

#: this stage's config sections and their defaults (bench/config.py assembles them)
DEFAULTS = {
    # item_frac: the share of items held out as new; k: the cut-off of the true new items' ranks
    "cold_start": {"n_known_items": [0, 1, 2, 5, 10], "item_frac": 0.1, "k": 10, "models": []},
}
#: what ``--quick`` shrinks them to (a smoke run)
QUICK = {"cold_start": {"n_known_items": [0, 1, 5]}}
#: what it needs from earlier stages: {RunContext attribute: the stage that fills it}
USES = {"best_params": "quality"}

NEEDS = "item_features"


def run(ctx: RunContext) -> Section:
    require(ctx, "cold_start_items", USES)
    out = Section()
    cs = ctx.cfg["cold_start"]
    split = ctx.split_for("new-items", item_frac=float(cs["item_frac"]))
    names = [n for n in (cs.get("models") or list(ctx.best_params)) if n in ctx.best_params]
    models = {}
    for name in ctx.log.steps(names, "new-item refits", plain=True):
        models[name] = ctx.fitted_on(split, False, name, **ctx.model_class(name).suite.new_item_params)
    curves, per = new_item_curve(models, split, n_known=cs["n_known_items"], ks=(10,),
                                 seed=ctx.seed, per_user=True)
    for name, rows in curves.items():
        out.model(name)["cold_start"] = {"items": rows}
    out.top["cold_items_paired_se"] = paired_rows_by_point(per, cs["n_known_items"])
    new = ctx.data.meta.get("new_items")
    if new is not None and len(new["ids"]):
        out.top["cold_items_new"] = true_new_item_ranks(models, split, new, k=int(cs["k"]))
    return out
