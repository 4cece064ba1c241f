"""The process's SparkSession for ``WALS(engine="spark")`` (:mod:`.spark`): pyspark's
presence, the session's settings, its start, its errors and its end.

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

from ..params import ParamError
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


# ------------------------------------------------------------------ session
_STATE: dict = {"key": None, "spark": None, "checkpoint": None, "startup_s": 0.0}
_LOCK = threading.Lock()


def current_session():
    """The process's cached SparkSession, or None when none is running."""
    return _STATE["spark"]


def startup_seconds() -> float:
    """Seconds the cached session took to start (its JVM included when it started one)."""
    return float(_STATE["startup_s"])


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
