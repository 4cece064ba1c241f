"""Paired standard errors between models evaluated on the same users (rows for results.json)."""

from __future__ import annotations

import numpy as np

from mfsoftmax.evaluation import paired_standard_errors
from mfsoftmax.results.schema import feature_pairs


def paired_rows(per_users: dict, **extra) -> list:
    """``[{"a", "b", **extra, "n_users", metric: se of the per-user difference a - b}]`` for
    every pair of models evaluated on the same users (a before b in ``per_users`` order)."""
    names = list(per_users)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            se = paired_standard_errors(per_users[a], per_users[b])
            n = len(next(iter(per_users[a].values()), ()))
            rows.append({"a": a, "b": b, **extra, "n_users": int(n), **se})
    return rows


def paired_rows_by_point(per: dict, n_known) -> list:
    """``paired_rows`` at every point of a cold-start curve (``per``: {model: {n_known: per-user
    arrays}}, as the curves return it), each row with its ``n_known``."""
    return [row for n in n_known
            for row in paired_rows({name: p[int(n)] for name, p in per.items()}, n_known=int(n))]


def add_lift_se(rows: list, pers: list) -> None:
    """Give each ablation row with user features, whose model also has a row without them and
    the same history setting, ``lift_se``: the standard error of the per-user difference (with
    - without features) of each metric, warm and at 0 items (same users, paired); likewise
    ``item_lift_se`` for rows with item features against the row without them."""
    for i, j in feature_pairs(rows):
        rows[i]["lift_se"] = paired_standard_errors(pers[i], pers[j])
    for i, j in feature_pairs(rows, "item_features"):
        rows[i]["item_lift_se"] = paired_standard_errors(pers[i], pers[j])


def paired_rows_seeds(per_seed: dict) -> list:
    """``paired_rows`` for models trained with several seeds, paired by user *and* seed.

    ``per_seed``: {model: [per-user arrays of seed 0, seed 1, ...]} (same users, same seeds).
    For a pair, ``d[s, u]`` is the per-user difference under seed ``s``; the gap is its mean and
    its squared standard error is the users' part (the se over users of ``d`` averaged over
    seeds) plus the seeds' part (the variance over seeds of the per-seed gaps, over the number
    of seeds). Each row gives the total per metric and both parts under ``components``.
    """
    names = list(per_seed)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            runs_a, runs_b = per_seed[a], per_seed[b]
            n_seeds = min(len(runs_a), len(runs_b))
            metrics = sorted(runs_a[0].keys() & runs_b[0].keys())
            row = {"a": a, "b": b, "n_users": int(len(next(iter(runs_a[0].values()), ()))),
                   "n_seeds": n_seeds, "components": {}}
            for m in metrics:
                d = np.array([np.asarray(runs_a[s][m], np.float64) - np.asarray(runs_b[s][m], np.float64)
                              for s in range(n_seeds)])
                users = paired_standard_errors({m: d.mean(axis=0)}, {m: np.zeros(d.shape[1])})[m]
                seeds = float(np.std(d.mean(axis=1), ddof=1) / np.sqrt(n_seeds)) if n_seeds > 1 else 0.0
                row[m] = float(np.hypot(users, seeds))
                row["components"][m] = {"users": users, "seeds": seeds}
            rows.append(row)
    return rows
