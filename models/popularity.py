"""Popularity baseline: every query gets the most popular training items."""

from __future__ import annotations

import numpy as np

from mfsoftmax.runtime import atomic_write_bytes

from .base import Queries, RecommenderBase


class Popularity(RecommenderBase):
    """Scores each item by log(1 + number of training users who interacted with it)."""

    name = "popularity"
    family = "baseline"
    ablation_inputs = (None, None, "none (item popularity)")
    folding_sweep = "reference"
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

    def save(self, path) -> None:
        import io

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
