"""Query-feature ablation: the best (or ``ablation.base``) model with ``ablation_switches``
refitted with history only, user features only, and both; next to every model's declared
reference row (``ablation_inputs``); warm and with 0 revealed items, lifts paired by user."""

from __future__ import annotations

from mfsoftmax.evaluation import evaluate

from ..coldstart import new_user_curve
from ..context import MissingInput, RunContext, Section
from .paired import add_lift_se

NEEDS = "user_features"


def run(ctx: RunContext) -> Section:
    switchable = [n for n, _ in ctx.model_specs() if ctx.model_class(n).ablation_switches]
    base = ctx.cfg["ablation"].get("base") or ctx.best_softmax(switchable)
    if base is None:
        raise MissingInput("no fitted model with ablation switches (use_history, "
                           "use_user_features) to ablate")
    hist_key, feat_key = ctx.model_class(base).ablation_switches
    split, reuse = ctx.cold_split()
    variants = [("history", True, False), ("user features", False, True), ("both", True, True)]
    rows, pers = [], []
    for label, hist, feats in variants:
        model = ctx.fitted_on(split, reuse and hist and feats, base,
                              **({} if hist and feats else {hist_key: hist, feat_key: feats}))
        rows.append(_row(ctx, base, model, split, hist, feats, new_user_curve, label, pers))
    for name, _ in ctx.model_specs():
        inputs = ctx.model_class(name).ablation_inputs
        if inputs is not None and name in ctx.best_params:
            model = ctx.fitted_on(split, reuse, name)
            hist, feats, label = inputs
            rows.append(_row(ctx, name, model, split, hist, feats, new_user_curve, label, pers))
    add_lift_se(rows, pers)
    return Section(top={"ablation": rows})


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
