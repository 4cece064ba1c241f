"""Quality stage: tune each model on the validation users (the same trial budget for all), fit,
measure training cost, and evaluate on the test users; every pair of models paired by user."""

from __future__ import annotations

import traceback

import numpy as np

from mfsoftmax.evaluation import evaluate, standard_errors
from mfsoftmax.runtime import to_jsonable

from ..context import RunContext, Section, StageFailed
from .paired import paired_rows


def run(ctx: RunContext) -> Section:
    from ..measure import timed_fit
    from ..tuning import random_search

    out = Section()
    split = ctx.split
    metric = ctx.cfg["tuning"]["metric"]
    trials = int(ctx.cfg["tuning"]["trials"])
    curve_users = split.valid.subset(np.arange(min(len(split.valid), 2000)))
    pop = split.train.item_popularity()

    def curve_fn(m):
        return evaluate(m, curve_users, ks=(10,))["recall@10"]

    failures, per_users = [], {}
    for name, spec in ctx.model_specs():
        ctx.say(f"  {name}: {trials} trial(s) of random search on validation {metric}")
        try:
            def fit_and_score(params, name=name):
                model = ctx.build(name, params)
                training = timed_fit(model, split.train, split.valid, curve_fn=curve_fn)
                valid = evaluate(model, split.valid, ks=ctx.ks)
                return valid[metric], (model, training, valid)

            search = random_search(fit_and_score, spec.get("params", {}), spec.get("search", {}),
                                   trials, ctx.seed, where=f"models.{name}.search")
            model, training, valid = search["best_payload"]
            test, per_user = evaluate(model, split.test, ks=ctx.ks, item_popularity=pop,
                                      per_user=True)
        except Exception as exc:
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            ctx.say(traceback.format_exc().rstrip())
            continue
        per_users[name] = per_user
        ctx.fitted[name] = model
        ctx.best_params[name] = search["best_params"]
        ctx.valid_scores[name] = search["best_score"]
        out.models[name] = {
            "family": model.family,
            "embedding_role": model.embedding_role(),
            "params": to_jsonable(model.get_params() or search["best_params"]),
            "quality": {k: v for k, v in test.items() if k != "n_users"},
            "quality_se": standard_errors(per_user),
            "n_test_users": test["n_users"],
            "validation": {k: v for k, v in valid.items() if k != "n_users"},
            "training": training,
            "tuning": {"trials": len(search["trials"]), "search_s": search["search_s"],
                       "metric": metric, "best_params": to_jsonable(search["best_params"]),
                       "best_valid": search["best_score"], "history": to_jsonable(search["trials"])},
        }
        ctx.say(f"  {name}: test recall@20 {test.get('recall@20', float('nan')):.4f}, "
                f"train {training['wall_s']:.2f}s")
    out.top["quality_paired_se"] = paired_rows(per_users)
    if failures:
        raise StageFailed("; ".join(failures), out)
    return out
