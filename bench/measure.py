"""Training-cost measurement: wall and CPU seconds, peak RSS, and the quality-vs-time curve.

Memory method: garbage is collected and freed heap pages are returned to the OS (glibc
``malloc_trim``) just before ``fit``; then the process's RSS is sampled at 100 Hz in a background
thread during ``fit``; ``peak_rss_mb`` is the peak minus the RSS just before ``fit`` (what the
model's training added), ``peak_rss_abs_mb`` the absolute peak. RSS sees native allocations (BLAS, implicit, torch) that
tracemalloc would miss.

Curve: after each iteration/epoch the model calls back; the clock is paused while the callback
evaluates validation Recall@10, so ``wall_s`` and the curve's ``wall_s`` are training time only.
Evaluation a model runs for itself (the DNN's early stopping) is reported as ``eval_s`` and
subtracted as well, so both families are charged for training alone.
"""

from __future__ import annotations

import ctypes
import gc
import threading
import time

import psutil


def release_free_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``), so an
    RSS delta measures what the next step allocates rather than what earlier steps left free."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the delta may under-count reused memory
        pass


class RssMonitor:
    """Context manager sampling this process's RSS; ``peak_mb`` and ``delta_mb`` after exit."""

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self.start_mb = self.peak_mb = 0.0

    def _rss_mb(self) -> float:
        return self._proc.memory_info().rss / 2**20

    def _run(self):
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self._rss_mb())
            self._stop.wait(self.interval)

    def __enter__(self):
        release_free_memory()
        self.start_mb = self.peak_mb = self._rss_mb()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._rss_mb())

    @property
    def delta_mb(self) -> float:
        return max(0.0, self.peak_mb - self.start_mb)


def timed_fit(model, train, valid=None, curve_fn=None) -> dict:
    """Fit ``model`` and measure it.

    Parameters
    ----------
    curve_fn : callable, optional
        ``curve_fn(model) -> float`` (validation Recall@10), called after each iteration with the
        clock paused.

    Returns
    -------
    dict with wall_s, cpu_s, peak_rss_mb, peak_rss_abs_mb, epochs, curve, eval_s, memory_method.
    """
    state = {"wall": 0.0, "cpu": 0.0, "iters": 0, "curve": [],
             "t": time.perf_counter(), "c": time.process_time()}

    def callback(iteration, m):
        now, cnow = time.perf_counter(), time.process_time()
        state["wall"] += now - state["t"]
        state["cpu"] += cnow - state["c"]
        state["iters"] = iteration + 1
        if curve_fn is not None:
            own_eval = float(getattr(m, "eval_seconds", 0.0) or 0.0)
            state["curve"].append({"iteration": iteration + 1,
                                   "wall_s": round(state["wall"] - own_eval, 6),
                                   "recall@10": float(curve_fn(m))})
        state["t"], state["c"] = time.perf_counter(), time.process_time()
        return False

    with RssMonitor() as mon:
        state["t"], state["c"] = time.perf_counter(), time.process_time()
        model.fit(train, valid=valid, callback=callback)
        state["wall"] += time.perf_counter() - state["t"]
        state["cpu"] += time.process_time() - state["c"]
    eval_s = float(getattr(model, "eval_seconds", 0.0) or 0.0)
    return {
        "wall_s": max(0.0, state["wall"] - eval_s),
        "cpu_s": max(0.0, state["cpu"] - eval_s),
        "peak_rss_mb": round(mon.delta_mb, 3),
        "peak_rss_abs_mb": round(mon.peak_mb, 3),
        "epochs": int(state["iters"]),
        "curve": state["curve"],
        "eval_s": eval_s,
        "memory_method": "RSS sampled at 100 Hz during fit, minus RSS before fit (after gc + malloc_trim)",
    }
