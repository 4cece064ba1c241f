"""Feature-conditioned popularity: the most popular items among users who share the query's
categorical features, shrunk toward global popularity.

It is the "averages" heuristic for new users with no model at all, and the cold-start reference
for the feature-based models: with zero revealed items a recommender knows only the features, so
this lookup shows how much ranking signal the features hold beyond popularity.

For each user feature f (1-D integer codes, or a 0/1 multi-hot matrix such as a multi-valued or
text column of a side table) and value v::

    p_f(j | v) = (c_f(v, j) + alpha * p(j)) / (c_f(v) + alpha)

with ``c_f(v, j)`` the training users with value v who interacted with item j, ``c_f(v)`` their
total and ``p(j)`` the global popularity distribution; ``alpha`` (``shrinkage``) is a number of
pseudo-interactions of global popularity. A query's score is ``log(mean_f p_f(j | v_f))``: an
equal-weight mixture over the features (a full cross of features leaves most cells near empty).
A multi-hot feature's ``p_f(j | user)`` is the mean over the user's values (global popularity
when the user has none). With no user feature it ranks exactly as
:class:`~.popularity.Popularity`.
"""

from __future__ import annotations

import io

import numpy as np
import scipy.sparse as sp

from mfsoftmax.runtime import atomic_write_bytes

from .base import Queries, RecommenderBase, SuiteSpec
from .params import ListOf, Num, Text


class FeaturePopularity(RecommenderBase):
    """Popularity within the query's user-feature cells (mixture over features, shrunk).

    Parameters
    ----------
    features : list of str or None
        User features to condition on (None: every user feature, codes or multi-hot).
    shrinkage : float
        alpha >= 0, pseudo-interactions of global popularity added to each cell.
    """

    family = "baseline"
    suite = SuiteSpec(ablation_inputs=(None, True, "user features only (popularity per feature value)"))
    user_independent = False
    PARAMS = {"features": ListOf(item=Text(), none=True), "shrinkage": Num(low=0), "name": Text()}

    def __init__(self, features=None, shrinkage: float = 1000.0, name: str = "feature-popularity"):
        self.checked_params(locals())  # type and range of each (PARAMS)
        self.features = None if features is None else [str(f) for f in features]
        self.shrinkage = float(shrinkage)
        self.name = name
        self.tables: dict[str, np.ndarray] = {}
        self.codes: dict[str, np.ndarray] = {}
        self.global_p = None

    def fit(self, train, valid=None, callback=None) -> FeaturePopularity:
        m = train.matrix.tocsr()
        self.n_users, self.n_items = m.shape
        binary = sp.csr_matrix((np.ones(m.nnz, np.float64), m.indices, m.indptr), shape=m.shape)
        counts = np.asarray(binary.sum(0)).ravel()
        self.global_p = counts / max(counts.sum(), 1.0)
        names = self.features
        if names is None:
            names = sorted(k for k, v in train.user_features.items() if np.asarray(v).ndim in (1, 2))
        self.tables, self.codes = {}, {}
        for name in names:
            if name not in train.user_features:
                have = ", ".join(sorted(train.user_features)) or "none"
                raise ValueError(f"{self.name}: features: no user feature {name!r} (have: {have})")
            codes = np.asarray(train.user_features[name])
            onehot = self._members(name, codes)
            cell = np.asarray((onehot @ binary).todense())  # values x items
            total = cell.sum(1, keepdims=True)
            self.tables[name] = ((cell + self.shrinkage * self.global_p) /
                                 np.maximum(total + self.shrinkage, 1e-12)).astype(np.float32)
            self.codes[name] = codes.astype(np.int64 if codes.ndim == 1 else np.uint8)
        if callback is not None:
            callback(0, self)
        return self

    def _members(self, name: str, codes: np.ndarray) -> sp.csr_matrix:
        """(values x users) membership: one value per user (1-D codes) or several (multi-hot)."""
        if not np.issubdtype(codes.dtype, np.integer) or (codes < 0).any() or codes.ndim not in (1, 2) \
                or (codes.ndim == 2 and codes.max(initial=0) > 1):
            raise ValueError(f"{self.name}: feature {name!r} must be non-negative integer codes "
                             "(1-D) or a 0/1 multi-hot matrix (2-D)")
        if codes.ndim == 2:
            return sp.csr_matrix(codes.T.astype(np.float64))
        n_values = int(codes.max()) + 1 if codes.size else 1
        return sp.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))),
                             shape=(n_values, self.n_users))

    def _mixture(self, name: str, users: np.ndarray) -> np.ndarray:
        """p_f(j | user) of every queried user: its value's row, or for a multi-hot feature
        the mean of its values' rows (global popularity when it has none)."""
        codes, table = self.codes[name][users], self.tables[name]
        if codes.ndim == 1:
            return table[codes]
        w = codes.astype(np.float32)
        n = w.sum(axis=1, keepdims=True)
        mix = (w @ table) / np.maximum(n, 1.0)
        return np.where(n > 0, mix, self.global_p.astype(np.float32)[None, :])

    def score(self, queries: Queries) -> np.ndarray:
        if self.global_p is None:
            raise RuntimeError(f"{self.name}: call fit() (or load()) first")
        users = np.asarray(queries.users, dtype=np.int64)
        if len(users) and (users.min() < 0 or users.max() >= self.n_users):
            raise IndexError(f"{self.name}: user index out of range 0..{self.n_users - 1} (features unknown)")
        if not self.tables:
            mix = np.broadcast_to(self.global_p.astype(np.float32), (len(users), self.n_items))
        else:
            mix = sum(self._mixture(f, users) for f in self.tables) / len(self.tables)
        with np.errstate(divide="ignore"):
            scores = np.log(mix).astype(np.float32)
        return self._check_scores(scores, queries)

    def save(self, path) -> None:
        if self.global_p is None:
            raise RuntimeError(f"{self.name}: call fit() (or load()) first")
        self._write_params(path, {"params": self.get_params(), "n_users": self.n_users,
                                  "n_items": self.n_items, "order": list(self.tables)})
        arrays = {"global_p": self.global_p}
        arrays.update({f"table__{k}": v for k, v in self.tables.items()})
        arrays.update({f"codes__{k}": v for k, v in self.codes.items()})
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(f"{path}/arrays.npz", buf.getvalue())

    @classmethod
    def load(cls, path) -> FeaturePopularity:
        doc = cls._read_params(path)
        model = cls(**doc["params"])
        model.n_users, model.n_items = doc["n_users"], doc["n_items"]
        with np.load(f"{path}/arrays.npz") as z:
            model.global_p = z["global_p"]
            model.tables = {k: z[f"table__{k}"] for k in doc["order"]}
            model.codes = {k: z[f"codes__{k}"] for k in doc["order"]}
        return model
