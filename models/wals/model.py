"""WALS matrix factorization: the model API (DEFINITIONS.md, "WALS").

Objective (w_ij observed weight, w0 unobserved weight, lambda = ``reg``)::

    sum_Omega w_ij (1 - <U_i,V_j>)^2 + w0 sum_{not Omega} <U_i,V_j>^2 + lambda (|U|^2 + |V|^2)

The fit is an engine's (:mod:`.engines`, one module each, chosen from ``engine``, ``solver``
and ``device``): `implicit`'s ALS on the CPU (:mod:`.implicit_cpu`, where the exact mapping to
`implicit`'s objective is stated) or the GPU (:mod:`.implicit_gpu`), exact ALS in numpy
(``solver="direct"``, :mod:`.direct`), or Spark MLlib's implicit ALS (``engine="spark"``,
:mod:`.spark`: confidence exact with Spark's ``alpha = 1/w0 - 1``; Spark's ALS-WR
regularization ``regParam * n_u`` per row equals the flat ``reg / w0`` only on a regular design,
so ``spark_reg`` is Spark's own ``regParam``). The factors are numpy; everything after the fit
(fold-in and the objective, :mod:`.linalg`; the cold-start heuristics, :mod:`.features`) is the
same code for every engine.
"""

from __future__ import annotations

import io

import numpy as np
import scipy.sparse as sp

from mfsoftmax.datasets.core import check_users_items
from mfsoftmax.runtime import atomic_write_bytes

from ..base import Queries, RecommenderBase, SuiteSpec
from ..params import Choice, Flag, Num, Table, Text, Whole
from . import linalg as la
from .engines import ENGINES, make_engine
from .features import FeatureMeans, encode_features

WEIGHTS = ("binary", "linear", "log")
SOLVERS = ("cg", "cholesky", "direct")
COLD_USER = ("features", "popularity", "zero")


class WALS(RecommenderBase):
    """Weighted matrix factorization (WALS) on `implicit`.

    Parameters
    ----------
    dim : int
        Embedding dimension d.
    w0 : float
        Weight of unobserved entries.
    weight : {"binary", "linear", "log"}
        Observed weights w_ij of value c (the training matrix entry, e.g. a play count): 1,
        ``1 + alpha * c``, or ``1 + alpha * log(1 + c / eps)`` (Hu, Koren & Volinsky 2008).
    alpha : float
        Slope of the ``"linear"`` and ``"log"`` schemes.
    eps : float
        Scale of the ``"log"`` scheme.
    reg : float
        L2 regularization lambda on both factor matrices.
    iterations : int
        ALS iterations (one user and one item half-step each).
    solver : {"cg", "cholesky", "direct"}
        `implicit`'s conjugate gradient (approximate) or exact Cholesky solver, or ``"direct"``:
        exact alternating least squares in numpy (batched normal equations, the fold-in solve
        for every row), which also takes ``w0 = 0`` (observed entries only) where `implicit`'s
        confidences ``w / w0`` cannot. CPU only; slower than `implicit` on large data.
    cg_steps : int
        CG steps per row and half-step.
    seed : int
        Seed of the initial factors (uniform in [0, ``init_scale``), users then items, as
        `implicit` draws them).
    threads : int
        `implicit`'s ``num_threads`` (0 = all cores); BLAS is pinned to 1 thread during fit.
    device : {"cpu", "cuda"}
        "cuda" trains with ``implicit.gpu`` (CG only).
    cold_user : {"features", "popularity", "zero"}
        Scores for new users with an empty history.
    progress : bool
        Show `implicit`'s tqdm bar.
    init_scale : float
        Scale of the initial factors.
    track_loss : bool
        Compute the full WALS objective after each iteration into ``loss_history`` (Spark:
        once, after the fit).
    engine : {"implicit", "spark"}
        Who fits: `implicit` (``solver``, ``device``, ``threads`` apply), or Spark MLlib's
        implicit ALS (exact Cholesky half-steps; needs ``0 < w0 < 1``; ``pip install
        'mfsoftmax[spark]'``). Spark fits take no ``init`` and no per-iteration callback (the
        whole fit is one step for the harness); ``spark_info`` records timings and JVM memory.
    spark_master : str
        Spark master URL: ``"local[*]"`` (default), ``"local-cluster[2,1,1024]"``,
        ``"spark://host:7077"``, ...
    spark_conf : dict or None
        Extra Spark settings (``{"spark.executor.memory": "4g"}``) over the offline-safe
        defaults of :mod:`~mfsoftmax.models.wals.spark_session`.
    spark_reg : float or None
        Spark's ``regParam`` (ALS-WR: multiplied by each row's count). None: derived from
        ``reg`` as ``(reg / w0) / nbar``, nbar = 2 nnz / (n_users + n_items) -- exact on a
        regular design, an approximation elsewhere. When given, the numpy stages after the fit
        use ``reg_flat = spark_reg * w0 * nbar`` in place of ``reg``.
    """

    name = "wals"
    family = "mf"
    suite = SuiteSpec(
        serving_modes=("known-user", "fold-in"),
        ablation_inputs=(True, False, "interactions; user features only through the zero-history "
                                      "heuristic"),
        one_pass={"iterations": 1}, quick_caps={"iterations": 4}, folding_sweep="w0",
        memory_params=("dim",))
    PARAMS = {
        "dim": Whole(low=1), "w0": Num(low=0), "weight": Choice(values=WEIGHTS),
        "alpha": Num(low=0), "eps": Num(low=0, open_low=True), "reg": Num(low=0),
        "iterations": Whole(low=1), "solver": Choice(values=SOLVERS), "cg_steps": Whole(low=1),
        "seed": Whole(low=0), "threads": Whole(low=0), "device": Choice(values=("cpu", "cuda")),
        "cold_user": Choice(values=COLD_USER), "progress": Flag(),
        "init_scale": Num(low=0, open_low=True),  # zero factors stay zero: nothing trains
        "track_loss": Flag(), "engine": Choice(values=ENGINES), "spark_master": Text(),
        "spark_conf": Table(none=True), "spark_reg": Num(low=0, none=True),
    }

    def embedding_role(self) -> str:
        return "mf"

    @staticmethod
    def w0_params(w0: float) -> dict:
        """Parameters of a fit at unobserved weight ``w0`` (the folding sweep): ``w0 = 0`` takes
        the direct solver, since `implicit`'s confidences ``w / w0`` cannot."""
        return {"w0": float(w0), **({"solver": "direct"} if float(w0) == 0.0 else {})}

    def __init__(self, dim: int = 64, w0: float = 0.1, weight: str = "binary", alpha: float = 1.0,
                 eps: float = 1.0,
                 reg: float = 0.1, iterations: int = 15, solver: str = "cg", cg_steps: int = 3,
                 seed: int = 0, threads: int = 1, device: str = "cpu", cold_user: str = "features",
                 progress: bool = False, init_scale: float = 0.01, track_loss: bool = True,
                 engine: str = "implicit", spark_master: str = "local[*]",
                 spark_conf: dict | None = None, spark_reg: float | None = None):
        p = self.checked_params(locals())  # type and range of each (PARAMS)
        # what the ranges cannot say: the combinations the engine cannot fit
        make_engine(p["engine"], p["solver"], p["device"]).check(type(self).__name__, p)
        vars(self).update(p)  # each parameter, converted, under its own name (get_params)
        self.spark_conf = p["spark_conf"] or {}
        self.reg_flat = self.reg  # the flat lambda of the numpy stages after fit (see spark_reg)
        self.spark_info: dict = {}
        self.U = self.V = None
        self.loss_history: list[float] = []
        self.iterations_run = 0
        self.fit_seconds = 0.0
        self._matrix = None  # reference to the training matrix (no copy), for objective()
        self._item_pop = self._user_active = None
        self._user_features = self._item_features = None  # training side information (no copy)
        self._user_codes = self._item_codes = None
        self._user_feature_names: list[str] = []
        self._item_feature_names: list[str] = []
        self._cache: dict = {}

    # ------------------------------------------------------------------ params
    def weights_of(self, values: np.ndarray) -> np.ndarray:
        """Observed weights w_ij for interaction ``values`` under the weight scheme."""
        if self.weight == "binary":
            return np.ones(len(values), dtype=np.float32)
        c = np.asarray(values, dtype=np.float32)
        if self.weight == "log":
            return (1.0 + self.alpha * np.log1p(c / np.float32(self.eps))).astype(np.float32)
        return (1.0 + self.alpha * c).astype(np.float32)

    def memory_parts(self, n_users: int, n_items: int, nnz: int) -> dict:
        """Bytes a fit allocates at least: the factors U and V (float32), the d x d Gramians
        (implicit's float32 YtY, the objective's two float64 ones) and the confidences."""
        d = self.dim
        return {"factors U and V": 4.0 * (n_users + n_items) * d,
                "d x d Gramians": float(d) * d * (4 + (16 if self.track_loss else 0)),
                "confidences": 4.0 * nnz}

    # --------------------------------------------------------------------- fit
    def init_factors(self, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
        """Initial (U, V): uniform [0, init_scale), users drawn first (as `implicit` does)."""
        rng = np.random.default_rng(self.seed)
        U = rng.random((n_users, self.dim), dtype=np.float32) * np.float32(self.init_scale)
        V = rng.random((n_items, self.dim), dtype=np.float32) * np.float32(self.init_scale)
        return U, V

    def fit(self, train, valid=None, callback=None, init=None) -> WALS:
        """Train on ``train`` (Interactions, users x items); ``init`` = optional (U0, V0)."""
        matrix = check_users_items(train.matrix, what=f"{train.name} training matrix")
        self.check_memory(train)  # before any array: refuse what cannot fit, saying how much
        m, n = matrix.shape
        self.n_users, self.n_items = m, n
        self._matrix = matrix
        self._item_pop = np.bincount(matrix.indices, minlength=n).astype(np.int64)
        self._user_active = np.diff(matrix.indptr) > 0
        self._user_features, self._item_features = train.user_features, train.item_features
        self._user_codes = self._item_codes = None  # encoded on first cold-start use
        self._cache = {}
        self.loss_history = []
        self.iterations_run = 0
        self.reg_flat = self.reg
        make_engine(self.engine, self.solver, self.device).fit(self, matrix, init, callback)
        self._cache = {}
        return self

    def start_factors(self, init, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
        """The factors a fit starts from: ``init`` (U0, V0) as float32 C arrays, checked against
        the data's shape, or :meth:`init_factors`."""
        U, V = init if init is not None else self.init_factors(n_users, n_items)
        U = np.array(U, dtype=np.float32, order="C")
        V = np.array(V, dtype=np.float32, order="C")
        if U.shape != (n_users, self.dim) or V.shape != (n_items, self.dim):
            raise ValueError(f"init factors have shapes {U.shape}, {V.shape}; expected "
                             f"({n_users}, {self.dim}) and ({n_items}, {self.dim})")
        return U, V

    def iteration_done(self, iteration: int, callback=None) -> bool:
        """Called by the engine after iteration ``iteration`` (0-based), ``U`` and ``V``
        current: records it (and the objective, with ``track_loss``) and returns whether
        ``callback(iteration, self)`` asks to stop."""
        self.iterations_run = iteration + 1
        self.clear_cache()
        if self.track_loss:
            self.loss_history.append(self.objective())
        return bool(callback is not None and callback(iteration, self))

    def clear_cache(self) -> None:
        """Forget what was derived from the factors (Gramians, feature means): they changed."""
        self._cache = {}

    def objective(self) -> float:
        """The full WALS objective of the current factors on the training matrix."""
        if self._matrix is None:
            raise RuntimeError("WALS.objective() needs the training matrix: call fit() first "
                               "(a loaded model does not keep it)")
        m = self._matrix
        return la.objective(self.U, self.V, m, self.weights_of(m.data), self.w0, self.reg_flat)

    # ------------------------------------------------------------ embeddings
    def _check_fitted(self):
        if self.U is None:
            raise RuntimeError("WALS: call fit() (or load()) first")

    def _cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def item_embeddings(self) -> np.ndarray:
        """Item factors V (n_items x d)."""
        self._check_fitted()
        return self.V

    def fold_in_users(self, history: sp.csr_matrix) -> np.ndarray:
        """Fold-in solve for each row of ``history`` (B x n_items): (B x d); empty rows -> 0."""
        self._check_fitted()
        history = check_users_items(history, n_items=self.n_items, what="fold-in history")
        gram = self._cached("item_gram", lambda: la.gramian(self.V, self.w0, self.reg_flat))
        return la.fold_in(self.V, gram, history, self.weights_of(history.data), self.w0)

    def fold_in_items(self, item_users: sp.csr_matrix) -> np.ndarray:
        """Fold-in of new items from their users (n_new x n_users CSR): (n_new x d)."""
        self._check_fitted()
        if not sp.isspmatrix_csr(item_users) or item_users.shape[1] != self.n_users:
            raise ValueError(f"item_users must be a CSR matrix (new items x {self.n_users} users), "
                             f"got {type(item_users).__name__} of shape {getattr(item_users, 'shape', None)}")
        gram = self._cached("user_gram", lambda: la.gramian(self.U, self.w0, self.reg_flat))
        return la.fold_in(self.U, gram, item_users, self.weights_of(item_users.data), self.w0)

    def _encode(self) -> None:
        if self._user_codes is None:
            self._user_feature_names, self._user_codes = encode_features(self._user_features or {})
            if not self._user_feature_names:
                self._user_codes = np.zeros((self.n_users, 0), dtype=np.int64)
        if self._item_codes is None:
            self._item_feature_names, self._item_codes = encode_features(self._item_features or {})
            if not self._item_feature_names:
                self._item_codes = np.zeros((self.n_items, 0), dtype=np.int64)

    def _user_means(self) -> FeatureMeans:
        self._encode()
        return self._cached("user_means", lambda: FeatureMeans(self._user_codes, self._user_active, self.U))

    def _item_means(self) -> FeatureMeans:
        self._encode()
        return self._cached("item_means", lambda: FeatureMeans(self._item_codes, self._item_pop > 0, self.V))

    def cold_user_embeddings(self, users: np.ndarray) -> np.ndarray:
        """Mean embedding of training users sharing ``users``' features (with back-off)."""
        self._check_fitted()
        return self._user_means().lookup(self._check_index(users, self.n_users, "user"))[0]

    def cold_item_embeddings(self, item_indices: np.ndarray) -> np.ndarray:
        """Mean embedding of trained items sharing each item's features (with back-off)."""
        self._check_fitted()
        return self._item_means().lookup(self._check_index(item_indices, self.n_items, "item"))[0]

    @staticmethod
    def _check_index(idx, size: int, what: str) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= size):
            raise IndexError(f"{what} indices must be in [0, {size}), got range [{idx.min()}, {idx.max()}]")
        return idx

    def query_embeddings(self, queries: Queries) -> np.ndarray:
        """(B x d) query embeddings: U rows for known users, fold-in for new users with a
        history, the ``cold_user`` heuristic for new users without one (zeros unless
        ``cold_user="features"``)."""
        self._check_fitted()
        users = self._check_index(queries.users, self.n_users, "user")
        if queries.known:
            return self.U[users]
        emb = self.fold_in_users(queries.history)
        empty = np.diff(queries.history.indptr) == 0
        if empty.any() and self.cold_user == "features":
            emb[empty] = self.cold_user_embeddings(users[empty])
        return emb

    # ---------------------------------------------------------------- scoring
    def score(self, queries: Queries) -> np.ndarray:
        scores = self.query_embeddings(queries) @ self.V.T
        if not queries.known and self.cold_user == "popularity":
            empty = np.diff(queries.history.indptr) == 0
            if empty.any():
                scores[empty] = np.log1p(self._item_pop).astype(np.float32)
        return self._check_scores(scores, queries)

    def item_cold_scores(self, queries: Queries, items: np.ndarray,
                         revealed: sp.csr_matrix | None = None) -> np.ndarray:
        """Scores (B x len(items)) of new ``items``: each item embedded by fold-in of its row of
        ``revealed`` (len(items) x n_users) when that row has interactions, else by the
        feature-average heuristic."""
        items = self._check_index(items, self.n_items, "item")
        emb = self.cold_item_embeddings(items)
        if revealed is not None:
            if revealed.shape != (len(items), self.n_users):
                raise ValueError(f"revealed has shape {revealed.shape}, expected ({len(items)}, {self.n_users})")
            has = np.diff(revealed.indptr) > 0
            if has.any():
                emb[has] = self.fold_in_items(revealed[np.flatnonzero(has)])
        return self.query_embeddings(queries) @ emb.T

    # ------------------------------------------------------------ persistence
    def save(self, path) -> None:
        self._check_fitted()
        self._encode()
        params = dict(self.get_params(), name=self.name, n_users=self.n_users, n_items=self.n_items,
                      loss_history=self.loss_history, iterations_run=self.iterations_run,
                      reg_flat=self.reg_flat,
                      user_feature_names=self._user_feature_names,
                      item_feature_names=self._item_feature_names)
        buf = io.BytesIO()
        np.savez(buf, U=self.U, V=self.V, item_pop=self._item_pop, user_active=self._user_active,
                 user_codes=self._user_codes, item_codes=self._item_codes)
        atomic_write_bytes(f"{path}/factors.npz", buf.getvalue())
        self._write_params(path, params)

    @classmethod
    def load(cls, path) -> WALS:
        params = cls._read_params(path)
        init = {k: params[k] for k in cls.PARAMS if k in params}
        model = cls(**init)
        with np.load(f"{path}/factors.npz") as z:
            model.U, model.V = z["U"], z["V"]
            model._item_pop, model._user_active = z["item_pop"], z["user_active"]
            model._user_codes, model._item_codes = z["user_codes"], z["item_codes"]
        model.n_users, model.n_items = params["n_users"], params["n_items"]
        model.loss_history = list(params["loss_history"])
        model.iterations_run = params["iterations_run"]
        model.reg_flat = float(params.get("reg_flat", model.reg))
        model._user_feature_names = params["user_feature_names"]
        model._item_feature_names = params["item_feature_names"]
        return model
