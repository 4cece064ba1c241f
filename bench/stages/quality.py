"""Quality stage: tune each model on the validation users (the same trial budget for all), fit,
measure training cost, and evaluate on the test users; with ``quality.seeds`` > 1 the tuned model
is retrained with further seeds, so every figure and every pair's gap carries the training-seed
spread as well as the users' (``models.<name>.quality_seeds``; paired rows by user and seed)."""

from __future__ import annotations

import inspect
import traceback

import numpy as np

from mfsoftmax.evaluation import evaluate, standard_errors
from mfsoftmax.runtime import to_jsonable

from ..context import RunContext, Section, StageFailed, build_model, spark_defaults
from ..measure import timed_fit
from ..tuning import search as tune
from .paired import paired_rows, paired_rows_seeds

#: this stage's config sections and their defaults (bench/config.py assembles them)
DEFAULTS = {
    # sampler: "tpe" (Optuna's seeded TPE; trial 0 = the configured params) or "random"
    "tuning": {"trials": 4, "metric": "recall@20", "sampler": "tpe"},
    # seeds: train each tuned model with this many seeds (seed, seed + 1, ...): figures are means
    # over seeds and every gap's error includes the seeds' spread
    "quality": {"seeds": 1},
}
#: what ``--quick`` shrinks them to (a smoke run)
QUICK = {"tuning": {"trials": 1}, "quality": {"seeds": 1}}


def run(ctx: RunContext) -> Section:
    out = Section()
    ctx.partial = out  # a stop at the time budget keeps the models finished before it
    split = ctx.split
    metric = ctx.cfg["tuning"]["metric"]
    trials = int(ctx.cfg["tuning"]["trials"])
    sampler = ctx.cfg["tuning"].get("sampler", "tpe")
    curve_users = split.valid.subset(np.arange(min(len(split.valid), 2000)))
    pop = split.train.item_popularity()

    def curve_fn(m):
        return evaluate(m, curve_users, ks=(10,))["recall@10"]

    n_seeds = int(ctx.cfg["quality"]["seeds"])
    failures, per_users, seed_runs = [], {}, {}
    for name, spec in ctx.model_specs():
        ctx.say(f"  {name}: {trials} trial(s) of {sampler} search on validation {metric}")
        try:
            def fit_and_score(params, name=name):
                model = ctx.build(name, params)
                training = timed_fit(model, split.train, split.valid, curve_fn=curve_fn)
                valid = evaluate(model, split.valid, ks=ctx.ks)
                return valid[metric], (model, training, valid)

            space = spec.get("search", {})
            search = tune(fit_and_score, _fixed(ctx, name, spec.get("params", {}), space), space,
                          trials, ctx.seed, where=f"models.{name}.search", sampler=sampler)
            model, training, valid = search["best_payload"]
            test, per_user = evaluate(model, split.test, ks=ctx.ks, item_popularity=pop,
                                      per_user=True)
            replicas = _replicas(ctx, name, search["best_params"], n_seeds, pop)
        except Exception as exc:
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            ctx.say(traceback.format_exc().rstrip())
            continue
        per_users[name] = per_user
        seed_runs[name] = [(test, per_user)] + [r or (test, per_user) for r in replicas]
        ctx.fitted[name] = model
        ctx.per_user[name] = per_user  # of this fitted model (the first seed)
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
                       "sampler": search["sampler"], "metric": metric, "best_params": to_jsonable(search["best_params"]),
                       "best_valid": search["best_score"], "history": to_jsonable(search["trials"])},
        }
        if n_seeds > 1:
            out.models[name].update(_seed_figures(seed_runs[name]))
        ctx.say(f"  {name}: test recall@20 {out.models[name]['quality'].get('recall@20', float('nan')):.4f}, "
                f"train {training['wall_s']:.2f}s")
    out.top["quality_paired_se"] = (paired_rows(per_users) if n_seeds <= 1 else
                                    paired_rows_seeds({n: [p for _, p in r] for n, r in seed_runs.items()}))
    if failures:
        raise StageFailed("; ".join(failures), out)
    return out


def _fixed(ctx: RunContext, name: str, params: dict, space: dict) -> dict:
    """The configured params plus, for each searched key they leave out, the class default, so
    trial 0 of the search is exactly the configured model."""
    sig = inspect.signature(ctx.model_class(name).__init__).parameters
    defaults = {k: sig[k].default for k in space
                if k not in params and k in sig and sig[k].default is not inspect.Parameter.empty}
    return {**defaults, **params}


def _replicas(ctx: RunContext, name: str, params: dict, n_seeds: int, pop) -> list:
    """``(test metrics, per-user arrays)`` of the tuned model retrained with seeds ``seed + 1``
    ... ``seed + n_seeds - 1`` (a model without a seed is deterministic: its one fit repeats)."""
    if n_seeds <= 1:
        return []
    spec = ctx.cfg["models"][name]
    seeded = "seed" in inspect.signature(ctx.model_class(name).__init__).parameters
    out = []
    for i in range(1, n_seeds):
        if not seeded:
            out.append(out[-1] if out else None)
            continue
        model = build_model(spec["kind"], name, spark_defaults(dict(params), ctx.cfg),
                            ctx.seed + i, ctx.threads)
        model.fit(ctx.split.train, valid=ctx.split.valid)
        out.append(evaluate(model, ctx.split.test, ks=ctx.ks, item_popularity=pop, per_user=True))
        ctx.say(f"  {name}: seed {ctx.seed + i}: test recall@20 "
                f"{out[-1][0].get('recall@20', float('nan')):.4f}")
    return out


def _seed_figures(runs: list) -> dict:
    """``quality`` as the mean over seeds, ``quality_se`` over users of the seed-averaged
    per-user values, and per metric the values per seed and their spread."""
    first_test, first_per = runs[0]
    metrics = [k for k in first_test if k != "n_users"]
    per_seed = {k: [float(t[k]) if t[k] is not None else None for t, _ in runs] for k in metrics}
    mean = {k: (float(np.mean(v)) if all(x is not None for x in v) else None)
            for k, v in per_seed.items()}
    sd = {k: (float(np.std(v, ddof=1)) if all(x is not None for x in v) else None)
          for k, v in per_seed.items()}
    averaged = {k: np.mean([p[k] for _, p in runs], axis=0) for k in first_per}
    return {"quality": mean, "quality_se": standard_errors(averaged),
            "quality_seeds": per_seed, "quality_seed_sd": sd, "n_seeds": len(runs)}
