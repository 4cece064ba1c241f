"""Popularity baseline: every query gets the most popular training items."""

from __future__ import annotations

import io

import numpy as np

from mfsoftmax.runtime import atomic_write_bytes

from .base import Queries, RecommenderBase, SuiteSpec


class Popularity(RecommenderBase):
    """Scores each item by log(1 + number of training users who interacted with it)."""

    name = "popularity"
    family = "baseline"
    suite = SuiteSpec(ablation_inputs=(None, None, "none (item popularity)"),
                      folding_sweep="reference")
    user_independent = True  # every query gets the same ranking

    def __init__(self):
        self.item_scores = None

    def fit(self, train, valid=None, callback=None) -> Popularity:
        self.n_users, self.n_items = train.n_users, train.n_items
        self.item_scores = np.log1p(train.item_popularity()).astype(np.float32)
        if callback is not None:
            callback(0, self)
        return self

    def score(self, queries: Queries) -> np.ndarray:
        scores = np.broadcast_to(self.item_scores, (len(queries), self.n_items))
        return self._check_scores(scores, queries)

    def ranking(self) -> np.ndarray:
        """Every item id by score descending, equal scores by ascending id (cached)."""
        cached = getattr(self, "_order", None)
        if cached is None or cached[0] is not self.item_scores:  # refit or load: recompute
            order = np.lexsort((np.arange(len(self.item_scores)), -self.item_scores))
            self._order = cached = (self.item_scores, order)
        return cached[1]

    def recommend_one(self, user: int, history_items=(), k: int = 10,
                      known: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The precomputed ranking minus the user's history: no scoring at all (the same items
        as ``recommend``; history items fill in at -inf only when fewer than ``k`` remain)."""
        order = self.ranking()
        hist = np.asarray(history_items, dtype=np.int64).reshape(-1)
        k = max(0, min(int(k), self.n_items))
        head = order[:k + len(hist)]
        ids = head[~np.isin(head, hist)][:k] if hist.size else head[:k]
        scores = self.item_scores[ids]
        if len(ids) < k:  # the history covers nearly every item: recommend's -inf tail
            rest = np.unique(hist)[:k - len(ids)]
            ids = np.concatenate([ids, rest])
            scores = np.concatenate([scores, np.full(len(rest), -np.inf, np.float32)])
        return ids, scores

    def save(self, path) -> None:
        self._write_params(path, {"name": self.name, "n_users": self.n_users, "n_items": self.n_items})
        buf = io.BytesIO()
        np.savez(buf, item_scores=self.item_scores)
        atomic_write_bytes(f"{path}/arrays.npz", buf.getvalue())

    @classmethod
    def load(cls, path) -> Popularity:
        params = cls._read_params(path)
        model = cls()
        model.n_users, model.n_items = params["n_users"], params["n_items"]
        model.item_scores = np.load(f"{path}/arrays.npz")["item_scores"]
        return model
