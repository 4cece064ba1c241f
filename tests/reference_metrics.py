"""A slow, obviously correct reference for the harness metrics (tests only).

Pure Python loops and a full sort per user, straight from docs/definitions.md "Evaluation", so that
``mfsoftmax.evaluation.evaluate`` (vectorised, batched, partial sorts) can be checked against it.
"""

from __future__ import annotations

import math


def reference_metrics(scores, histories, targets, ks, candidates=None, popularity=None) -> dict:
    """Metrics of dense ``scores`` (list of rows, users x items) as the harness defines them.

    Parameters
    ----------
    scores : sequence of sequences of float
        One row of item scores per user; -inf means unrankable.
    histories, targets : sequence of sets of int
        Per user: items excluded from the ranking, items to find.
    ks : sequence of int
        Cut-offs.
    candidates : iterable of int, optional
        Only these items are ranked.
    popularity : sequence of float, optional
        Per item, for ``avg_pop@k``.
    """
    n_items = len(scores[0]) if len(scores) else 0
    cand = set(range(n_items)) if candidates is None else {int(c) for c in candidates}
    ks = sorted(set(ks))
    sums: dict[str, float] = {}
    recommended = {k: set() for k in ks}
    pop_means = {k: [] for k in ks}
    n_users = 0
    for row, hist, target in zip(scores, histories, targets, strict=True):
        if not target:
            continue
        n_users += 1
        rankable = [j for j in range(n_items)
                    if j in cand and j not in hist and row[j] != -math.inf]
        ranked = sorted(rankable, key=lambda j: (-row[j], j))
        for k in ks:
            top = ranked[:k]
            rel = [1 if j in target else 0 for j in top]
            hits = sum(rel)
            denom = min(k, len(target))
            dcg = sum(r / math.log2(i + 2) for i, r in enumerate(rel))
            idcg = sum(1 / math.log2(i + 2) for i in range(denom))
            ap = sum(sum(rel[:i + 1]) / (i + 1) * r for i, r in enumerate(rel)) / denom
            values = {"recall": hits / denom, "precision": hits / k, "ndcg": dcg / idcg,
                      "hr": 1.0 if hits else 0.0, "map": ap}
            for name, v in values.items():
                sums[f"{name}@{k}"] = sums.get(f"{name}@{k}", 0.0) + v
            recommended[k].update(top)
            if popularity is not None and top:
                pop_means[k].append(sum(popularity[j] for j in top) / len(top))
        found = [row[t] for t in target if t in rankable]
        if found:
            best = max(found)
            rank = 1 + sum(1 for j in rankable if row[j] > best)
            sums["mrr"] = sums.get("mrr", 0.0) + 1 / rank
        else:
            sums["mrr"] = sums.get("mrr", 0.0)
    out = {key: (v / n_users) for key, v in sums.items()} if n_users else {}
    for k in ks:
        out[f"coverage@{k}"] = len(recommended[k]) / max(1, len(cand))
        if popularity is not None:
            vals = pop_means[k]
            out[f"avg_pop@{k}"] = sum(vals) / len(vals) if vals else math.nan
    out["n_users"] = n_users
    return out
