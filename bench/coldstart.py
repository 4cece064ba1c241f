"""Cold-start curves (DEFINITIONS.md, "Cold start").

New users: for each held-out (strong-protocol) test user with more than max(n_known) items, reveal
n_known of its items (a seeded random order) and rank the rest; the same users at every point.
WALS folds the revealed items in (with 0 items it uses its ``cold_user`` heuristic); the DNN runs
its tower on features plus the revealed history.

New items: items held out of training (new-items protocol). For each test item with more than
max(n_known) interactions, n_known of its users are revealed; every other user who interacted with
it is a target, and each target user ranks the held-out items only. WALS folds the item in from
the revealed users (with none: the feature-average heuristic); the DNN scores it through its item
tower (revealed interactions unused: no retraining); the popularity baseline ranks new items by
their revealed counts.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from mfsoftmax.datasets import EvalSet
from mfsoftmax.evaluation import evaluate, standard_errors


def _shuffled_rows(m: sp.csr_matrix, rng) -> list[np.ndarray]:
    return [rng.permutation(m.indices[m.indptr[i]:m.indptr[i + 1]]) for i in range(m.shape[0])]


def _rows_to_csr(rows: list[np.ndarray], n_cols: int) -> sp.csr_matrix:
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(r) for r in rows])
    idx = np.concatenate(rows).astype(np.int32) if rows else np.zeros(0, np.int32)
    m = sp.csr_matrix((np.ones(len(idx), np.float32), idx, indptr), shape=(len(rows), n_cols))
    m.sort_indices()
    return m


def new_user_curve(models: dict, evalset: EvalSet, n_known=(0, 1, 2, 5, 10, 20), ks=(10, 20),
                   seed: int = 0, min_items: int | None = None, per_user: bool = False):
    """Recall/NDCG against the number of revealed items, per model.

    ``evalset`` holds held-out users (``known_users`` False): their full item set is
    history + target. Users with more than ``min_items`` items take part (default
    ``max(n_known)``: the same users at every point). Returns ``{model: [{"n_known",
    "recall@10", "ndcg@10", ..., "n_users"}]}``; with ``per_user`` also ``{model: {n_known:
    per-user metric arrays}}`` (the same users in the same order for every model).
    """
    if evalset.known_users:
        raise ValueError("new_user_curve needs held-out users (strong protocol)")
    rng = np.random.default_rng(seed)
    full = (evalset.history + evalset.target).tocsr()
    full.data[:] = 1.0
    keep = np.flatnonzero(np.diff(full.indptr) > (max(n_known) if min_items is None else min_items))
    rows = _shuffled_rows(full[keep], rng)
    out = {name: [] for name in models}
    per = {name: {} for name in models}
    for n in n_known:
        hist = _rows_to_csr([r[:n] for r in rows], full.shape[1])
        target = _rows_to_csr([r[n:] for r in rows], full.shape[1])
        es = EvalSet(evalset.users[keep], hist, target, known_users=False)
        for name, model in models.items():
            res, per[name][int(n)] = evaluate(model, es, ks=ks, per_user=True)
            se = standard_errors(per[name][int(n)])
            row = {"n_known": int(n), "n_users": res["n_users"]}
            for k in ks:
                for metric in (f"recall@{k}", f"ndcg@{k}"):
                    row[metric] = res[metric]
                    row[f"{metric}_se"] = se[metric]
            out[name].append(row)
    return (out, per) if per_user else out


def _item_rows_to_user_matrix(item_users: sp.csr_matrix, items: np.ndarray, n_items: int) -> sp.csr_matrix:
    """(len(items) x users) rows -> the users x items matrix with those items' columns."""
    coo = item_users.tocoo()
    m = sp.csr_matrix((np.ones(coo.nnz, np.float32), (coo.col, items[coo.row])),
                      shape=(item_users.shape[1], n_items))
    m.sort_indices()
    return m


class _ColdItemScorer:
    """Scores of the held-out items for known users, from the model's cold-item path."""

    def __init__(self, model, items: np.ndarray, revealed: sp.csr_matrix, n_items: int):
        self.model, self.items, self.revealed, self.n_items = model, items, revealed, n_items

    def score(self, queries):
        out = np.zeros((len(queries), self.n_items), dtype=np.float32)
        if hasattr(self.model, "item_cold_scores"):
            cold = self.model.item_cold_scores(queries, self.items, self.revealed)
        else:  # popularity: new items ranked by their revealed interaction counts
            cold = np.broadcast_to(np.diff(self.revealed.indptr).astype(np.float32),
                                   (len(queries), len(self.items)))
        out[:, self.items] = cold
        return out


def new_item_curve(models: dict, split, n_known=(0, 1, 2, 5, 10), ks=(10,), seed: int = 0,
                   per_user: bool = False):
    """Recall@k restricted to held-out items against the item's number of revealed users.

    ``split`` is a new-items split; models are fitted on ``split.train``.
    Returns ``{model: [{"n_known", "recall@10", "n_items", "n_users"}]}``; with ``per_user``
    also ``{model: {n_known: per-user metric arrays}}`` (the same users for every model).
    """
    if split.protocol != "new-items":
        raise ValueError("new_item_curve needs a new-items split")
    rng = np.random.default_rng(seed)
    data = split.data.binary()
    items = split.test.candidates
    item_users = data.T.tocsr()[items]  # items x users
    keep = np.diff(item_users.indptr) > max(n_known)
    items, item_users = items[keep], item_users[keep]
    rows = _shuffled_rows(item_users, rng)
    n_users, n_items = data.shape
    out = {name: [] for name in models}
    per = {name: {} for name in models}
    train = split.train.binary()
    for n in n_known:
        revealed = _rows_to_csr([r[:n] for r in rows], n_users)
        tgt = _item_rows_to_user_matrix(_rows_to_csr([r[n:] for r in rows], n_users), items, n_items)
        known = _item_rows_to_user_matrix(revealed, items, n_items)
        users = np.flatnonzero(np.diff(tgt.indptr) > 0)
        hist = (train[users] + known[users]).tocsr()
        es = EvalSet(users, hist, tgt[users].tocsr(), known_users=True, candidates=items)
        for name, model in models.items():
            scorer = _ColdItemScorer(model, items, revealed, n_items)
            res, per[name][int(n)] = evaluate(model, es, ks=ks, score_fn=scorer.score, per_user=True)
            row = {"n_known": int(n), "n_items": int(len(items)), "n_users": res["n_users"]}
            for k in ks:
                row[f"recall@{k}"] = res[f"recall@{k}"]
                row[f"ndcg@{k}"] = res[f"ndcg@{k}"]
            out[name].append(row)
    return (out, per) if per_user else out
