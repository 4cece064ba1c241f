"""Thread pools of the serving stage (bench/serving.py, bench/floor.py, issue 27): one request
is timed with torch and BLAS at one thread (``request_threads``), batches at the run's threads;
the guard that flags a lean path whose steps slow each other down; the DNN's ``auto`` runtime
chosen inside the lean path at the current thread count. No timed assertions: the contention
itself is shown by which threads run (per-thread CPU time), its cost by
``bench/test_bench_threads.py``."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from mfsoftmax.bench.floor import contention_flags, floor_profiles
from mfsoftmax.bench.serving import REQUEST_THREADS, serving_profiles
from mfsoftmax.datasets import make_split
from mfsoftmax.models import SoftmaxDNN
from mfsoftmax.models.softmax import serving
from mfsoftmax.reports.sections.serving import serving_table
from tests.contract import checkerboard


def _blas_threads() -> int:
    return max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")


@pytest.fixture
def two_threads():
    """The run's pools at 2 threads (``mfsoftmax run --threads 2``), restored after."""
    prev = torch.get_num_threads()
    torch.set_num_threads(2)
    with threadpool_limits(limits=2):
        yield
    torch.set_num_threads(prev)


_MECHANISM = """
import os, sys, threading, time
from pathlib import Path
import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits
from mfsoftmax.bench.serving import request_threads


def blas_threads():
    return max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")


def helper_ticks():
    me, total = str(threading.get_native_id()), 0
    for tid in os.listdir("/proc/self/task"):
        if tid == me:
            continue
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def batch_then_request(V, q, Q, VT, n=60):
    for _ in range(n):
        Q @ VT
        V @ q


torch.set_num_threads(2)
with threadpool_limits(limits=2):
    rng = np.random.default_rng(0)
    V = rng.standard_normal((26_744, 64), dtype=np.float32)
    q, Q = V[0].copy(), torch.randn(256, 64)
    VT = torch.from_numpy(V).T
    batch_then_request(V, q, Q, VT, n=3)
    before = helper_ticks()
    batch_then_request(V, q, Q, VT)
    fighting = helper_ticks() - before
    with request_threads():
        assert torch.get_num_threads() == 1 and blas_threads() == 1
        batch_then_request(V, q, Q, VT, n=3)
        time.sleep(0.5)  # the 2-thread phase's workers stop spinning (they spin, then sleep)
        before = helper_ticks()
        batch_then_request(V, q, Q, VT)
        one = helper_ticks() - before
    assert torch.get_num_threads() == 2 and blas_threads() == 2
print(fighting, one)
"""


def test_two_runtimes_pools_run_helper_threads_one_request_thread_does_not():
    """The mechanism of the contention: at 2 threads a torch batch and a request's ``V @ q``
    wake the worker threads of two pools (libgomp's and OpenBLAS's), which then compete for
    the cores; under ``request_threads`` the request runs on the calling thread alone. Counted
    in a fresh process (per-thread CPU ticks of every thread but the caller's), so no thread
    left by another test is counted."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", _MECHANISM], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    fighting, one = map(int, out.stdout.split())
    assert fighting > 0, "at 2 threads the pools' workers ran"
    assert one <= 1, f"one request's thread only, yet helper threads ran {one} ticks"


class _Probe:
    """A model that records the torch and BLAS threads of every call."""

    def __init__(self):
        self.single, self.batch = set(), set()

    def recommend(self, queries, k=10):
        n = len(queries)
        (self.single if n == 1 else self.batch).add((torch.get_num_threads(), _blas_threads()))
        return np.zeros((n, k), np.int64), np.zeros((n, k), np.float32)


class _Queries(list):
    def __getitem__(self, i):
        if isinstance(i, np.ndarray):
            return _Queries([list.__getitem__(self, int(j)) for j in i])
        return _Queries([list.__getitem__(self, i)])


def test_single_requests_on_one_thread_batches_on_the_runs(two_threads):
    probe = _Probe()
    cfg = {"queries": 6, "warmup": 2, "batch_sizes": [4], "k": 3, "rounds": 2, "min_time": 0.001,
           "max_batches": 1}
    (row,) = serving_profiles([(probe, _Queries(range(8)), "probe")], cfg)
    assert probe.single == {(REQUEST_THREADS, REQUEST_THREADS)} and probe.batch == {(2, 2)}
    assert row["request_threads"] == 1 and row["batch_threads"] == 2


def test_flags_on_injected_figures():
    ok = {"p50_min_us": 800.0, "lean_p50_us": 600.0, "embed_us": 150.0, "embed_alone_us": 148.0}
    assert contention_flags(ok) == []
    # the ml-20m-shape row of issue 27: lean 7.9 ms vs generic 863 µs, embed 3,774 vs 148 µs
    bad = {"p50_min_us": 863.0, "lean_p50_us": 7903.0, "embed_us": 3774.0, "embed_alone_us": 148.0}
    flags = contention_flags(bad)
    assert len(flags) == 2
    assert "slower than generic recommend (7903 vs 863 us)" in flags[0]
    assert "3774 us > 2x" in flags[1] and "(148 us)" in flags[1]
    assert contention_flags({"lean_p50_us": 10.0}) == []  # nothing to compare: no flag
    assert contention_flags({"p50_min_us": 100.0, "lean_p50_us": 105.0}) == []  # within noise
    assert len(contention_flags({"embed_us": 300.0, "embed_alone_us": 100.0})) == 1


def test_lean_flag_compares_pooled_medians():
    # the default quick run's feature-popularity row: its lean path *is* recommend (no
    # embeddings), pooled 84 vs 81 us; against the fastest round's median (65 us) it read as
    # "lean path slower than generic recommend". Pooled against pooled: no flag.
    row = {"p50_us": 80.66, "p50_min_us": 65.30, "lean_p50_us": 83.95}
    assert contention_flags(row) == []
    slow = {"p50_us": 80.66, "p50_min_us": 65.30, "lean_p50_us": 95.0}
    assert contention_flags(slow) == ["lean path slower than generic recommend (95 vs 81 us)"]


def test_report_shows_flags():
    results = {"models": {"dnn": {"serving": {"mode": "query-tower", "p50_us": 900.0, "p95_us": 1.0,
                                              "p99_us": 1.0, "lean_p50_us": 7903.0,
                                              "flags": ["lean path slower than generic recommend"]}}}}
    text = str(serving_table([results], ["run"]))
    assert "lean path slower than generic recommend" in text


@pytest.fixture(scope="module")
def split():
    return make_split(checkerboard(), "holdout", seed=0)


TINY = dict(dim=8, hidden=(16,), batch_size=32, epochs=1, patience=1, lr=0.01, eval_k=3)


def test_floor_and_lean_path_on_one_thread(split, two_threads, monkeypatch):
    model = SoftmaxDNN(**TINY).fit(split.train)
    seen = set()
    real = model.query_embedding_one

    def spy(*a, **kw):
        seen.add((torch.get_num_threads(), _blas_threads()))
        return real(*a, **kw)

    monkeypatch.setattr(model, "query_embedding_one", spy)
    m = split.train.matrix
    singles = [(u, m.indices[m.indptr[u]:m.indptr[u + 1]], True) for u in range(4)]
    (out,) = floor_profiles([(model, singles)], n=4, k=3, rounds=2, warmup=1)
    assert seen == {(1, 1)}
    assert out["request_threads"] == 1 and out["embed_alone_us"] > 0
    assert out["lean_runtime_threads"] == 1 and set(out["lean_runtime_us"]) == {"eager", "torchscript"}


def test_auto_runtime_is_the_fastest_inside_the_lean_path(split, monkeypatch):
    calls = []

    def timings(model, fns, requests, **kw):
        calls.append(torch.get_num_threads())
        assert set(fns) == {"eager", "torchscript"} and requests
        return {"eager": 100.0, "torchscript": 400.0}  # TorchScript slower in the path

    monkeypatch.setattr(serving, "lean_timings", timings)
    model = SoftmaxDNN(**TINY).fit(split.train)
    prev = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        info = model.serve_info()
        assert info["runtime"] == "eager" and "inside the lean path" in info["reason"]
        assert info["lean_us"] == {"eager": 100.0, "torchscript": 400.0} and info["threads"] == 1
        model.recommend_one(0, [1, 2], k=3)
        assert calls == [1]  # timed once per thread count
        torch.set_num_threads(2)
        model.recommend_one(0, [1, 2], k=3)
        assert calls == [1, 2] and model.serve_info()["threads"] == 2
        monkeypatch.setattr(serving, "lean_timings",
                            lambda *a, **kw: {"eager": 100.0, "torchscript": 110.0})
        torch.set_num_threads(1)
        assert model.serve_info()["runtime"] == "torchscript"  # eager not AUTO_MARGIN faster
    finally:
        torch.set_num_threads(prev)
