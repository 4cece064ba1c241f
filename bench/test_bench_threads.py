"""pytest-benchmark group ``serve-threads``: the cost of two runtimes' thread pools fighting
(issue 27). A batch's torch scores (``Q @ V.T``, 256 x 64 by 64 x 26,744: a torch parallel
region at the run's 2 threads) and then one request's ``V @ q`` (26,744 x 64, numpy's BLAS):

- ``fighting``: the request with torch and BLAS at 2 threads (the serving stage before the
  fix): libgomp's worker spins after the batch and OpenBLAS's worker waits for a core;
- ``one-thread``: the request under ``bench.serving.request_threads`` (one thread), as the
  serving stage now times every single request.

``extra_info["request_us"]`` is the request's median alone (the batch before it untimed);
the benchmark's own figure is batch + request. Measured here (2 cores, other work running): the
request 21 ms fighting against 0.34 ms on one thread (``V @ q`` alone: 60 µs at 2 threads,
105 µs at 1). Run with ``pytest bench/test_bench_threads.py --benchmark-enable``.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from mfsoftmax.bench.serving import request_threads

N_ITEMS, DIM, BATCH = 26_744, 64, 256


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(0)
    V = rng.standard_normal((N_ITEMS, DIM), dtype=np.float32)
    return V, V[0].copy(), torch.randn(BATCH, DIM), torch.from_numpy(V).T


@pytest.mark.parametrize("pools", ["fighting", "one-thread"])
def test_thread_pool_contention(benchmark, arrays, pools):
    V, q, Q, VT = arrays
    prev = torch.get_num_threads()
    torch.set_num_threads(2)
    request_us = []
    try:
        with threadpool_limits(limits=2):
            def batch_then_request():
                Q @ VT  # the run's threads: a torch parallel region
                with request_threads() if pools == "one-thread" else contextlib.nullcontext():
                    t0 = time.perf_counter()
                    s = V @ q
                    request_us.append((time.perf_counter() - t0) * 1e6)
                return s

            scores = benchmark(batch_then_request)
    finally:
        torch.set_num_threads(prev)
    benchmark.group = "serve-threads"
    benchmark.extra_info.update(pools=pools, n_items=N_ITEMS, dim=DIM, batch=BATCH,
                                request_us=round(float(np.median(request_us)), 3),
                                request_threads=1 if pools == "one-thread" else 2)
    np.testing.assert_allclose(scores, V @ q, rtol=1e-4, atol=1e-3)
