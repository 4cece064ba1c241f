"""Serving cost: single-query latency percentiles and batch throughput.

Latency is end to end for one request: the model's query embedding (MF lookup, MF fold-in, or
the DNN's forward pass), scoring all items, dropping seen items and the top-k (argpartition).
Threads are pinned by the suite (single-threaded); each figure follows a warm-up.
"""

from __future__ import annotations

import time

import numpy as np


def percentiles_us(seconds) -> dict:
    """p50/p95/p99 and mean of per-query times given in seconds, in microseconds."""
    us = np.asarray(seconds, dtype=np.float64) * 1e6
    return {"p50_us": float(np.percentile(us, 50)), "p95_us": float(np.percentile(us, 95)),
            "p99_us": float(np.percentile(us, 99)), "mean_us": float(us.mean())}


def latency(model, queries, n: int = 1000, warmup: int = 50, k: int = 10) -> dict:
    """Per-query latency in microseconds over ``n`` single-query requests (cycling ``queries``)."""
    m = len(queries)
    if m == 0:
        raise ValueError("latency needs at least one query")
    singles = [queries[i] for i in range(min(m, n))]
    for i in range(warmup):
        model.recommend(singles[i % len(singles)], k=k)
    times = np.empty(n)
    for i in range(n):
        q = singles[i % len(singles)]
        t0 = time.perf_counter()
        model.recommend(q, k=k)
        times[i] = time.perf_counter() - t0
    return {**percentiles_us(times), "n_queries": int(n)}


def throughput(model, queries, batch_sizes=(1, 32, 256), k: int = 10, min_time: float = 0.3,
               max_batches: int = 200) -> dict:
    """Queries per second at each batch size (batches drawn cyclically from ``queries``)."""
    out = {}
    m = len(queries)
    for b in batch_sizes:
        idx = np.arange(b) % m
        batch = queries[idx]
        model.recommend(batch, k=k)  # warm-up
        done, t0 = 0, time.perf_counter()
        while done < max_batches:
            model.recommend(batch, k=k)
            done += 1
            if time.perf_counter() - t0 >= min_time:
                break
        out[str(b)] = float(done * b / (time.perf_counter() - t0))
    return out


def serving_profile(model, queries, cfg: dict, mode: str) -> dict:
    """Latency percentiles plus throughput, labelled with the serving ``mode``."""
    res = latency(model, queries, n=int(cfg["queries"]), warmup=int(cfg["warmup"]), k=int(cfg["k"]))
    res["qps"] = throughput(model, queries, cfg["batch_sizes"], k=int(cfg["k"]))
    res["mode"] = mode
    return res
