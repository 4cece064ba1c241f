"""`RecommenderBase`: the contract every model of the suite implements.

A model is fitted on a users x items training :class:`~mfsoftmax.datasets.Interactions` and then
scores batches of queries. A query is a user index (for features) plus the items the model may
know of that user (``history``); ``known`` says whether those users are rows of the training
matrix (MF can look them up) or new (MF must fold them in, the DNN runs its tower either way).
"""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from mfsoftmax.datasets.core import check_users_items


@dataclass
class Queries:
    """A batch of queries.

    Attributes
    ----------
    users : ndarray of int, shape (B,)
        User indices in the dataset's user space.
    history : csr_matrix, shape (B, n_items)
        Items known for each query user (model input; excluded from rankings).
    known : bool
        Whether these users' rows were part of the training matrix.
    """

    users: np.ndarray
    history: sp.csr_matrix
    known: bool = True

    def __post_init__(self):
        self.users = np.asarray(self.users, dtype=np.int64)
        if not sp.isspmatrix_csr(self.history):
            self.history = sp.csr_matrix(self.history, dtype=np.float32)
        check_users_items(self.history, len(self.users), what="Queries.history")

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, rows) -> Queries:
        rows = np.atleast_1d(np.arange(len(self))[rows])
        return Queries(self.users[rows], self.history[rows], self.known)

    @classmethod
    def from_evalset(cls, evalset, start: int = 0, stop: int | None = None) -> Queries:
        sl = slice(start, stop)
        return cls(evalset.users[sl], evalset.history[sl], evalset.known_users)


def topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top ``k`` of a (B x n) score matrix, best first (argpartition, then sort)."""
    n = scores.shape[1]
    k = min(k, n)
    if k < n:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n), scores.shape).copy()
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    ids = np.take_along_axis(part, order, axis=1)
    return ids, np.take_along_axis(part_scores, order, axis=1)


def mask_history(scores: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
    """Set the scores of each row's history items to -inf, in place; returns ``scores``."""
    rows = np.repeat(np.arange(history.shape[0]), np.diff(history.indptr))
    scores[rows, history.indices] = -np.inf
    return scores


class RecommenderBase(abc.ABC):
    """Base class: ``fit`` on training interactions, ``score`` batches of queries.

    Subclasses set ``name`` (stable identifier used in results) and ``family``
    (``"mf"``, ``"softmax"`` or ``"baseline"``).
    """

    name = "base"
    family = "baseline"

    n_users: int = 0
    n_items: int = 0

    @abc.abstractmethod
    def fit(self, train, valid=None, callback=None) -> RecommenderBase:
        """Fit on ``train`` (Interactions, users x items).

        ``valid`` (EvalSet) may be used for early stopping. ``callback(iteration, model)`` is
        called after each iteration/epoch; a truthy return value stops training.
        """

    @abc.abstractmethod
    def score(self, queries: Queries) -> np.ndarray:
        """Scores of every item for each query: float32 array (len(queries) x n_items)."""

    def _check_scores(self, scores: np.ndarray, queries: Queries) -> np.ndarray:
        assert scores.shape == (len(queries), self.n_items), (
            f"{self.name}: scores shape {scores.shape}, expected ({len(queries)}, {self.n_items})"
        )
        return scores

    def recommend(self, queries: Queries, k: int = 10, exclude_history: bool = True,
                  candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item ids and scores for each query (batch-first), best first."""
        if queries.history.shape[1] != self.n_items:
            raise ValueError(f"queries have {queries.history.shape[1]} items, model has {self.n_items}")
        scores = np.array(self.score(queries), dtype=np.float32, copy=True)
        if exclude_history:
            mask_history(scores, queries.history)
        if candidates is not None:
            keep = np.zeros(self.n_items, dtype=bool)
            keep[candidates] = True
            scores[:, ~keep] = -np.inf
        return topk(scores, k)

    def get_params(self) -> dict:
        """Hyper-parameters, JSON-serialisable."""
        return {}

    # --------------------------------------------------------------- persistence
    def save(self, path) -> None:
        """Save to ``path`` (a folder): ``params.json`` plus model-specific arrays."""
        raise NotImplementedError(f"{self.name} does not support save()")

    @classmethod
    def load(cls, path) -> RecommenderBase:
        raise NotImplementedError(f"{cls.__name__} does not support load()")

    @staticmethod
    def _write_params(path, params: dict) -> None:
        from mfsoftmax.runtime import atomic_write_json

        Path(path).mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(path) / "params.json", params)

    @staticmethod
    def _read_params(path) -> dict:
        return json.loads((Path(path) / "params.json").read_text())
