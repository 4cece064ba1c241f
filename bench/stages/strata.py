"""Strata stage: which family for whom (docs/definitions.md, "Strata").

The quality stage's fitted models, on the same test users, split two ways:

- by the test user's history length (the items the model may use for that user):
  ``strata.user_bins`` quantile strata, lightest first;
- by the target item's training popularity: head / torso / tail, the most popular items
  holding ``strata.item_shares`` of the training interactions. A user's figure in an item
  stratum counts only their targets in it (``restrict_targets``); the ranking is unchanged.

Per stratum: every model's mean and standard error of each of ``strata.metrics``, and the
paired standard error of every pair of models (same users). The report's section
(``reports/sections/strata.py``) picks each family's best per stratum and judges the gap.
"""

from __future__ import annotations

import numpy as np

from mfsoftmax.evaluation import RANK_METRICS, evaluate_targets, restrict_targets, standard_errors

from ..config import ConfigError
from ..context import RunContext, Section
from . import require
from .paired import paired_rows

#: this stage's config sections and their defaults (bench/config.py assembles them)
DEFAULTS = {
    # test users in user_bins quantile strata of history length; target items in head / torso /
    # tail, the most popular items holding item_shares (head, torso) of the training
    # interactions; metrics per stratum (the headline judges the first)
    "strata": {"user_bins": 5, "item_shares": [0.2, 0.3], "metrics": ["recall@10", "recall@20"]},
}

#: what this stage needs from earlier stages: {RunContext attribute: the stage that fills it}
USES = {"fitted": "quality", "per_user": "quality"}
ITEM_STRATA = ("head", "torso", "tail")


def run(ctx: RunContext) -> Section:
    require(ctx, "strata", USES)
    opts = ctx.cfg["strata"]
    names = [n for n in ctx.fitted if n in ctx.per_user]
    out = measure({n: ctx.fitted[n] for n in names}, {n: ctx.per_user[n] for n in names},
                  ctx.split.test, ctx.split.train.item_popularity(), int(opts["user_bins"]),
                  opts["item_shares"], list(opts["metrics"]), say=ctx.say)
    return Section(top={"strata": out})


def measure(models: dict, per_user: dict, test, popularity, user_bins: int, item_shares,
            metrics: list, say=None) -> dict:
    """The ``strata`` section of results.json.

    Parameters
    ----------
    models : dict
        Fitted models by name (scored again on each item stratum's targets).
    per_user : dict
        By name, the per-user arrays of ``evaluate(model, test, per_user=True)``.
    test : EvalSet
        The test users.
    popularity : ndarray
        Training popularity (users per item).
    user_bins, item_shares, metrics
        ``[strata]`` of the config.
    say : callable, optional
        Progress lines.
    """
    has_target = np.diff(test.target.indptr) > 0
    for name, per in per_user.items():
        n = len(per[metrics[0]])
        if n != int(has_target.sum()):
            raise ValueError(f"strata: {name} has per-user arrays for {n} users; the test set "
                             f"has {int(has_target.sum())} users with targets")
    lengths = np.diff(test.history.indptr)[has_target]
    users = [stratum(info, {n: {m: p[m][rows] for m in metrics} for n, p in per_user.items()},
                     metrics) for info, rows in user_strata(lengths, user_bins)]
    ks = sorted({int(m.split("@")[1]) for m in metrics if "@" in m}) or [1]
    strata = item_strata(popularity, item_shares)
    scored = [i for i, (info, _) in enumerate(strata) if info["n_items"]]
    targets = [restrict_targets(test, strata[i][1]).target for i in scored]
    per: dict = {i: {} for i in range(len(strata))}
    for name, model in models.items():  # each model scored once, its ranking cut per stratum
        for i, (_, arrays) in zip(scored, evaluate_targets(model, test, targets, ks=ks,
                                                           per_user=True), strict=True):
            per[i][name] = arrays
    if say and scored:
        say("  item strata " + ", ".join(f"{strata[i][0]['name']} ({strata[i][0]['n_items']})"
                                         for i in scored) + f": {len(models)} model(s) scored")
    items = [stratum(info, {n: {m: p[m] for m in metrics} for n, p in per[i].items()}, metrics)
             for i, (info, _) in enumerate(strata)]
    return {"metrics": list(metrics), "user_bins": int(user_bins),
            "item_shares": [float(s) for s in item_shares], "users": users, "items": items}


def stratum(info: dict, per: dict, metrics: list) -> dict:
    """One stratum: ``info``, its number of users, each model's mean and standard error of each
    metric (``<metric>_se``) and the paired standard errors of every pair of models."""
    n_users = len(next(iter(per.values()))[metrics[0]]) if per else 0
    row = {**info, "n_users": int(n_users), "models": {}, "paired_se": []}
    if n_users == 0:
        return row
    for name, p in per.items():
        se = standard_errors(p)
        row["models"][name] = {**{m: float(np.mean(p[m])) for m in metrics},
                               **{f"{m}_se": se[m] for m in metrics}}
    row["paired_se"] = paired_rows(per)
    return row


def user_strata(lengths, n_bins: int) -> list:
    """``[(info, rows)]``: users in quantile strata of their history ``lengths``, lightest first.

    The cut points are the j/n_bins quantiles (j = 1 .. n_bins - 1, numpy's ``lower`` method, so
    each is a length some user has); stratum j holds the users with c_(j-1) < length <= c_j.
    Equal cut points merge strata; empty strata are dropped. ``info``: the stratum's ``name``
    (``q1`` ...) and its ``min_items`` / ``max_items``.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if not len(lengths):
        return []
    cuts = np.unique(np.quantile(lengths, np.arange(1, n_bins) / n_bins, method="lower"))
    which = np.searchsorted(cuts, lengths, side="left")
    out = []
    for j in range(len(cuts) + 1):
        rows = np.flatnonzero(which == j)
        if len(rows):
            out.append(({"name": f"q{len(out) + 1}", "min_items": int(lengths[rows].min()),
                         "max_items": int(lengths[rows].max())}, rows))
    return out


def item_strata(popularity, shares) -> list:
    """``[(info, mask)]`` of the head, torso and tail items by training ``popularity``.

    Items are ordered by popularity, most popular first (equal popularity: lower id first). An
    item is in the head when the items before it hold less than ``shares[0]`` of the training
    interactions, in the torso when they hold less than ``shares[0] + shares[1]``, else in the
    tail (so is every item never seen in training). ``info``: ``name``, ``n_items``,
    ``interaction_share`` and the ``min_popularity`` / ``max_popularity`` of its items.
    """
    pop = np.asarray(popularity, dtype=np.float64)
    order = np.lexsort((np.arange(len(pop)), -pop))
    before = np.cumsum(pop[order]) - pop[order]
    total = float(pop.sum())
    which = np.empty(len(pop), dtype=np.int64)
    which[order] = np.searchsorted(np.cumsum(shares) * total, before, side="right")
    out = []
    for j, name in enumerate(ITEM_STRATA):
        mask = which == j
        info = {"name": name, "n_items": int(mask.sum()),
                "interaction_share": float(pop[mask].sum() / total) if total else 0.0}
        if mask.any():
            info.update(min_popularity=int(pop[mask].min()), max_popularity=int(pop[mask].max()))
        out.append((info, mask))
    return out


def check_config(cfg: dict, where: str) -> None:
    """Raise ConfigError naming the ``strata.*`` key at fault."""
    opts = cfg["strata"]
    bins = opts["user_bins"]
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ConfigError(f"{where}: strata.user_bins must be an integer >= 2, got {bins!r}")
    shares = opts["item_shares"]
    if (not isinstance(shares, list) or len(shares) != 2
            or any(isinstance(s, bool) or not isinstance(s, (int, float)) or s <= 0 for s in shares)
            or sum(shares) >= 1):
        raise ConfigError(f"{where}: strata.item_shares must be [head, torso]: two shares of the "
                          f"training interactions > 0 with a sum < 1, got {shares!r}")
    ks = [int(k) for k in cfg["run"]["k"]]
    known = ["mrr"] + [f"{m}@{k}" for k in ks for m in RANK_METRICS]
    metrics = opts["metrics"]
    if not isinstance(metrics, list) or not metrics:
        raise ConfigError(f"{where}: strata.metrics must be a non-empty list, got {metrics!r}")
    for m in metrics:
        if m not in known:
            raise ConfigError(f"{where}: strata.metrics: {m!r} is not a per-user metric of this "
                              f"run; choose from mrr or {'|'.join(RANK_METRICS)} at a k of run.k "
                              f"({', '.join(map(str, ks))})")
