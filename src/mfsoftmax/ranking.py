"""Ranking primitives shared by the models and the harness: :class:`Queries` (a batch of
requests), :func:`topk` and :func:`mask_history`.

The bottom of the harness: it imports only numpy, scipy and the dataset checks, so models and
``mfsoftmax.evaluation`` both import it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

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
