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
    """Row-wise top ``k`` of a (B x n) score matrix, best first.

    Returns ``(ids, values)``, both (B x min(k, n)), ids int64. Deterministic: scores
    descending, equal scores by ascending item id. Fast path: the k-th largest of 2k group
    maxima bounds a row's k-th score from below, so only the few scores above the bound are
    sorted; rows where the bound is loose (many equal or -inf scores) take an exact
    partition instead. NaN scores raise ``ValueError`` where they are detected.
    """
    scores = np.asarray(scores)
    B, n = scores.shape
    k = max(0, min(int(k), n))
    if k == 0 or B == 0:
        return np.zeros((B, k), np.int64), np.zeros((B, k), scores.dtype)
    groups = 2 * k
    size = n // groups
    if size < 2:
        return _pick_sorted(scores, _exact_mask(scores, k), k)
    m = groups * size
    if size >= groups:  # contiguous groups: reduce the long inner axis
        gmax = scores[:, :m].reshape(B, groups, size).max(axis=2)
    else:  # strided groups {j, j + groups, ...}: elementwise max of `size` slabs
        gmax = scores[:, :m].reshape(B, size, groups).max(axis=1)
    bound = np.partition(gmax, groups - k, axis=1)[:, groups - k]
    mask = scores >= bound[:, None]  # holds every row's top k (k groups reach the bound)
    counts = np.count_nonzero(mask, axis=1)
    loose = counts > max(8 * k, n // 8)
    if loose.any():
        mask[loose] = _exact_mask(scores[loose], k)
    return _pick_sorted(scores, mask, k)


def _exact_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of exactly the top ``k`` of each row (ties to the lower ids)."""
    n = scores.shape[1]
    kth = np.partition(scores, n - k, axis=1)[:, n - k][:, None]
    mask = scores > kth
    eq = scores == kth
    need = k - np.count_nonzero(mask, axis=1)
    over = np.count_nonzero(eq, axis=1) > need
    if over.any():  # keep only the first `need` tied ids of those rows
        rank = np.cumsum(eq[over], axis=1, dtype=np.int32)
        eq[over] &= rank <= need[over, None]
    return mask | eq


def _pick_sorted(scores: np.ndarray, mask: np.ndarray, k: int):
    """The first ``k`` of each row's masked scores, by score descending then id."""
    B, n = scores.shape
    flat = np.flatnonzero(mask)  # row-major: rows, then ids ascending
    rows, cols = np.divmod(flat, n)
    counts = np.bincount(rows, minlength=B)
    if np.any(counts < k):
        raise ValueError("topk: scores contain NaN")
    vals = scores[rows, cols]
    if scores.dtype == np.float32:  # one uint64 key: row, then score descending (bitwise)
        u = vals.view(np.uint32)
        asc = np.where(u >> 31, ~u, u | np.uint32(0x80000000))
        key = (rows.astype(np.uint64) << np.uint64(32)) | (~asc).astype(np.uint64)
        order = np.argsort(key, kind="stable")  # stable: equal scores keep ascending ids
    else:
        order = np.lexsort((-vals, rows))
    pick = order[(np.cumsum(counts) - counts)[:, None] + np.arange(k)]
    return cols[pick].astype(np.int64, copy=False), vals[pick]


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

    # ---- what the suite needs to know of a model (read by the runner, config and reports;
    # nothing there branches on a model's kind or name)
    #: The serving path of a known user's request and of a new user's (None: a new user takes
    #: the known user's path, so it is not measured apart).
    serving_modes: tuple = ("lookup", None)
    #: The model's reference row in the query-features ablation: (uses history, uses user
    #: features, what it sees); None leaves it out.
    ablation_inputs: tuple | None = None
    #: The parameters that switch history and user features off, for a model the ablation
    #: refits without each (None: not ablated itself).
    ablation_switches: tuple | None = None
    #: Parameters that make ``fit`` one pass over the data (an iteration, an epoch), for timing.
    one_pass: dict = {}
    #: Caps of the ``--quick`` smoke run, e.g. ``{"epochs": 2}``.
    quick_caps: dict = {}
    #: Parameters a refit needs to embed items unseen in training (the new-items stage).
    new_item_params: dict = {}
    #: What the folding stage sweeps: "w0" (w0 at each dim), "dim", "reference" (measured
    #: once, a non-personalised level), or None (not measured).
    folding_sweep: str | None = None

    def embedding_role(self) -> str | None:
        """What this model's query/item embeddings illustrate in the folding picture: ``"mf"``,
        ``"no-negatives"`` (a softmax trained on positives only), ``"negatives"``; None when it
        has no embeddings to draw."""
        return None

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
