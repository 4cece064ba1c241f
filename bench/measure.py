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

Per-epoch times: ``epoch_wall_s``, ``epoch_cpu_s`` and ``epoch_thread_s`` list each
iteration's/epoch's wall seconds, process CPU seconds and CPU seconds of the thread that runs
``fit`` (from one callback to the next, the first from the start of ``fit``; the model's own
evaluation subtracted). ``epoch_thread_min_s`` (the fastest epoch's thread CPU time) is the
robust training figure that ``compare`` gates on: a single ``wall_s`` of a whole fit grows with
every preemption on a shared machine, and process CPU time also counts helper threads that
spin-wait on an idle core (OpenMP, BLAS) but not on a busy one; the fitting thread's CPU time
is charged for neither. It assumes the suite's single-threaded training (``run.threads`` = 1,
the default); with more threads it counts the calling thread's share only.
``epoch_thread_median_s``, ``epoch_wall_min_s`` and ``epoch_cpu_min_s`` are information.

Precision: every fit's row records ``precision`` (what the model computed in: the DNN's
resolved ``precision``, fp32 for the others, :func:`~.engines.precision_of`), and the suite's
calibration records torch's one-thread matmul peak in float32 and in bfloat16
(:func:`sample_precision_peaks`, ``matmul_peak_gflops``) beside numpy's float32
``matmul_gflops``, so a training figure can be read against the peak of the precision it ran in.
"""

from __future__ import annotations

import ctypes
import gc
import statistics
import threading
import time

import psutil

from .engines import precision_of, spawns_processes

#: torch dtypes of the precision peaks (:func:`calibrate_torch_matmul`)
PEAK_DTYPES = ("fp32", "bf16")
PEAK_METHOD = ("best of 10 single-threaded 512x512 torch matmuls per sample and dtype; "
               "matmul_peak_gflops[dtype] = best sample")


def release_free_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``), so an
    RSS delta measures what the next step allocates rather than what earlier steps left free."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the delta may under-count reused memory
        pass


class RssMonitor:
    """Context manager sampling the RSS of this process and (``children=True``, the default) of
    all its descendant processes (Spark's JVM, DDP ranks), summed; ``peak_mb``, ``delta_mb``,
    ``self_peak_mb``, ``children_peak_mb`` and ``processes`` (the most processes seen at once,
    this one included) after exit. Shared pages are counted once per process (RSS, not PSS).
    The list of descendants is refreshed every ``children_every`` seconds (a scan of /proc),
    their RSS read at every sample.

    The sampling thread competes for the GIL with what it measures, so its period grows with
    the block's age: ``interval`` at first, then 1% of the time elapsed, at most
    ``max_interval`` (the children scan: 2%, at least ``children_every``). A block of minutes is
    sampled every half second, about a hundred samples per minute at most: measured, sampling
    at a fixed 10 ms with the children scan took ~10% of a softmax epoch's samples."""

    def __init__(self, interval: float = 0.01, children: bool | str = True,
                 children_every: float = 0.25, max_interval: float = 0.5):
        self.interval = interval
        # True: every descendant; "new": only those started inside the block (DDP ranks, not a
        # Spark JVM left running by an earlier fit); False: none
        self.children = children
        self._old_kids: set = set()
        self.children_every = children_every
        self.max_interval = max(interval, max_interval)
        self._t0 = time.perf_counter()
        self._proc = psutil.Process()
        self._kids: list = []
        self._kids_at = -1e9
        self._stop = threading.Event()
        self.start_mb = self.peak_mb = 0.0
        self.self_peak_mb = self.children_peak_mb = 0.0
        self.processes = 1

    def _kid_list(self) -> list:
        now = time.perf_counter()
        if now - self._kids_at >= max(self.children_every, 0.02 * (now - self._t0)):
            try:
                self._kids = [k for k in self._proc.children(recursive=True)
                              if k.pid not in self._old_kids]
            except psutil.Error:
                self._kids = []
            self._kids_at = now
        return self._kids

    def _sample(self) -> tuple[float, float, int]:
        own = self._proc.memory_info().rss / 2**20
        kids, n = 0.0, 0
        if self.children:
            for k in self._kid_list():
                try:
                    kids += k.memory_info().rss / 2**20
                    n += 1
                except psutil.Error:  # ended since the last scan
                    pass
        return own, kids, n

    def _rss_mb(self) -> float:
        own, kids, _ = self._sample()
        return own + kids

    def _update(self) -> float:
        own, kids, n = self._sample()
        self.self_peak_mb = max(self.self_peak_mb, own)
        self.children_peak_mb = max(self.children_peak_mb, kids)
        self.processes = max(self.processes, 1 + n)
        self.peak_mb = max(self.peak_mb, own + kids)
        return own + kids

    def _period(self) -> float:
        """Seconds to the next sample: ``interval``, growing to 1% of the block's age."""
        return min(self.max_interval, max(self.interval, 0.01 * (time.perf_counter() - self._t0)))

    def _run(self):
        while not self._stop.is_set():
            self._update()
            self._stop.wait(self._period())

    def __enter__(self):
        self._t0 = time.perf_counter()
        if self.children == "new":
            try:
                self._old_kids = {k.pid for k in self._proc.children(recursive=True)}
            except psutil.Error:
                self._old_kids = set()
        release_free_memory()
        self.start_mb = self.peak_mb = self._update()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._kids_at = -1e9  # a last full scan
        self._update()

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
    dict with wall_s, cpu_s, peak_rss_mb, peak_rss_abs_mb, epochs, curve, eval_s, the per-epoch
    lists and summaries (``epoch_*``, see the module docstring), memory_method.
    """
    state = {"wall": 0.0, "cpu": 0.0, "iters": 0, "curve": [], "eval": 0.0,
             "epoch_wall": [], "epoch_cpu": [], "epoch_thread": [],
             "t": time.perf_counter(), "c": time.process_time(), "h": time.thread_time()}

    def mark():
        state["t"], state["c"], state["h"] = time.perf_counter(), time.process_time(), time.thread_time()

    def close_epoch(now, cnow, hnow, m):
        """Charge the time since the last mark to the epoch, less the model's own evaluation."""
        own_eval = float(getattr(m, "eval_seconds", 0.0) or 0.0)
        ev = max(0.0, own_eval - state["eval"])
        state["eval"] = own_eval
        dw, dc, dh = now - state["t"], cnow - state["c"], hnow - state["h"]
        state["wall"] += dw
        state["cpu"] += dc
        state["epoch_wall"].append(max(0.0, dw - ev))
        state["epoch_cpu"].append(max(0.0, dc - ev))
        state["epoch_thread"].append(max(0.0, dh - ev))
        return own_eval

    def callback(iteration, m):
        now, cnow, hnow = time.perf_counter(), time.process_time(), time.thread_time()
        own_eval = close_epoch(now, cnow, hnow, m)
        state["iters"] = iteration + 1
        if curve_fn is not None:
            state["curve"].append({"iteration": iteration + 1,
                                   "wall_s": round(state["wall"] - own_eval, 6),
                                   "recall@10": float(curve_fn(m))})
        mark()
        return False

    with RssMonitor(children=spawns_processes(model)) as mon:
        mark()
        model.fit(train, valid=valid, callback=callback)
        now, cnow, hnow = time.perf_counter(), time.process_time(), time.thread_time()
        if state["epoch_wall"]:  # the tail after the last callback (no epoch of its own)
            state["wall"] += now - state["t"]
            state["cpu"] += cnow - state["c"]
        else:  # a model that never called back: the whole fit is one epoch
            close_epoch(now, cnow, hnow, model)
    eval_s = float(getattr(model, "eval_seconds", 0.0) or 0.0)
    return {
        "precision": precision_of(model),
        "wall_s": max(0.0, state["wall"] - eval_s),
        "cpu_s": max(0.0, state["cpu"] - eval_s),
        "peak_rss_mb": round(mon.delta_mb, 3),
        "peak_rss_abs_mb": round(mon.peak_mb, 3),
        "epochs": int(state["iters"]),
        "curve": state["curve"],
        "eval_s": eval_s,
        **epoch_stats(state["epoch_wall"], state["epoch_cpu"], state["epoch_thread"]),
        "memory_method": "RSS sampled at 100 Hz during fit, minus RSS before fit (after gc + malloc_trim)",
    }


def epoch_stats(wall: list, cpu: list, thread: list) -> dict:
    """The per-epoch lists (seconds, rounded to the microsecond) and their summaries."""
    wall, cpu, thread = ([round(float(x), 6) for x in v] for v in (wall, cpu, thread))
    return {
        "epoch_wall_s": wall,
        "epoch_cpu_s": cpu,
        "epoch_thread_s": thread,
        "epoch_wall_min_s": min(wall) if wall else None,
        "epoch_cpu_min_s": min(cpu) if cpu else None,
        "epoch_thread_min_s": min(thread) if thread else None,
        "epoch_thread_median_s": statistics.median(thread) if thread else None,
    }


def calibrate_torch_matmul(dtype: str = "bf16", n: int = 512, repeats: int = 10) -> float:
    """torch's ``n`` x ``n`` matmul rate in ``dtype`` (``fp32`` | ``bf16``) on one thread,
    GFLOP/s: the best of ``repeats`` (a busy machine preempts some; the best is the machine's
    speed). bf16 runs at its native rate only where the CPU has AMX or AVX-512 BF16."""
    import torch  # lazy: torch (~2-5 s)

    dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(dt)
    b = torch.randn(n, n, generator=gen).to(dt)
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.mm(a, b)  # warm-up
        best = float("inf")
        for _ in range(max(1, int(repeats))):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(prev)
    return 2.0 * n**3 / max(best, 1e-12) / 1e9


def sample_precision_peaks(calibration: dict, **kwargs) -> dict:
    """Measure :func:`calibrate_torch_matmul` in every :data:`PEAK_DTYPES` once more and record
    it in ``calibration`` (a run's ``run.calibration``, updated in place):
    ``matmul_peak_gflops[dtype]`` the best sample so far, ``matmul_peak_samples[dtype]`` every
    sample, ``bf16_over_fp32`` their ratio. Returns this sample ``{dtype: GFLOP/s}``."""
    got = {dt: round(calibrate_torch_matmul(dt, **kwargs), 3) for dt in PEAK_DTYPES}
    samples = calibration.setdefault("matmul_peak_samples", {})
    peaks = calibration.setdefault("matmul_peak_gflops", {})
    for dt, g in got.items():
        samples.setdefault(dt, []).append(g)
        peaks[dt] = max(samples[dt])
    calibration["bf16_over_fp32"] = round(peaks["bf16"] / peaks["fp32"], 3) if peaks["fp32"] else None
    calibration["peak_method"] = PEAK_METHOD
    return got
