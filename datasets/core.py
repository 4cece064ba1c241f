"""`Interactions`: the one container every loader returns and every model reads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp


def concurrently(*calls):
    """The results of the zero-argument ``calls``, run in threads. numpy and polars release the
    GIL in their array work, so on two cores the column work after a big parse (factorising user
    and item ids, widening timestamps) takes about half the time; errors are raised as they
    would be in order."""
    if len(calls) < 2:
        return [c() for c in calls]
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(c) for c in calls]
        return [f.result() for f in futures]


@contextmanager
def small_pages():
    """Within it, numpy's big allocations are not advised to use transparent huge pages.

    numpy asks the kernel for huge pages (``madvise``) on every array of 4 MiB or more. Where
    the kernel's THP ``defrag`` setting is ``madvise`` (a common default), touching such fresh
    memory can stall in direct compaction: on the project's shared machine the first 256 MB
    took 1.5-1.7 s to touch, against 0.3 s in 4 KiB pages. A loader allocates each of its big
    arrays once, so it loses more to the stall than huge pages give back. Arrays keep the
    pages they were given; numpy's setting is restored on exit (a no-op where numpy has no
    such switch)."""
    try:
        from numpy._core.multiarray import (
            _set_madvise_hugepage as switch,  # optional: a private numpy switch
        )
    except ImportError:  # pragma: no cover - numpy < 2 or a build without it
        switch = None
    before = switch(False) if switch is not None else None
    try:
        yield
    finally:
        if switch is not None:
            switch(before)


class DatasetError(ValueError):
    """Bad dataset input: the message names the file, line or parameter at fault."""


def check_users_items(matrix, n_users: int | None = None, n_items: int | None = None,
                      what: str = "matrix") -> sp.csr_matrix:
    """Assert ``matrix`` is a users x items CSR matrix of the expected shape; return it."""
    if not sp.isspmatrix_csr(matrix) and not isinstance(matrix, sp.csr_array):
        raise TypeError(f"{what} must be a scipy CSR matrix (users x items), got {type(matrix).__name__}")
    if n_users is not None and matrix.shape[0] != n_users:
        raise ValueError(f"{what} has {matrix.shape[0]} rows, expected {n_users} users (users x items)")
    if n_items is not None and matrix.shape[1] != n_items:
        raise ValueError(f"{what} has {matrix.shape[1]} columns, expected {n_items} items (users x items)")
    return matrix


def feature_cardinality(values: np.ndarray) -> int:
    """Number of codes of a categorical feature column (codes are 0..card-1)."""
    return int(values.max()) + 1 if len(values) else 0


@dataclass
class Interactions:
    """Users x items interactions with their side information.

    Parameters
    ----------
    name : str
        Dataset name, e.g. ``"ml-100k"`` or ``"synthetic"``.
    matrix : scipy.sparse.csr_matrix, float32, shape (n_users, n_items)
        Interaction values (1.0 when binarised). Canonical CSR: sorted indices, no duplicates.
    timestamps, ratings : ndarray or None
        Aligned with ``matrix.data`` (same order), int64 seconds and float32 raw ratings.
    user_features, item_features : dict of str to ndarray
        1-D int64 arrays are categorical codes 0..card-1; 2-D arrays (rows x k) are multi-hot.
    user_groups, item_groups : ndarray or None
        Planted group labels (synthetic data, disjoint-union blocks).
    user_ids, item_ids : ndarray
        Raw ids, index -> raw id.
    """

    name: str
    matrix: sp.csr_matrix
    timestamps: np.ndarray | None = None
    ratings: np.ndarray | None = None
    user_features: dict = field(default_factory=dict)
    item_features: dict = field(default_factory=dict)
    user_groups: np.ndarray | None = None
    item_groups: np.ndarray | None = None
    user_ids: np.ndarray | None = None
    item_ids: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        m = self.matrix
        if not sp.isspmatrix_csr(m):
            m = sp.csr_matrix(m)
        if m.dtype != np.float32:
            m = m.astype(np.float32)
        if not m.has_sorted_indices:
            # keep the aligned arrays in the same order as the sorted data
            order = _csr_sort_order(m)
            m = sp.csr_matrix((m.data[order], m.indices[order], m.indptr), shape=m.shape)
            if self.timestamps is not None:
                self.timestamps = np.asarray(self.timestamps)[order]
            if self.ratings is not None:
                self.ratings = np.asarray(self.ratings)[order]
        self.matrix = m
        if self.user_ids is None:
            self.user_ids = np.arange(m.shape[0])
        if self.item_ids is None:
            self.item_ids = np.arange(m.shape[1])
        self.validate()

    # ------------------------------------------------------------------ shape
    @property
    def n_users(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        return self.matrix.shape[1]

    @property
    def n_interactions(self) -> int:
        return int(self.matrix.nnz)

    @property
    def density(self) -> float:
        return self.n_interactions / max(1, self.n_users * self.n_items)

    def validate(self) -> None:
        """Assert every array agrees with the users x items shape."""
        m, n = self.matrix.shape
        nnz = self.matrix.nnz
        for name in ("timestamps", "ratings"):
            arr = getattr(self, name)
            if arr is not None and len(arr) != nnz:
                raise ValueError(f"{name} has {len(arr)} entries, matrix has {nnz} interactions")
        for side, feats, size in (("user", self.user_features, m), ("item", self.item_features, n)):
            for key, arr in feats.items():
                if len(arr) != size:
                    raise ValueError(f"{side} feature {key!r} has {len(arr)} rows, expected {size}")
        for name, size in (("user_groups", m), ("user_ids", m), ("item_groups", n), ("item_ids", n)):
            arr = getattr(self, name)
            if arr is not None and len(arr) != size:
                raise ValueError(f"{name} has {len(arr)} entries, expected {size}")
        if self.matrix.nnz and not np.all(np.isfinite(self.matrix.data)):
            raise ValueError(f"{self.name}: interaction values must be finite")

    # --------------------------------------------------------------- derived
    def item_popularity(self) -> np.ndarray:
        """Number of users who interacted with each item (int64, length n_items)."""
        return np.bincount(self.matrix.indices, minlength=self.n_items).astype(np.int64)

    def user_activity(self) -> np.ndarray:
        """Number of interactions of each user."""
        return np.diff(self.matrix.indptr).astype(np.int64)

    def binary(self) -> sp.csr_matrix:
        """The interaction pattern as a float32 0/1 CSR matrix."""
        b = self.matrix.copy()
        b.data = np.ones_like(b.data)
        return b

    def with_matrix(self, matrix: sp.csr_matrix, keep: np.ndarray | None = None, **changes) -> Interactions:
        """A copy sharing side information, with ``matrix`` in place of the interactions.

        ``keep`` selects which entries of ``self.matrix.data`` survive (the aligned arrays follow);
        ``matrix`` must hold exactly those entries in the same order.
        """
        ts = self.timestamps[keep] if (self.timestamps is not None and keep is not None) else None
        rt = self.ratings[keep] if (self.ratings is not None and keep is not None) else None
        return replace(self, matrix=matrix, timestamps=ts, ratings=rt, **changes)

    def select(self, keep: np.ndarray) -> Interactions:
        """Keep only the interactions where the boolean mask ``keep`` (aligned with data) is True.

        Shape (and therefore the user and item index spaces) is unchanged.
        """
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (self.n_interactions,):
            raise ValueError(f"mask has shape {keep.shape}, expected ({self.n_interactions},)")
        rows = np.repeat(np.arange(self.n_users), np.diff(self.matrix.indptr))[keep]
        indptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=self.n_users), out=indptr[1:])
        mat = sp.csr_matrix(
            (self.matrix.data[keep], self.matrix.indices[keep], indptr), shape=self.matrix.shape
        )
        return self.with_matrix(mat, keep=keep)

    def subset(self, users: np.ndarray | None = None, items: np.ndarray | None = None) -> Interactions:
        """Restrict to the given user and item indices (re-indexed 0..k-1, order kept)."""
        users = np.arange(self.n_users) if users is None else np.asarray(users)
        items = np.arange(self.n_items) if items is None else np.asarray(items)
        coo_rows = np.repeat(np.arange(self.n_users), np.diff(self.matrix.indptr))
        umap = np.full(self.n_users, -1, dtype=np.int64)
        umap[users] = np.arange(len(users))
        imap = np.full(self.n_items, -1, dtype=np.int64)
        imap[items] = np.arange(len(items))
        r, c = umap[coo_rows], imap[self.matrix.indices]
        keep = (r >= 0) & (c >= 0)
        r, c = r[keep], c[keep]
        order = np.lexsort((c, r))
        mat = sp.csr_matrix(
            (self.matrix.data[keep][order], (r[order], c[order])), shape=(len(users), len(items))
        )
        mat.sort_indices()
        ts = self.timestamps[keep][order] if self.timestamps is not None else None
        rt = self.ratings[keep][order] if self.ratings is not None else None
        return replace(
            self,
            matrix=mat,
            timestamps=ts,
            ratings=rt,
            user_features={k: v[users] for k, v in self.user_features.items()},
            item_features={k: v[items] for k, v in self.item_features.items()},
            user_groups=None if self.user_groups is None else self.user_groups[users],
            item_groups=None if self.item_groups is None else self.item_groups[items],
            user_ids=self.user_ids[users],
            item_ids=self.item_ids[items],
        )

    def stats(self) -> dict:
        """Users, items, interactions, density and the feature columns."""
        def describe(feats):
            out = {}
            for k, v in feats.items():
                out[k] = f"multi-hot[{v.shape[1]}]" if v.ndim == 2 else f"categorical[{feature_cardinality(v)}]"
            return out

        return {
            "name": self.name,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_interactions": self.n_interactions,
            "density": self.density,
            "has_timestamps": self.timestamps is not None,
            "has_ratings": self.ratings is not None,
            "user_features": describe(self.user_features),
            "item_features": describe(self.item_features),
            "planted_groups": None if self.user_groups is None else int(self.user_groups.max()) + 1,
            "duplicates": self.meta.get("duplicates"),
        }


def _csr_sort_order(m: sp.csr_matrix) -> np.ndarray:
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    return np.lexsort((m.indices, rows))


def _in_pair_order(users: np.ndarray, items: np.ndarray) -> bool:
    """True when the pairs are strictly increasing by (user, item): sorted, no duplicate
    (compared in the arrays' own width: no 64-bit key for the common, sorted case)."""
    u0, u1 = users[:-1], users[1:]
    if not bool(np.all(u1 >= u0)):
        return False
    step = u1 > u0
    step |= items[1:] > items[:-1]
    return bool(step.all())


def _dedupe_latest(users: np.ndarray, items: np.ndarray, n_items: int,
                   timestamps: np.ndarray | None) -> np.ndarray:
    """Positions of the kept events, in (user, item) order (None: all of them, already in that
    order): per pair the latest by timestamp,
    ties (and no timestamps) broken by position. Sorts one int64 key instead of a 3-key lexsort;
    only the rows of duplicated pairs are ordered by timestamp."""
    n = len(users)
    if n < 2 or _in_pair_order(users, items):
        return None  # already in order, no duplicate: every event, in place
    key = users.astype(np.int64) * np.int64(max(n_items, 1)) + items
    order = np.argsort(key)
    ks = key[order]
    same = ks[1:] == ks[:-1]
    if same.any():
        in_dup = np.zeros(n, dtype=bool)
        in_dup[1:] |= same
        in_dup[:-1] |= same
        idx = np.flatnonzero(in_dup)
        sub = order[idx]
        tkey = sub if timestamps is None else np.asarray(timestamps)[sub]
        order[idx] = sub[np.lexsort((sub, tkey, ks[idx]))]
    last = np.ones(n, dtype=bool)
    last[:-1] = ~same
    return order[last]


def _index_array(a) -> np.ndarray:
    """An integer index array as given (int32 stays int32), other input as int64."""
    a = np.asarray(a)
    return a if a.dtype.kind == "i" else a.astype(np.int64)


def _sum_duplicates(users, items, n_items, values, sel) -> np.ndarray | None:
    """Per kept (user, item) pair the sum of its events' values, aligned with ``sel`` (the kept
    positions in pair order, see :func:`_dedupe_latest`), or None when no pair repeats."""
    if sel is None or len(sel) == len(users):
        return None
    key = users.astype(np.int64) * np.int64(max(n_items, 1)) + items
    order = np.argsort(key, kind="stable")
    ks = key[order]
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    return np.add.reduceat(np.asarray(values, np.float64)[order], starts)


DUPLICATE_RULES = ("last", "sum")


def from_coo(name: str, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int,
             values: np.ndarray | None = None, timestamps: np.ndarray | None = None,
             ratings: np.ndarray | None = None, duplicates: str = "last",
             owned: bool = False, **kwargs) -> Interactions:
    """Build :class:`Interactions` from index triples; duplicate pairs are collapsed to one.

    ``duplicates="last"`` keeps the value, rating and timestamp of the last event by timestamp
    (or by position when there are no timestamps): a re-rating replaces the rating.
    ``duplicates="sum"`` keeps the sum of the events' values (and ratings) with the latest
    timestamp: play or click counts add up. When pairs repeat, ``meta["duplicates"]`` records
    the rule, the rows read and the pairs kept. ``owned``: the caller hands its arrays over
    (it keeps no reference), so writeable arrays already in order and of the right type are used
    without a copy.
    """
    if duplicates not in DUPLICATE_RULES:
        raise ValueError(f"{name}: duplicates={duplicates!r}: expected one of {DUPLICATE_RULES}")
    users, items = _index_array(users), _index_array(items)
    if len(users) != len(items):
        raise ValueError(f"{name}: {len(users)} user indices but {len(items)} item indices")
    if len(users) and (users.min() < 0 or users.max() >= n_users or items.min() < 0
                       or items.max() >= n_items):
        raise ValueError(f"{name}: user/item indices outside [0, {n_users}) x [0, {n_items})")
    vals = np.ones(len(users), np.float32) if values is None else np.asarray(values, np.float32)
    sel = _dedupe_latest(users, items, n_items, timestamps)
    # events already in (user, item) order without duplicates (the MovieLens files): every
    # row is kept in place: plain copies (the result owns its arrays) instead of five 20M-row
    # gathers (~1.5 s for ml-20m)
    keep = ((lambda a: a if owned and a.flags.writeable else a.copy()) if sel is None
            else (lambda a: a[sel]))
    kept_vals = keep(vals)
    kept_ratings = None
    if ratings is not None:  # never the same array as the matrix's data
        kept_ratings = keep(np.asarray(ratings, np.float32))
        if np.may_share_memory(kept_ratings, kept_vals):
            kept_ratings = kept_ratings.copy()
    if duplicates == "sum":
        summed = _sum_duplicates(users, items, n_items, vals, sel)
        if summed is not None:
            kept_vals = summed.astype(np.float32)
            if ratings is not None:
                kept_ratings = _sum_duplicates(users, items, n_items, ratings, sel).astype(np.float32)
    if sel is not None and len(sel) < len(users):
        meta = dict(kwargs.pop("meta", None) or {})
        meta["duplicates"] = {"rule": duplicates, "rows": int(len(users)), "pairs": int(len(sel))}
        kwargs["meta"] = meta
    u, i = (users, items) if sel is None else (users[sel], items[sel])  # read, not stored
    # u is in user order either way: row starts by binary search, not a 20M-row bincount
    indptr = np.searchsorted(u, np.arange(n_users + 1, dtype=u.dtype)).astype(np.int64)
    mat = sp.csr_matrix((kept_vals, i.astype(np.int32, copy=not owned), indptr),
                        shape=(n_users, n_items))
    mat.has_sorted_indices = True  # in (user, item) order by construction: no 20M-index scan
    return Interactions(
        name=name,
        matrix=mat,
        timestamps=None if timestamps is None else keep(np.asarray(timestamps, np.int64)),
        ratings=kept_ratings,
        **kwargs,
    )
