"""A third-party model in one module, as a plugin would ship it: PureSVD (Cremonesi et al.
2010), a truncated SVD of the binary users x items matrix scored as ``h V V^T``.

Registered through the ``mfsoftmax.models`` entry point group (tests/test_plugin_model.py fakes
the installed entry point); passes the shared contract (tests/contract.py) like every model.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse.linalg import svds

from mfsoftmax.models import Queries, RecommenderBase, SuiteSpec


class PureSVD(RecommenderBase):
    """Item factors ``V`` (n_items x dim) from a truncated SVD; a query's embedding is its history
    times ``V`` (known and new users alike: the fold-in is the projection)."""

    name = "pure-svd"
    family = "mf"
    suite = SuiteSpec(serving_modes=("known-user", None), quick_caps={"dim": 16})

    def __init__(self, dim: int = 32, seed: int = 0):
        if int(dim) < 1:
            raise ValueError(f"PureSVD: bad parameter dim={dim!r}")
        self.dim, self.seed = int(dim), int(seed)
        self.V = None

    def fit(self, train, valid=None, callback=None) -> PureSVD:
        self.n_users, self.n_items = train.n_users, train.n_items
        k = max(1, min(self.dim, min(train.matrix.shape) - 1))
        v0 = np.random.default_rng(self.seed).standard_normal(min(train.matrix.shape))
        _, _, vt = svds(train.matrix.astype(np.float64), k=k, v0=v0)
        self.V = np.ascontiguousarray(vt.T, dtype=np.float32)
        if callback is not None:
            callback(0, self)
        return self

    def query_embeddings(self, queries: Queries) -> np.ndarray:
        return np.asarray(queries.history @ self.V, dtype=np.float32)

    def item_embeddings(self) -> np.ndarray:
        return self.V

    def score(self, queries: Queries) -> np.ndarray:
        return self._check_scores(self.query_embeddings(queries) @ self.V.T, queries)

    def get_params(self) -> dict:
        return {"dim": self.dim, "seed": self.seed}

    def save(self, path) -> None:
        self._write_params(path, {**self.get_params(), "n_users": self.n_users, "n_items": self.n_items})
        np.save(f"{path}/V.npy", self.V)

    @classmethod
    def load(cls, path) -> PureSVD:
        p = cls._read_params(path)
        model = cls(dim=p["dim"], seed=p["seed"])
        model.n_users, model.n_items = p["n_users"], p["n_items"]
        model.V = np.load(f"{path}/V.npy")
        return model
