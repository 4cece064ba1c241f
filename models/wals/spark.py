"""WALS trained by Spark MLlib's ALS (``pyspark.ml.recommendation.ALS``, ``implicitPrefs=True``).

Used by :class:`~mfsoftmax.models.wals.WALS` with ``engine="spark"``; only the fit runs in Spark,
the factors come back as numpy and everything after (fold-in, scoring, serving, cold start, the
objective) is the same numpy code as for the `implicit` engine.

The mapping
-----------
WALS (``models/wals/model.py``; w_ij observed weight, w0 unobserved weight, lambda = ``reg``)::

    sum_Omega w_ij (1 - x_i.y_j)^2 + w0 sum_{not Omega} (x_i.y_j)^2 + lambda (|X|^2 + |Y|^2)

divided by w0: confidence w_ij / w0 on observed entries (preference 1), 1 elsewhere (preference
0), regularization lambda / w0 -- the same for every row.

Spark's implicit ALS (``ALS.computeFactors``: Hu, Koren & Volinsky 2008 with the ALS-WR
regularization of Zhou et al. 2008)::

    sum_{u,i} c_ui (p_ui - x_u.y_i)^2 + lambda_s (sum_u n_u |x_u|^2 + sum_i n_i |y_i|^2)
    c_ui = 1 + alpha |r_ui|,  p_ui = [r_ui > 0],  n_u = #{i : r_ui > 0}  (n_i likewise)

(each row solves ``(Y^T Y + sum_I alpha |r| y y^T + lambda_s n_u I) x_u = sum_{I, r > 0} c y``
exactly, by Cholesky).

* **Confidence maps exactly.** Spark is given the rating ``r_ij = (w_ij - w0) / (1 - w0)`` and
  ``alpha = 1/w0 - 1``, so ``c_ij = 1 + (w_ij - w0)/w0 = w_ij / w0`` and ``p_ij = 1`` (every
  weight is >= 1 > w0). For binary WALS (w = 1): rating 1 and **alpha = 1/w0 - 1**. It needs
  ``0 < w0 < 1`` (at w0 >= 1 the confidence ``w/w0 <= 1`` would need alpha <= 0, which Spark
  turns into preference 0).
* **Regularization does not.** Spark scales lambda_s by each row's count (ALS-WR); WALS's lambda
  is flat. They agree only when every row has the same count: on a *regular design* (every user
  with c items, every item with c users) ``lambda / w0 = lambda_s * c``, i.e.
  **lambda_flat = lambda_spark * c * w0** in WALS units, and the two objectives are the same
  function up to the factor w0 (``tests/test_wals_spark.py`` checks Spark's half-steps and its
  final objective against the independent reference solver there). On general data Spark
  regularizes heavy users and popular items more and light ones less than WALS does, so no
  Spark setting reproduces a WALS fit: ``spark_reg`` (Spark's ``regParam``) is a
  hyper-parameter in its own right, tuned on its own scale with the same budget. Its default,
  ``(lambda / w0) / nbar`` with ``nbar = 2 nnz / (n_users + n_items)`` (the mean count over all
  users and items), is exact on a regular design and an approximation elsewhere.
* After the fit the numpy stages use WALS's flat ``lambda_flat``: ``reg`` when ``spark_reg`` is
  derived from it, else ``spark_reg * w0 * nbar`` (the same approximation inverted), recorded as
  ``WALS.reg_flat``.

What runs where
---------------
Spark (the executors) runs the fit: every half-step of every iteration. The driver builds the
ratings DataFrame from the CSR arrays through Arrow (no Python loop over rows) and collects
``userFactors`` and ``itemFactors`` through Arrow into ``(n_users, d)`` and ``(n_items, d)``
float32 arrays aligned with the suite's indices (a user or item without training rows gets a
zero vector, the exact WALS minimiser of an empty row). Evaluation, fold-in of new users,
serving, cold start and the objective then run in numpy on the driver. That bounds the scale:
the driver must hold (n_users + n_items) x d floats (100M users at d = 64: 25.6 GB). Item
factors are what strong-generalization evaluation, fold-in and serving need; user factors are
needed only for known-user scoring, the feature-average cold start and ``objective()``. Beyond a
driver's memory, known-user recommendation would have to stay in Spark
(``ALSModel.recommendForUserSubset`` on the evaluated users) -- not implemented here.

Sessions: :mod:`.spark_session` (one per process, offline-safe settings for local masters).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import psutil
import scipy.sparse as sp

from ..params import ParamError
from . import linalg as la
from .spark_session import current_session, get_session, require_pyspark, startup_seconds
from .spark_settings import check_settings


# ------------------------------------------------------------------ mapping
def spark_alpha(w0: float) -> float:
    """Spark's ``alpha`` for unobserved weight ``w0`` (0 < w0 < 1): ``1/w0 - 1``."""
    if not 0.0 < w0 < 1.0:
        raise ValueError(f"engine='spark' needs 0 < w0 < 1 (Spark's confidence 1 + alpha r "
                         f"maps to w / w0 only when w > w0), got w0={w0!r}")
    return 1.0 / w0 - 1.0


def spark_ratings(weights: np.ndarray, w0: float) -> np.ndarray:
    """Ratings that give Spark confidence ``1 + alpha r = w / w0`` at ``alpha = 1/w0 - 1``:
    ``r = (w - w0) / (1 - w0)`` (1 for binary weights)."""
    w = np.asarray(weights, dtype=np.float64)
    r = (w - w0) / (1.0 - w0)
    if r.size and r.min() <= 0:
        raise ValueError("engine='spark' needs every observed weight above w0")
    return r.astype(np.float32)


def mean_count(matrix: sp.csr_matrix) -> float:
    """``nbar = 2 nnz / (n_users + n_items)``: the mean count over all users and items (c on a
    regular design with c items per user and c users per item)."""
    m, n = matrix.shape
    return 2.0 * matrix.nnz / max(1, m + n)


def default_spark_reg(reg: float, w0: float, matrix: sp.csr_matrix) -> float:
    """Spark's regParam standing for WALS's flat ``reg``: ``(reg / w0) / nbar`` (exact on a
    regular design, an approximation elsewhere)."""
    return float(reg) / float(w0) / max(mean_count(matrix), 1e-12)


def flat_reg(spark_reg: float, w0: float, matrix: sp.csr_matrix) -> float:
    """WALS's flat lambda standing for Spark's ``spark_reg``: ``spark_reg * w0 * nbar``."""
    return float(spark_reg) * float(w0) * mean_count(matrix)


def spark_objective(U: np.ndarray, V: np.ndarray, matrix: sp.csr_matrix, ratings: np.ndarray,
                    alpha: float, reg_param: float) -> float:
    """Spark's implicit objective of (U, V): ``sum_all c (p - s)^2 + lambda_s (sum_u n_u |x_u|^2
    + sum_i n_i |y_i|^2)`` with ``c = 1 + alpha |r|`` and ``p = [r > 0]`` on stored entries,
    c = 1 and p = 0 elsewhere (the all-pairs part by the Gramian trick, as ``la.objective``)."""
    s = la.observed_scores(U, V, matrix)
    r = np.asarray(ratings, dtype=np.float64)
    c, p = 1.0 + alpha * np.abs(r), (r > 0).astype(np.float64)
    all_pairs = float(np.sum(la.gram64(U) * la.gram64(V)))
    loss = all_pairs - float(np.dot(s, s)) + float(np.dot(c, (p - s) ** 2))
    pos = sp.csr_matrix(((r > 0).astype(np.float64), matrix.indices, matrix.indptr),
                        shape=matrix.shape)
    n_u, n_i = np.asarray(pos.sum(axis=1)).ravel(), np.asarray(pos.sum(axis=0)).ravel()
    U64, V64 = np.asarray(U, np.float64), np.asarray(V, np.float64)
    return loss + reg_param * (float(n_u @ (U64**2).sum(1)) + float(n_i @ (V64**2).sum(1)))


# ------------------------------------------------------------------ memory
class JvmMemory:
    """Peak RSS of the Spark JVMs during a block, sampled at ``hz``: the driver JVM (the py4j
    gateway process; in ``local[*]`` it is also the only executor) and, separately, the sum of
    its descendant executor JVMs (``CoarseGrainedExecutorBackend``: the executors of
    ``local-cluster``; a real cluster's executors run elsewhere and are not seen)."""

    def __init__(self, spark, hz: float = 20.0):
        self._psutil, self._period = psutil, 1.0 / hz
        proc = getattr(getattr(spark.sparkContext, "_gateway", None), "proc", None)
        try:
            self._driver = psutil.Process(proc.pid) if proc is not None else None
        except psutil.Error:
            self._driver = None
        self.driver_before_mb = self.driver_peak_mb = self.executors_peak_mb = 0.0
        self.n_executor_procs = 0
        self._stop = threading.Event()

    def _sample(self) -> tuple[float, float, int]:
        if self._driver is None:
            return 0.0, 0.0, 0
        try:
            drv = self._driver.memory_info().rss / 2**20
            kids = self._driver.children(recursive=True)
        except self._psutil.Error:
            return 0.0, 0.0, 0
        ex, n = 0.0, 0
        for k in kids:  # executor JVMs (not the launcher's short-lived shells and JVMs)
            try:
                if any("ExecutorBackend" in part for part in k.cmdline()):
                    ex += k.memory_info().rss / 2**20
                    n += 1
            except self._psutil.Error:
                pass
        return drv, ex, n

    def _run(self):
        while not self._stop.wait(self._period):
            self._update()

    def _update(self):
        drv, ex, n = self._sample()
        self.driver_peak_mb = max(self.driver_peak_mb, drv)
        self.executors_peak_mb = max(self.executors_peak_mb, ex)
        self.n_executor_procs = max(self.n_executor_procs, n)

    def __enter__(self):
        self.driver_before_mb = self._sample()[0]
        self._update()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._update()
        return False


# ---------------------------------------------------------------------- fit
def ratings_frame(spark, matrix: sp.csr_matrix, ratings: np.ndarray):
    """The (user, item, rating) DataFrame of ``matrix``'s stored entries, built through Arrow."""
    import pyarrow as pa  # optional: pyarrow (with the spark extra)

    users = np.repeat(np.arange(matrix.shape[0], dtype=np.int32), np.diff(matrix.indptr))
    table = pa.table({"user": pa.array(users, pa.int32()),
                      "item": pa.array(matrix.indices.astype(np.int32, copy=False), pa.int32()),
                      "rating": pa.array(np.asarray(ratings, dtype=np.float32), pa.float32())})
    return spark.createDataFrame(table)


def collect_factors(frame, n_rows: int, dim: int) -> np.ndarray:
    """``(n_rows, dim)`` float32 from an ALS factor DataFrame (id, features), rows by id; ids
    absent from the frame (no training rows) stay 0."""
    table = frame.toArrow()
    out = np.zeros((n_rows, dim), dtype=np.float32)
    if table.num_rows == 0:
        return out
    ids = table.column("id").to_numpy()
    feats = table.column("features").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    out[ids] = np.asarray(feats, dtype=np.float32).reshape(len(ids), dim)
    return out


def _release(spark) -> None:
    """Unpersist the RDDs ALS left cached (factors, blocks), so a tuning loop does not fill the
    JVM's storage memory."""
    try:
        for rdd in spark.sparkContext._jsc.getPersistentRDDs().values():
            rdd.unpersist(False)
    except Exception:  # noqa: BLE001  (best effort; private API)
        pass


def fit_als(matrix: sp.csr_matrix, ratings: np.ndarray, *, dim: int, iterations: int,
            reg_param: float, alpha: float, seed: int, master: str = "local[*]",
            conf: dict | None = None, blocks: int | None = None):
    """Fit Spark's implicit ALS on ``matrix``'s pattern with ``ratings`` (aligned with
    ``matrix.data``); return ``(U, V, info)`` with numpy factors aligned with the matrix's rows
    and columns and ``info`` the timings (s), sizes and JVM memory (MB) of the fit."""
    before = current_session()
    spark = get_session(master, conf)
    started = spark is not before
    from pyspark.ml.recommendation import ALS  # optional: pyspark

    m, n = matrix.shape
    nblocks = int(blocks or max(1, spark.sparkContext.defaultParallelism))
    info = {"master": master, "spark_version": spark.version, "reg_param": float(reg_param),
            "alpha": float(alpha), "blocks": nblocks,
            "startup_s": round(startup_seconds(), 3) if started else 0.0}
    with JvmMemory(spark) as mem:
        t0 = time.perf_counter()
        frame = ratings_frame(spark, matrix, ratings)
        t1 = time.perf_counter()
        als = ALS(rank=int(dim), maxIter=int(iterations), regParam=float(reg_param),
                  alpha=float(alpha), implicitPrefs=True, nonnegative=False, seed=int(seed),
                  userCol="user", itemCol="item", ratingCol="rating",
                  numUserBlocks=nblocks, numItemBlocks=nblocks, checkpointInterval=10)
        model = als.fit(frame)
        t2 = time.perf_counter()
        U = collect_factors(model.userFactors, m, dim)
        V = collect_factors(model.itemFactors, n, dim)
        t3 = time.perf_counter()
    _release(spark)
    info.update(frame_s=round(t1 - t0, 4), als_s=round(t2 - t1, 4), collect_s=round(t3 - t2, 4),
                seconds=round(t3 - t0, 4),
                jvm_driver_rss_before_mb=round(mem.driver_before_mb, 1),
                jvm_driver_peak_rss_mb=round(mem.driver_peak_mb, 1),
                jvm_executors_peak_rss_mb=round(mem.executors_peak_mb, 1),
                executor_processes=mem.n_executor_procs,
                memory_method="RSS of the driver JVM and (summed) its descendant executor JVMs, "
                              "sampled at 20 Hz during the fit")
    return U, V, info


# ------------------------------------------------------------------- engine
class SparkEngine:
    """The Spark MLlib engine of :class:`~mfsoftmax.models.wals.WALS` (``engine="spark"``):
    the mapping above, :func:`fit_als`, and the factors back as numpy aligned with the matrix
    (rows without training entries: zero)."""

    def check(self, owner: str, p: dict) -> None:
        """Refuse what Spark cannot fit (``w0`` outside (0, 1), ``device="cuda"``) and a master
        URL or memory setting Spark would refuse only after starting its JVM."""
        if not 0 < p["w0"] < 1:  # Spark's confidence 1 + alpha r reaches w / w0 only for w0 < 1
            raise ParamError(owner, "w0", p["w0"], "engine='spark' needs 0 < w0 < 1: Spark's "
                             "confidence 1 + alpha r maps to w / w0 only when w > w0")
        if p["device"] != "cpu":
            raise ParamError(owner, "device", p["device"], "engine='spark' fits on the CPU")
        check_settings(p["spark_master"], p["spark_conf"])

    def fit(self, model, matrix: sp.csr_matrix, init=None, callback=None) -> None:
        """Fit ``model`` on ``matrix`` in one step (Spark gives no per-iteration callback; the
        objective is tracked once, after the fit); sets ``spark_info`` and ``reg_flat``."""
        require_pyspark()
        if init is not None:
            raise ValueError("WALS(engine='spark') cannot start from given factors (Spark's ALS "
                             "draws its own); use engine='implicit'")
        if model.spark_reg is None:
            reg_param = default_spark_reg(model.reg, model.w0, matrix)
        else:
            reg_param = model.spark_reg
            model.reg_flat = flat_reg(model.spark_reg, model.w0, matrix)
        ratings = spark_ratings(model.weights_of(matrix.data), model.w0)
        U, V, info = fit_als(
            matrix, ratings, dim=model.dim, iterations=model.iterations, reg_param=reg_param,
            alpha=spark_alpha(model.w0), seed=model.seed, master=model.spark_master,
            conf=model.spark_conf)
        model.fit_seconds = float(info["seconds"])  # ratings frame + ALS + collect (no JVM start)
        info.update(reg_flat=model.reg_flat, mean_count=mean_count(matrix))
        model.spark_info = info
        model.U, model.V = U, V
        model.iterations_run = model.iterations
        model.clear_cache()
        if model.track_loss:
            model.loss_history.append(model.objective())
