"""New-user stage: Recall/NDCG as a held-out user reveals n_known items (``cold_start``), every
pair of models paired by user at every point; optionally the 0-item comparison repeated on
strong splits drawn with other seeds (``cold_start.split_seeds``)."""

from __future__ import annotations

from mfsoftmax.datasets import make_split

from ..coldstart import new_user_curve
from ..context import RunContext, Section
from . import require
from .paired import paired_rows_by_point

#: this stage's config sections and their defaults (bench/config.py assembles them)
DEFAULTS = {
    # split_seeds: repeat the n_known = 0 new-user comparison on strong splits drawn with these
    # seeds for seed_models (default: models, else every model), refitted per split;
    # popularity and feature-popularity always included
    "cold_start": {"n_known_users": [0, 1, 2, 5, 10, 20], "models": [], "split_seeds": [],
                   "seed_models": []},
}
#: what ``--quick`` shrinks them to (a smoke run)
QUICK = {"cold_start": {"n_known_users": [0, 1, 5]}}
#: what it needs from earlier stages: {RunContext attribute: the stage that fills it}
USES = {"best_params": "quality"}


def run(ctx: RunContext) -> Section:
    require(ctx, "cold_start_users", USES)
    out = Section()
    cs = ctx.cfg["cold_start"]
    split, reuse = ctx.cold_split()
    # on a strong split the fitted models serve as they are: every model gets its curve;
    # otherwise only the configured ones are refitted on a strong split
    names = list(ctx.best_params) if reuse else cs.get("models") or list(ctx.best_params)
    models = {n: ctx.fitted_on(split, reuse, n) for n in names if n in ctx.best_params}
    curves, per = new_user_curve(models, split.test, n_known=cs["n_known_users"],
                                 ks=(10, 20), seed=ctx.seed, per_user=True)
    for name, rows in curves.items():
        out.model(name)["cold_start"] = {"users": rows}
    # every pair of models at every point: the same users, so their gaps pair
    out.top["cold_users_paired_se"] = paired_rows_by_point(per, cs["n_known_users"])
    if cs["split_seeds"]:
        out.sweeps["cold_start_seeds"] = split_seed_rows(ctx, names, curves if reuse else None)
    return out


def split_seed_rows(ctx: RunContext, names: list, own_curves: dict | None) -> list:
    """Recall@10/20 of new users with 0 revealed items on strong splits drawn with each of
    ``cold_start.split_seeds`` for ``cold_start.seed_models`` (else ``cold_start.models``,
    else ``names``) plus the two popularity baselines, refitted with their tuned parameters;
    the run's own split takes its points from ``own_curves`` (the stage's curves on it, None
    when the main split is not strong). One split's 0-item comparison is within noise."""
    cs = ctx.cfg["cold_start"]
    names = cs.get("seed_models") or cs.get("models") or names
    names = [n for n in dict.fromkeys(["popularity", "feature-popularity", *names])
             if n in ctx.best_params]
    opts = ctx.cfg["dataset"]["split"] if ctx.split.protocol == "strong" else {}
    rows = []
    for s in cs["split_seeds"]:
        if own_curves is not None and int(s) == ctx.seed:
            curves = {n: own_curves[n] for n in names}
        else:
            split = make_split(ctx.data, "strong", seed=int(s), **opts)
            models = {n: ctx.fitted_on(split, False, n) for n in names}
            # the curve's users (enough items for its largest n_known), at the 0 point only
            curves = new_user_curve(models, split.test, n_known=(0,), ks=(10, 20), seed=int(s),
                                    min_items=max(cs["n_known_users"]))
        for name, pts in curves.items():
            p = next(q for q in pts if q["n_known"] == 0)
            rows.append({"seed": int(s), "model": name, "recall@10": p["recall@10"],
                         "recall@20": p["recall@20"], "n_users": p["n_users"]})
        ctx.say(f"cold start, split seed {s}: " + ", ".join(
            f"{r['model']} {r['recall@20']:.3f}" for r in rows if r["seed"] == int(s)))
    return rows
