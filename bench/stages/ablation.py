"""Feature ablation: the best (or ``ablation.base``) model with ``suite.ablation_switches``
refitted with history only, user features only, and both (when the data has user features);
when it has item features and the model an ``item_tower``, also with item features switched
on and off (the rest as tuned); next to every model's declared reference row
(``suite.ablation_inputs``); warm and with 0 revealed items, lifts paired by user. Each row says
which inputs it had (``history``, ``user_features``, ``item_features``)."""

from __future__ import annotations

import inspect

from mfsoftmax.evaluation import evaluate

from ..coldstart import new_user_curve
from ..context import MissingInput, RunContext, Section
from .paired import add_lift_se

#: this stage's config sections and their defaults (bench/config.py assembles them)
DEFAULTS = {"ablation": {"base": None}}

NEEDS = "features"  # user or item features (bench/runner.py)


def run(ctx: RunContext) -> Section:
    switchable = [n for n, _ in ctx.model_specs() if ctx.model_class(n).suite.ablation_switches]
    base = ctx.cfg["ablation"].get("base") or ctx.best_softmax(switchable)
    if base is None:
        raise MissingInput("no fitted model with ablation switches (use_history, "
                           "use_user_features) to ablate")
    hist_key, feat_key = ctx.model_class(base).suite.ablation_switches
    split, reuse = ctx.cold_split()
    has_uf = bool(ctx.data.user_features)
    variants = ([("history", True, False), ("user features", False, True), ("both", True, True)]
                if has_uf else [("history", True, False)])
    rows, pers = [], []
    tower = _item_tower(ctx, base)
    for label, hist, feats in variants:
        as_tuned = hist and (feats or not has_uf)  # without user features: history only
        model = ctx.fitted_on(split, reuse and as_tuned, base,
                              **({} if as_tuned else {hist_key: hist, feat_key: feats}))
        rows.append(_row(ctx, base, model, split, hist, feats, new_user_curve, label, pers))
        rows[-1]["item_features"] = bool(tower)
    if ctx.data.item_features and tower is not None:
        # the last variant (history + what user features there are) with the item tower flipped
        on = tower or "add"
        hist, feats = True, has_uf
        model = ctx.fitted_on(split, False, base, **{hist_key: hist, feat_key: feats,
                                                     "item_tower": None if tower else on})
        label = rows[-1]["inputs"] + (", no item features" if tower else f" + item features ({on})")
        rows.append(_row(ctx, base, model, split, hist, feats, new_user_curve, label, pers))
        rows[-1]["item_features"] = not tower
    for name, _ in ctx.model_specs():
        inputs = ctx.model_class(name).suite.ablation_inputs
        if inputs is not None and name in ctx.best_params:
            model = ctx.fitted_on(split, reuse, name)
            hist, feats, label = inputs
            rows.append(_row(ctx, name, model, split, hist, feats, new_user_curve, label, pers))
    add_lift_se(rows, pers)
    return Section(top={"ablation": rows})


def _item_tower(ctx, name: str):
    """The tuned ``item_tower`` of ``name`` ("" when off), or None when its class has none."""
    if "item_tower" not in inspect.signature(ctx.model_class(name)).parameters:
        return None
    return ctx.tuned_params(name).get("item_tower") or ""


def _row(ctx, name, model, split, hist, feats, curve, label, pers) -> dict:
    """One ablation row; its per-user warm and 0-item arrays are appended to ``pers``."""
    res, warm = evaluate(model, split.test, ks=(20,), per_user=True)
    cold, cold_per = curve({name: model}, split.test, n_known=(0,), ks=(20,), seed=ctx.seed,
                           per_user=True)
    cold = cold[name][0]
    pers.append({**{k: warm[k] for k in ("recall@20", "ndcg@20")},
                 **{f"cold_{k}": cold_per[name][0][k] for k in ("recall@20", "ndcg@20")}})
    return {"model": name, "inputs": label, "family": model.family, "history": hist,
            "user_features": feats,
            "recall@20": res["recall@20"], "ndcg@20": res["ndcg@20"],
            "cold_recall@20": cold["recall@20"], "cold_ndcg@20": cold["ndcg@20"]}
