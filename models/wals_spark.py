"""WALS trained by Spark MLlib's ALS (``pyspark.ml.recommendation.ALS``, ``implicitPrefs=True``).

Used by :class:`~mfsoftmax.models.wals.WALS` with ``engine="spark"``; only the fit runs in Spark,
the factors come back as numpy and everything after (fold-in, scoring, serving, cold start, the
objective) is the same numpy code as for the `implicit` engine.

The mapping
-----------
WALS (``models/wals.py``; w_ij observed weight, w0 unobserved weight, lambda = ``reg``)::

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

Sessions
--------
One SparkSession per process (a JVM has one SparkContext), cached per (master, conf) and stopped
at exit; asking for another master stops the current session first. Local masters (``local``,
``local[N]``, ``local[*]``, ``local-cluster[...]``) get offline-safe settings: driver host and
bind address 127.0.0.1 (``SPARK_LOCAL_IP`` too), UI off, a temporary checkpoint directory (ALS
checkpoints every 10 iterations, which keeps long fits from overflowing the stack). A cluster
master (``spark://...``, ``yarn``, ``k8s://...``) gets none of the loopback settings, since its
executors must reach the driver: pass ``spark.driver.host``, ``spark.checkpoint.dir`` (shared
storage) and the executor sizes in ``spark_conf`` (the suite's ``[spark] conf`` table).
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import threading
import time

import numpy as np
import psutil
import scipy.sparse as sp

from . import wals_linalg as la
from .params import ParamError
from .spark_settings import check_reachable, check_settings

INSTALL_HINT = "pip install 'mfsoftmax[spark]'"
MIN_PYSPARK = (4, 0)

#: settings of every session (the user's ``spark_conf`` overrides them)
BASE_CONF = {
    "spark.app.name": "mfsoftmax-wals",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.log.level": "ERROR",
}
#: offline-safe settings of local masters only (a cluster's executors must reach the driver)
LOCAL_CONF = {
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}


class SparkUnavailable(ImportError):
    """pyspark (with pyarrow) is missing or too old for ``WALS(engine="spark")``."""


def require_pyspark():
    """Import pyspark and pyarrow, or raise :class:`SparkUnavailable` naming the install."""
    try:
        import pyarrow  # noqa: F401  optional: pyarrow (with the spark extra), probed
        import pyspark  # optional: pyspark (the spark extra)
    except ImportError as exc:
        raise SparkUnavailable(f"WALS(engine='spark') needs pyspark >= 4.0 and pyarrow "
                               f"({exc.name or exc} is not installed): {INSTALL_HINT}") from exc
    version = tuple(int(p) for p in pyspark.__version__.split(".")[:2] if p.isdigit())
    if version < MIN_PYSPARK:
        raise SparkUnavailable(f"WALS(engine='spark') needs pyspark >= 4.0, found "
                               f"{pyspark.__version__}: {INSTALL_HINT}")
    return pyspark


def available() -> bool:
    """Whether ``engine="spark"`` can be used (pyspark >= 4.0 and pyarrow import)."""
    try:
        require_pyspark()
    except SparkUnavailable:
        return False
    return True


def is_local(master: str) -> bool:
    """Whether ``master`` runs everything on this machine (local, local[N], local-cluster[...])."""
    return master == "local" or master.startswith(("local[", "local-cluster["))


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


# ------------------------------------------------------------------ session
_STATE: dict = {"key": None, "spark": None, "checkpoint": None, "startup_s": 0.0}
_LOCK = threading.Lock()


def session_conf(master: str, conf: dict | None = None) -> dict:
    """The settings a session for ``master`` is built with (``conf`` overrides the defaults)."""
    out = dict(BASE_CONF)
    if is_local(master):
        out.update(LOCAL_CONF)
    out.update({str(k): str(v).lower() if isinstance(v, bool) else str(v)
                for k, v in (conf or {}).items()})
    return out


def get_session(master: str = "local[*]", conf: dict | None = None):
    """The process's SparkSession for ``master`` and ``conf`` (built on first use, reused while
    they stay the same; a different pair stops the current session first)."""
    require_pyspark()
    settings = session_conf(master, conf)
    key = (master, tuple(sorted(settings.items())))
    with _LOCK:
        if _STATE["key"] == key and _STATE["spark"] is not None:
            return _STATE["spark"]
        check_settings(master, conf)
        check_reachable(master)
        _stop_locked()
        from pyspark.sql import SparkSession  # optional: pyspark (the spark extra)

        if is_local(master):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            if "spark.checkpoint.dir" not in settings:
                _STATE["checkpoint"] = tempfile.mkdtemp(prefix="mfsoftmax-spark-checkpoint-")
                settings["spark.checkpoint.dir"] = _STATE["checkpoint"]
        t0 = time.perf_counter()
        builder = SparkSession.builder.master(master)
        for k, v in settings.items():
            builder = builder.config(k, v)
        try:
            spark = builder.getOrCreate()  # spark.log.level sets the log level (no stdout line)
        except Exception as exc:  # py4j / pyspark: one line naming the setting, not pages of Java
            raise session_error(master, conf, exc) from None
        _STATE.update(key=key, spark=spark, startup_s=time.perf_counter() - t0)
        return spark


def session_error(master: str, conf: dict | None, exc: BaseException) -> ParamError:
    """The one-line error of a session that did not start: naming ``spark_master`` for a
    cluster master (it did not take the application: not a running Spark master, or none
    reachable), ``spark_conf`` for a local one (the settings are what the JVM refused)."""
    lines = [ln.strip().removeprefix(": ") for ln in str(exc).splitlines() if ln.strip()]
    cause = next((ln for ln in lines if re.match(r"([\w$]+\.)*[\w$]*(Exception|Error)\b", ln)),
                 lines[0] if lines else type(exc).__name__)
    cause = cause if len(cause) <= 300 else cause[:300] + " ..."
    if is_local(master):
        return ParamError("WALS", "spark_conf", dict(conf or {}), f"Spark did not start with "
                          f"these settings on {master} ({cause})")
    return ParamError("WALS", "spark_master", master, f"Spark did not start an application "
                      f"there ({cause}); is it a running Spark master reachable from here?")


def _stop_locked() -> None:
    spark, _STATE["spark"], _STATE["key"] = _STATE["spark"], None, None
    if spark is not None:
        try:
            spark.stop()
        except Exception:  # noqa: BLE001  (a JVM already gone at exit)
            pass
    if _STATE["checkpoint"]:
        shutil.rmtree(_STATE["checkpoint"], ignore_errors=True)
        _STATE["checkpoint"] = None


def stop_session(jvm: bool = False) -> None:
    """Stop the cached session (registered at exit). pyspark keeps its JVM for the next session
    of the process (JVM-level settings such as ``spark.driver.memory`` are those of the first);
    ``jvm=True`` ends that process too, freeing its memory (the next session starts a new one)."""
    with _LOCK:
        _stop_locked()
        if jvm:
            _shutdown_jvm()


def _shutdown_jvm() -> None:
    try:
        from pyspark import SparkContext  # optional: pyspark
    except ImportError:
        return
    gateway = SparkContext._gateway
    if gateway is None:
        return
    proc = getattr(gateway, "proc", None)
    try:
        gateway.shutdown()
    except Exception:  # noqa: BLE001
        pass
    if proc is not None:  # the gateway JVM exits when its stdin closes
        try:
            proc.stdin.close()
            proc.wait(timeout=60)
        except Exception:  # noqa: BLE001
            proc.kill()
    SparkContext._gateway = None
    SparkContext._jvm = None


atexit.register(stop_session)


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
    before = _STATE["spark"]
    spark = get_session(master, conf)
    started = spark is not before
    from pyspark.ml.recommendation import ALS  # optional: pyspark

    m, n = matrix.shape
    nblocks = int(blocks or max(1, spark.sparkContext.defaultParallelism))
    info = {"master": master, "spark_version": spark.version, "reg_param": float(reg_param),
            "alpha": float(alpha), "blocks": nblocks,
            "startup_s": round(_STATE["startup_s"], 3) if started else 0.0}
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
