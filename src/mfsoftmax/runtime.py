"""Run bookkeeping: thread pinning, run metadata, atomic writes, matmul calibration."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import psutil
from threadpoolctl import threadpool_info, threadpool_limits

PACKAGES = ("numpy", "scipy", "implicit", "torch", "matplotlib", "threadpoolctl", "hnswlib", "optuna",
            "polars", "faiss-cpu", "pyspark", "mfsoftmax")


def now_iso() -> str:
    """Current UTC time, ISO-8601 with seconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def pin_threads(n: int = 1) -> dict:
    """Pin BLAS/OpenMP and torch thread pools to ``n`` threads for the whole process.

    Returns the thread counts now in effect, for the results file.
    """
    threadpool_limits(limits=n)
    try:
        import torch  # lazy: torch (~2-5 s); `mfsoftmax report` imports this module

        torch.set_num_threads(n)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return thread_info(implicit_threads=n)


def thread_info(implicit_threads: int | None = None) -> dict:
    """Thread counts of BLAS, torch and implicit as they are now."""
    blas = [p.get("num_threads", 0) for p in threadpool_info() if p.get("user_api") == "blas"]
    try:
        import torch  # lazy: torch, as in pin_threads

        torch_threads = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        torch_threads = 0
    return {
        "blas": int(max(blas) if blas else 0),
        "torch": int(torch_threads),
        "implicit": int(implicit_threads if implicit_threads is not None else os.cpu_count() or 1),
    }


def git_commit(path: str | os.PathLike | None = None) -> str | None:
    """The git commit of the checkout at ``path`` (or the cwd), or None outside git."""
    here = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    commit = out.stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=here, capture_output=True, text=True, timeout=5,
    ).stdout.strip()
    return commit + ("-dirty" if dirty else "")


def package_versions(names=PACKAGES) -> dict:
    """Installed versions of the packages that shape the results."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine_info() -> dict:
    """CPU model, cores, memory and GPU (None when there is none)."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = psutil.virtual_memory().total / 2**30
    gpu = None
    with contextlib.suppress(Exception):
        import torch  # lazy: torch, as in pin_threads

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    return {
        "cpu": cpu,
        "cores": int(os.cpu_count() or 1),
        "memory_gb": round(float(mem), 2),
        "gpu": gpu,
        "platform": platform.platform(),
    }


def calibrate_matmul(n: int = 256, repeats: int = 20) -> float:
    """Measured float32 matmul rate of this process, in GFLOP/s: the best of ``repeats`` short
    ``n`` x ``n`` matmuls (about 0.2 ms each at n = 256, well inside one scheduler time slice),
    so that a busy machine, which preempts some of them, still reports the unloaded rate.
    BLAS runs on one thread here whatever the run's thread setting: a multi-threaded matmul
    waits for its slowest thread, which a busy machine has descheduled."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    best = float("inf")
    with threadpool_limits(limits=1, user_api="blas"):
        np.matmul(a, b, out=out)  # warm-up
        for _ in range(max(1, int(repeats))):
            t0 = time.perf_counter()
            np.matmul(a, b, out=out)
            best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / max(best, 1e-12) / 1e9


def sample_calibration(calibration: dict, label: str | None = None, **kwargs) -> float:
    """Measure :func:`calibrate_matmul` once more and record it in ``calibration`` (a run's
    ``run.calibration`` dict, updated in place): the sample is appended to
    ``matmul_gflops_samples`` (with ``label`` in ``matmul_gflops_labels``) and
    ``matmul_gflops`` becomes the best sample so far (a value already there counts as one:
    load only ever slows a sample down, so the best is the machine's speed).
    Call it between stages so the calibration is interleaved with the work it normalises.
    Returns the new sample."""
    g = round(calibrate_matmul(**kwargs), 3)
    samples = calibration.setdefault("matmul_gflops_samples", [])
    if not samples and isinstance(calibration.get("matmul_gflops"), (int, float)):
        samples.append(float(calibration["matmul_gflops"]))  # the run's first calibration
        calibration.setdefault("matmul_gflops_labels", []).append("start")
    samples.append(g)
    calibration.setdefault("matmul_gflops_labels", []).append(label)
    calibration["matmul_gflops"] = max(samples)
    calibration["method"] = CALIBRATION_METHOD
    return g


CALIBRATION_METHOD = ("best of 20 single-threaded 256x256 float32 matmuls per sample; "
                      "matmul_gflops = best sample")


def run_info(seed: int, config: dict, threads: dict | None = None) -> dict:
    """The ``run`` section of results.json, less ``id``/``finished_at``."""
    return {
        "started_at": now_iso(),
        "git_commit": git_commit(),
        "argv": ["mfsoftmax", *sys.argv[1:]] if Path(sys.argv[0]).name == "mfsoftmax" else list(sys.argv),
        "python": sys.version.split()[0],
        "packages": package_versions(),
        "machine": machine_info(),
        "threads": threads if threads is not None else thread_info(),
        "seed": int(seed),
        "config": config,
        "calibration": {"matmul_gflops": round(calibrate_matmul(), 3)},
    }


def check_writable(path: str | os.PathLike, label: str, error=OSError) -> None:
    """Raise ``error`` (one line naming ``label`` and ``path``) unless ``path`` can be made a
    folder: it is not a file, no ancestor is a file, and its nearest existing ancestor is
    writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise error(f"{label} {path}: exists and is not a folder")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise error(f"{label} {path}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise error(f"{label} {path}: cannot write into {probe} (permission denied)")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj):
    """Plain JSON types: numpy scalars and arrays converted, paths as strings, NaN/inf -> None."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if np.isfinite(f) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    """Dump ``obj`` as indented JSON atomically (numpy values become plain numbers, NaN null)."""
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n")
