"""Folding metrics (docs/definitions.md, "Folding"; Xin et al., RecSys 2017).

Folding: disparate groups of users and items end up near each other in embedding space and the
model recommends across groups that never interact. Measured where ground truth says which
recommendations are spurious: planted groups (synthetic) or the blocks of a disjoint union.

- ``leakage@k``: share of a user's top-k (history excluded) that belongs to other groups,
  averaged over users; ``users_with_leak``: share of users with at least one such item.
- ``xin_score``: our reading of Xin et al.'s folding score,
  F = 1/(m n) * sum_ij max(0, s_ij - r_ij), with r_ij = 1 when item j is in user i's group and
  0 otherwise, and s_i each user's scores min-max scaled to [0, 1] over all items. In-group terms
  are always 0 (s <= 1 = r), so F is the mean scaled score the model gives to unrelated items:
  0 when every out-group item gets the user's minimum score, 1 in the limit where all of them tie
  with the user's best item. The paper defines relatedness more generally; groups are the ground
  truth available here.
"""

from __future__ import annotations

import numpy as np

from mfsoftmax.datasets.core import check_users_items
from mfsoftmax.ranking import Queries, mask_history, topk


def folding_metrics(model, queries_users: np.ndarray, history, user_groups: np.ndarray,
                    item_groups: np.ndarray, k: int = 10, known: bool = True,
                    max_batch_elems: int = 1 << 23) -> dict:
    """Leakage@k, users_with_leak and Xin's score of ``model`` for the given users.

    Parameters
    ----------
    model : RecommenderBase
    queries_users : ndarray of int
        User indices to query.
    history : csr_matrix (len(users) x n_items)
        Their known items (model input, excluded from the top-k).
    user_groups, item_groups : ndarray of int
        Ground-truth groups of the queried users (aligned with ``queries_users``) and of all items.
    """
    n_items = len(item_groups)
    check_users_items(history, len(queries_users), n_items, what="folding history")
    batch = max(1, min(len(queries_users), max_batch_elems // max(1, n_items)))
    leak, any_leak, xin = [], [], []
    for start in range(0, len(queries_users), batch):
        sl = slice(start, start + batch)
        q = Queries(queries_users[sl], history[sl], known)
        s = np.array(model.score(q), dtype=np.float64, copy=True)
        ug = np.asarray(user_groups[sl])
        other = item_groups[None, :] != ug[:, None]
        lo, hi = s.min(axis=1, keepdims=True), s.max(axis=1, keepdims=True)
        scaled = np.where(hi > lo, (s - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0)
        xin.append((scaled * other).sum(axis=1) / n_items)
        mask_history(s, q.history)
        top, top_s = topk(s, k)
        leaked = (item_groups[top] != ug[:, None]) & np.isfinite(top_s)
        leak.append(leaked.mean(axis=1))
        any_leak.append(leaked.any(axis=1))
    return {
        "k": int(k),
        f"leakage@{k}": float(np.concatenate(leak).mean()),
        "users_with_leak": float(np.concatenate(any_leak).mean()),
        "xin_score": float(np.concatenate(xin).mean()),
        "n_users": int(len(queries_users)),
    }


def pca2(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project ``points`` (rows) on their first two principal components.

    Returns the (len(points) x 2) coordinates and the explained-variance shares of the two
    components; a 1-D input gets a zero second coordinate.
    """
    centred = np.asarray(points, dtype=np.float64)
    centred = centred - centred.mean(axis=0)
    if centred.shape[1] < 2:
        return np.column_stack([centred[:, 0], np.zeros(len(centred))]), np.array([1.0, 0.0])
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    var = sv**2 / max(1e-12, float((sv**2).sum()))
    return centred @ vt[:2].T, var[:2]
