"""Serving cost: single-query latency percentiles and batch throughput.

Latency is end to end for one request: the model's query embedding (MF lookup, MF fold-in, or
the DNN's forward pass), scoring all items, dropping seen items and the top-k (argpartition).
Each figure follows a warm-up.

Threads. A single request is served on one thread (:data:`REQUEST_THREADS`, recorded in every
row as ``request_threads``): torch and BLAS are both limited to it around every single-query
timing (:func:`request_threads`), whatever the run's ``--threads``. Measured (2 cores, torch
and numpy's OpenBLAS at 2 threads each): after any torch parallel region (here a batch's
``Q @ V.T``) libgomp's worker spins for milliseconds, and OpenBLAS's worker, which ``V @ q``
(26,744 x 64) wakes, waits for a core: the next ``V @ q`` took 6.7 ms against 54 µs, a lean
DNN request 13.6 ms against 0.46 ms (``bench/test_bench_threads.py::test_thread_pool_contention``).
Production serves one request per thread (concurrency across requests), so that is what a
request's latency measures. Batch throughput keeps the run's thread count
(``batch_threads``).

Robust figures. On a shared machine a single query is sometimes preempted for a whole
scheduler slice (milliseconds), so tail percentiles over a few hundred queries and a single
timed window measure the neighbours, not the model. The measurement is therefore split into
``rounds``: each round times the same ``n / rounds`` single queries (the first ones of the
given queries, cycling) and then one throughput window per batch size, and :func:`serving_profiles` alternates the rounds across every model being
measured, so a burst of load lands on one round of each model rather than on all of one model.

- ``p50_min_us``: the minimum over rounds of each round's median latency (``p50_round_us``),
  the figure ``compare`` gates on;
- ``p50_us``/``p95_us``/``p99_us``/``mean_us``: over all ``n_queries`` pooled (information:
  tails grow with the load);
- ``qps[b]``: the best window's throughput at batch size ``b`` (``qps_median[b]`` the median
  window), ``qps_windows`` windows each.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
from threadpoolctl import threadpool_limits

DEFAULT_ROUNDS = 5
ROUND_WARMUP = 3  # untimed queries at the start of each round (at most the configured warm-up)
REQUEST_THREADS = 1  # a single request's torch and BLAS threads (production: one per request)


@contextlib.contextmanager
def request_threads(n: int = REQUEST_THREADS):
    """Torch, BLAS and OpenMP limited to ``n`` threads inside the block (restored after): the
    thread pools of one request, which then never wait for a worker that another runtime's
    spinning worker keeps off a core."""
    import torch  # lazy: torch (~2-5 s); the report's imports reach this module

    prev = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        with threadpool_limits(limits=int(n)):
            yield int(n)
    finally:
        torch.set_num_threads(prev)


def thread_counts() -> dict:
    """``{"request_threads", "batch_threads"}`` of a serving row: one request's threads and
    the run's (the batch windows')."""
    import torch  # lazy: as in request_threads

    return {"request_threads": REQUEST_THREADS, "batch_threads": int(torch.get_num_threads())}


def percentiles_us(seconds) -> dict:
    """p50/p95/p99 and mean of per-query times given in seconds, in microseconds."""
    us = np.asarray(seconds, dtype=np.float64) * 1e6
    return {"p50_us": float(np.percentile(us, 50)), "p95_us": float(np.percentile(us, 95)),
            "p99_us": float(np.percentile(us, 99)), "mean_us": float(us.mean())}


def robust_latency_us(rounds) -> dict:
    """Pooled percentiles of per-query times (seconds, one array per round) plus the robust
    ``p50_min_us`` (minimum over rounds of the per-round median) and ``p50_round_us``."""
    rounds = [np.asarray(r, dtype=np.float64) for r in rounds if len(r)]
    if not rounds:
        raise ValueError("robust_latency_us needs at least one timed query")
    medians = [float(np.median(r) * 1e6) for r in rounds]
    return {**percentiles_us(np.concatenate(rounds)), "p50_min_us": min(medians),
            "p50_round_us": [round(m, 3) for m in medians]}


def _split(n: int, parts: int) -> list[int]:
    """``n`` as ``parts`` near-equal positive counts (fewer parts when ``n`` is small; ``parts``
    zeros when ``n`` is 0: rounds of throughput windows only)."""
    if int(n) <= 0:
        return [0] * max(1, int(parts))
    parts = max(1, min(int(parts), int(n)))
    base, extra = divmod(int(n), parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class _Job:
    """The measurement state of one (model, queries) pair across rounds."""

    def __init__(self, model, queries, n, warmup, k, batch_sizes, rounds, min_time, max_batches):
        m = len(queries)
        if m == 0:
            raise ValueError("serving measurement needs at least one query")
        self.model, self.k = model, k
        self.counts = _split(n, rounds)
        # every round times the same queries (cycling), so round medians differ only by noise
        self.singles = [queries[i] for i in range(min(m, max(1, max(self.counts))))]
        self.n = int(n)
        self.batches = {int(b): queries[np.arange(int(b)) % m] for b in batch_sizes}
        self.window = min_time / max(1, len(self.counts))
        self.window_batches = max(1, int(np.ceil(max_batches / max(1, len(self.counts)))))
        self.times: list[np.ndarray] = []
        self.qps: dict[int, list[float]] = {b: [] for b in self.batches}
        self.round_warmup = min(int(warmup), ROUND_WARMUP)
        with request_threads():
            for i in range(warmup):
                model.recommend(self.singles[i % len(self.singles)], k=k)
        for batch in self.batches.values():
            model.recommend(batch, k=k)  # warm-up

    def run_round(self, r: int) -> None:
        model, k = self.model, self.k
        times = np.empty(self.counts[r])
        with request_threads():
            if len(times):  # caches went cold while the other models ran their rounds
                for i in range(self.round_warmup):
                    model.recommend(self.singles[i % len(self.singles)], k=k)
            for i in range(len(times)):
                q = self.singles[i % len(self.singles)]
                t0 = time.perf_counter()
                model.recommend(q, k=k)
                times[i] = time.perf_counter() - t0
        if len(times):
            self.times.append(times)
        for b, batch in self.batches.items():
            done, t0 = 0, time.perf_counter()
            while done < self.window_batches:
                model.recommend(batch, k=k)
                done += 1
                if time.perf_counter() - t0 >= self.window:
                    break
            self.qps[b].append(done * b / (time.perf_counter() - t0))

    def result(self) -> dict:
        out = {**robust_latency_us(self.times), "n_queries": self.n, "rounds": len(self.times),
               **thread_counts()}
        if self.batches:
            out["qps"] = {str(b): float(max(v)) for b, v in self.qps.items()}
            out["qps_median"] = {str(b): float(np.median(v)) for b, v in self.qps.items()}
            out["qps_windows"] = min(len(v) for v in self.qps.values())
        return out


def _jobs(specs, n, warmup, k, batch_sizes, rounds, min_time, max_batches) -> list[_Job]:
    return [_Job(model, queries, n, warmup, k, batch_sizes, rounds, min_time, max_batches)
            for model, queries in specs]


def _interleave(jobs: list[_Job]) -> None:
    """Round r of every job, then round r + 1 of every job, ..."""
    for r in range(max(len(j.counts) for j in jobs)):
        for job in jobs:
            if r < len(job.counts):
                job.run_round(r)


def latency(model, queries, n: int = 1000, warmup: int = 50, k: int = 10,
            rounds: int = DEFAULT_ROUNDS) -> dict:
    """Per-query latency in microseconds over ``n`` single-query requests, timed in ``rounds``
    rounds of ``n / rounds`` requests that each cycle through the same first queries; pooled
    percentiles plus the robust ``p50_min_us``."""
    jobs = _jobs([(model, queries)], n, warmup, k, (), rounds, 0.0, 1)
    _interleave(jobs)
    return jobs[0].result()


def throughput(model, queries, batch_sizes=(1, 32, 256), k: int = 10, min_time: float = 0.3,
               max_batches: int = 200, windows: int = DEFAULT_ROUNDS) -> dict:
    """Queries per second at each batch size (batches drawn cyclically from ``queries``): the
    best of ``windows`` timed windows of ``min_time / windows`` seconds (at most
    ``max_batches / windows`` batches) each."""
    job = _Job(model, queries, 0, 0, k, batch_sizes, windows, min_time, max_batches)
    _interleave([job])
    return {str(b): float(max(v)) for b, v in job.qps.items()}


def serving_profiles(specs, cfg: dict) -> list[dict]:
    """Profiles of several ``(model, queries, mode)`` triples with their rounds interleaved
    (round 1 of every model, then round 2, ...), in the order given. ``cfg`` is the suite's
    ``serving`` section (``queries``, ``warmup``, ``batch_sizes``, ``k``, optional ``rounds``,
    ``min_time``, ``max_batches``)."""
    specs = list(specs)
    if not specs:
        return []
    rounds = int(cfg.get("rounds", DEFAULT_ROUNDS))
    jobs = _jobs([(m, q) for m, q, _ in specs], int(cfg["queries"]), int(cfg["warmup"]),
                 int(cfg["k"]), cfg["batch_sizes"], rounds, float(cfg.get("min_time", 0.3)),
                 int(cfg.get("max_batches", 200)))
    _interleave(jobs)
    return [{**job.result(), "mode": mode} for job, (_, _, mode) in zip(jobs, specs, strict=True)]


def serving_profile(model, queries, cfg: dict, mode: str) -> dict:
    """Latency percentiles plus throughput, labelled with the serving ``mode`` (one model; see
    :func:`serving_profiles` to interleave several)."""
    return serving_profiles([(model, queries, mode)], cfg)[0]
