"""The ann-benchmarks style measurement of one built index: per value of its search parameter,
recall@k against the exact top-k and single-query latency (p50/p99 of the wall time and of the
thread's CPU time); the Pareto frontier and operating point of the points measured."""

from __future__ import annotations

import math
import time

import numpy as np

from ..serving import percentiles_us
from .base import AnnIndex, f32


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """Per-query share of the exact top-k found (ids < 0, faiss's padding, never count)."""
    k = exact.shape[1]
    return np.array([len(set(f[f >= 0].tolist()) & set(e.tolist())) / k
                     for f, e in zip(found, exact, strict=True)])


def time_queries(index: AnnIndex, queries: np.ndarray, k: int, param, warmup: int = 20):
    """Per-query wall seconds and CPU seconds of this thread (one query per call, after
    ``warmup`` untimed calls; searches run on the calling thread) and the ids found. The CPU
    time is what the search costs when the machine is shared: a preempted query's wall time
    grows, its CPU time does not."""
    q = f32(queries)
    index.set_param(param, k)
    for i in range(min(warmup, len(q))):
        index.query(q[i:i + 1], k)
    secs, cpu = np.empty(len(q)), np.empty(len(q))
    ids = np.empty((len(q), k), dtype=np.int64)
    for i in range(len(q)):
        c0, t0 = time.thread_time(), time.perf_counter()
        found = index.query(q[i:i + 1], k)
        secs[i], cpu[i] = time.perf_counter() - t0, time.thread_time() - c0
        ids[i, :found.shape[1]] = found[0]
        ids[i, found.shape[1]:] = -1
    return secs, cpu, ids


def measure_index(index: AnnIndex, queries: np.ndarray, exact_ids: np.ndarray, k: int,
                  warmup: int = 20) -> list[dict]:
    """One row per value of the index's sweep: param, p50/p95/p99/mean (µs, wall), p50/p99 of
    the thread's CPU time (``p50_cpu_us``, ``p99_cpu_us``), recall@k vs exact."""
    rows = []
    params = index.sweep(index.n) if index.param_name else [None]
    for p in params:
        if index.family == "hnswlib" and p is not None and int(p) < k:
            continue  # hnswlib needs ef >= k
        secs, cpu, ids = time_queries(index, queries, k, p, warmup)
        cpu_us = np.asarray(cpu) * 1e6
        rows.append({"param": index.param_name, "param_value": p, **percentiles_us(secs),
                     "p50_cpu_us": float(np.percentile(cpu_us, 50)),
                     "p99_cpu_us": float(np.percentile(cpu_us, 99)),
                     "recall_vs_exact": float(recall_at_k(ids, exact_ids).mean())})
    return rows


def pareto(points: list[dict], x: str = "p50_us", y: str = "recall_vs_exact") -> list[dict]:
    """The points no other point beats on both ``x`` (lower) and ``y`` (higher), by ``x``."""
    pts = sorted((p for p in points if p.get(x) is not None and p.get(y) is not None),
                 key=lambda p: (p[x], -p[y]))
    out, best = [], -math.inf
    for p in pts:
        if p[y] > best:
            out.append(p)
            best = p[y]
    return out


def operating_point(points: list[dict], target_recall: float) -> dict | None:
    """The fastest point (p50) with recall >= ``target_recall``, else the most accurate one."""
    pts = [p for p in points if p.get("p50_us") is not None and p.get("recall_vs_exact") is not None]
    if not pts:
        return None
    ok = [p for p in pts if p["recall_vs_exact"] >= target_recall]
    if ok:
        return min(ok, key=lambda p: p["p50_us"])
    return max(pts, key=lambda p: (p["recall_vs_exact"], -p["p50_us"]))
