"""Paired standard errors between models evaluated on the same users (rows for results.json)."""

from __future__ import annotations

from mfsoftmax.evaluation import paired_standard_errors

from ..schema import feature_pairs


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
    - without features) of each metric, warm and at 0 items (same users, paired)."""
    for i, j in feature_pairs(rows):
        rows[i]["lift_se"] = paired_standard_errors(pers[i], pers[j])
