"""Spark settings checked before any JVM starts (``WALS(engine="spark")``, the config's
``[spark]`` section): the master URL's form, the memory sizes in ``spark_conf``, and whether a
``spark://`` master answers at all. Spark reports each of these only after starting its JVM,
with pages of Java traceback, and an unreachable master only after retrying for over a minute.
"""

from __future__ import annotations

import re
import socket

from ..params import ParamError

#: the master URLs Spark takes (SparkContext.createTaskScheduler's patterns)
MASTER_FORMS = ("local, local[N], local[*], local[N,F], local-cluster[N,C,M], "
                "spark://host:port[,host:port...], yarn or k8s://https://host:port")
_MASTER = re.compile(r"local|local\[(\d+|\*)\s*(,\s*\d+)?\]|local-cluster\[\s*\d+\s*,\s*\d+\s*,"
                     r"\s*\d+\s*\]|spark://[^,/\s:]+:\d+(,[^,/\s:]+:\d+)*|yarn|k8s://\S+")
#: the smallest driver or executor memory Spark starts with: 1.5 x its 300 MiB reserve
MIN_MEMORY = 450 * 2**20
_SIZE = re.compile(r"(\d+)(b|k|kb|m|mb|g|gb|t|tb|p|pb)?", re.IGNORECASE)
_UNITS = {"b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}
#: seconds to wait for a TCP connection to a ``spark://`` master before starting the JVM
CONNECT_TIMEOUT_S = 5.0


def size_bytes(text) -> int | None:
    """A Spark size string (``"512m"``, ``"2g"``, ``"1024"`` in MiB) in bytes, or None when
    Spark would not read it (fractions, unknown units)."""
    match = _SIZE.fullmatch(str(text).strip())
    if match is None:
        return None
    unit = (match.group(2) or "m").lower()[0]
    return int(match.group(1)) * _UNITS[unit]


def check_settings(master, conf, owner: str = "WALS") -> None:
    """Refuse, before a JVM starts, a master URL Spark does not take (``spark_master``) and a
    memory setting it cannot read or cannot start with (``spark_conf``): :class:`ParamError`."""
    if not isinstance(master, str) or not _MASTER.fullmatch(master.strip()):
        raise ParamError(owner, "spark_master", master, f"expected a Spark master URL: {MASTER_FORMS}")
    for key, val in (conf or {}).items():
        key = str(key)
        if not (key.endswith(".memory") or key.endswith("memoryOverhead")):
            continue
        size = size_bytes(val)
        if size is None:
            raise ParamError(owner, "spark_conf", {key: val}, f"{key} must be a whole size such "
                             "as 512m, 2g (units b, k, m, g, t, p; no unit: MiB)")
        if key in ("spark.driver.memory", "spark.executor.memory") and size < MIN_MEMORY:
            raise ParamError(owner, "spark_conf", {key: val}, f"{key} must be at least 450m "
                             "(Spark reserves 300 MiB and needs 1.5 times that to start)")


def check_reachable(master: str, timeout: float | None = None, owner: str = "WALS") -> None:
    """For a ``spark://`` master, raise :class:`ParamError` (``spark_master``) unless one of its
    hosts accepts a TCP connection within ``timeout`` seconds (:data:`CONNECT_TIMEOUT_S`):
    Spark itself retries an unreachable master for over a minute before failing."""
    if not master.startswith("spark://"):
        return
    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    problems = []
    for hostport in master.removeprefix("spark://").split(","):
        host, _, port = hostport.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=timeout).close()
            return
        except OSError as exc:
            problems.append(f"{hostport}: {exc.strerror or type(exc).__name__}")
    raise ParamError(owner, "spark_master", master, f"no master answered within {timeout:g} s "
                     f"({'; '.join(problems)}); is the master running and reachable?")
