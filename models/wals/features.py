"""The textbook cold-start heuristic: the mean embedding of trained rows sharing features.

A new user (or item) gets the mean embedding of the trained users (items) whose categorical
features all equal its own; when no trained row matches, features are dropped one at a time from
the last in a fixed order (the feature dict's order) and the match retried; with every feature
dropped, the mean of all trained rows is used.
"""

from __future__ import annotations

import numpy as np


def encode_features(features: dict) -> tuple[list[str], np.ndarray]:
    """Feature names and an (n x F) int64 code matrix: 1-D categorical columns as they are,
    2-D multi-hot columns as one code per distinct row (a combination is one category)."""
    names, cols = [], []
    for name, arr in features.items():
        arr = np.asarray(arr)
        if arr.ndim == 1:
            cols.append(arr.astype(np.int64))
        elif arr.ndim == 2 and arr.shape[1] <= 62 and np.isin(arr, (0, 1)).all():
            cols.append(arr.astype(np.int64) @ (np.int64(1) << np.arange(arr.shape[1], dtype=np.int64)))
        elif arr.ndim == 2:
            cols.append(np.unique(arr, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64))
        else:
            raise ValueError(f"feature {name!r} has {arr.ndim} dimensions; expected 1 or 2")
        names.append(str(name))
    n = len(cols[0]) if cols else 0
    codes = np.stack(cols, axis=1) if cols else np.zeros((n, 0), dtype=np.int64)
    return names, codes


class FeatureMeans:
    """Mean embeddings of trained rows per feature combination, with back-off.

    Parameters
    ----------
    codes : ndarray (n x F) int64
        Feature codes of every row of the index space (trained or not).
    trained : ndarray of bool (n,)
        Rows whose embeddings are trained (e.g. users with training interactions).
    emb : ndarray (n x d)
        Embeddings of all rows (only ``trained`` ones are averaged).
    """

    def __init__(self, codes: np.ndarray, trained: np.ndarray, emb: np.ndarray):
        n, n_feat = codes.shape
        trained = np.asarray(trained, dtype=bool)
        if len(trained) != n or emb.shape[0] != n:
            raise ValueError(f"codes ({n} rows), trained ({len(trained)}) and embeddings "
                             f"({emb.shape[0]}) must describe the same rows")
        member = np.flatnonzero(trained)
        E = np.asarray(emb[member], dtype=np.float64)
        self.global_mean = E.mean(axis=0) if len(member) else np.zeros(emb.shape[1])
        # keys[k]: group id of every row using the first k+1 features
        self.keys, self.means, self.counts = [], [], []
        key = np.zeros(n, dtype=np.int64)
        for f in range(n_feat):
            col = codes[:, f] - codes[:, f].min() if n else codes[:, f]
            key = np.unique(key * (int(col.max()) + 1 if n else 1) + col, return_inverse=True)[1]
            key = key.reshape(-1).astype(np.int64)
            n_keys = int(key.max()) + 1 if n else 0
            counts = np.bincount(key[member], minlength=n_keys)
            sums = np.zeros((n_keys, E.shape[1]))
            np.add.at(sums, key[member], E)
            with np.errstate(invalid="ignore", divide="ignore"):
                means = sums / counts[:, None]
            self.keys.append(key)
            self.means.append(means)
            self.counts.append(counts)

    @property
    def n_features(self) -> int:
        return len(self.keys)

    def lookup(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings for ``rows`` and the number of features each match used (0 = global mean)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.tile(self.global_mean, (len(rows), 1))
        level = np.zeros(len(rows), dtype=np.int64)
        todo = np.ones(len(rows), dtype=bool)
        for k in range(self.n_features, 0, -1):
            if not todo.any():
                break
            key = self.keys[k - 1][rows]
            hit = todo & (self.counts[k - 1][key] > 0)
            out[hit] = self.means[k - 1][key[hit]]
            level[hit] = k
            todo &= ~hit
        return out.astype(np.float32), level


def new_row_embeddings(features: dict, trained: np.ndarray, emb: np.ndarray,
                       new_features: dict) -> np.ndarray:
    """The :class:`FeatureMeans` heuristic for rows outside the index space (e.g. new items
    that only a side table lists): ``new_features`` (name -> m rows, coded as ``features``) are
    encoded together with the n indexed rows, so a combination means the same on both sides.

    Returns the (m x d) embeddings, float32.
    """
    names = list(features)
    if set(new_features) != set(names):
        raise ValueError(f"new rows have features {sorted(new_features)}, expected {sorted(names)}")
    n = len(trained)
    both = {k: np.concatenate([np.asarray(features[k]), np.asarray(new_features[k])]) for k in names}
    _, codes = encode_features(both)
    m = len(codes) - n
    if not names:
        codes = np.zeros((n + m, 0), dtype=np.int64)
    grown = np.concatenate([np.asarray(emb), np.zeros((m, emb.shape[1]), dtype=emb.dtype)])
    means = FeatureMeans(codes, np.concatenate([np.asarray(trained, bool), np.zeros(m, bool)]), grown)
    return means.lookup(np.arange(n, n + m))[0]
