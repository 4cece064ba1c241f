"""`compare` on real measurements under a concurrent CPU load.

One small measurement (calibration samples, per-epoch training times and interleaved serving
rounds of fitted Popularity, WALS and softmax models on a small synthetic dataset) is taken
quietly twice (the baseline: the better of the two, as a baseline is made on a quiet machine),
while busy processes compete for every core, and quietly with a real 2x slowdown injected
into WALS (each epoch does its CPU work twice, each request is answered twice). The same code compared against itself under load must pass with
the default thresholds; the slowed model must fail on both of its gated timings, and only it.
Nothing here asserts an absolute time.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from mfsoftmax.compare import GATED_TIMINGS, compare, format_text

SERVING = {"queries": 200, "warmup": 10, "batch_sizes": [1, 16], "k": 10, "rounds": 5,
           "min_time": 0.05, "max_batches": 50}
GATED = [f"{sec}.{key}" for sec, keys in GATED_TIMINGS.items() for key in keys]


@pytest.fixture(scope="module")
def setup():
    """Threads pinned to one (as the suite runs), the split and the serving queries."""
    import torch
    from threadpoolctl import threadpool_limits

    from mfsoftmax.datasets import load, make_split
    from mfsoftmax.models import Queries

    torch_threads = torch.get_num_threads()
    with threadpool_limits(limits=1):
        torch.set_num_threads(1)
        try:
            data = load("synthetic", n_users=1000, n_items=500, n_groups=8, seed=0)
            split = make_split(data, "strong", seed=0)
            train = split.train
            active = np.flatnonzero(train.user_activity() > 0)
            users = np.sort(np.random.default_rng(0).choice(active, size=200, replace=False))
            yield split, Queries(users, train.matrix[users], known=True)
        finally:
            torch.set_num_threads(torch_threads)


def build(name: str, slow: bool = False):
    from mfsoftmax.bench.runner import build_model

    specs = {"popularity": ("popularity", {}),
             "wals": ("wals", {"dim": 32, "iterations": 4, "reg": 1.0, "w0": 0.05}),
             "softmax": ("softmax", {"loss": "sampled-uniform", "n_negatives": 100, "dim": 32,
                                     "hidden": [64], "epochs": 2, "batch_size": 256})}
    kind, params = specs[name]
    model = build_model(kind, name, params, seed=0, threads=1)
    return SlowedDown(model) if slow else model


class SlowedDown:
    """A real 2x slowdown of a model: every epoch does its work again (the fitting thread
    spins for as much CPU time as the epoch took) and every request is answered twice (the
    first answer thrown away)."""

    def __init__(self, model):
        self.model = model
        self.family = model.family

    @property
    def eval_seconds(self):
        return getattr(self.model, "eval_seconds", 0.0)

    def fit(self, train, valid=None, callback=None):
        last = [time.thread_time()]

        def twice(it, m):
            spent = time.thread_time() - last[0]
            t0 = time.thread_time()
            while time.thread_time() - t0 < spent:  # the same CPU work once more
                pass
            stop = callback(it, self) if callback is not None else False
            last[0] = time.thread_time()
            return stop

        self.model.fit(train, valid=valid, callback=twice)
        return self

    def recommend(self, queries, k=10, **kw):
        self.model.recommend(queries, k=k, **kw)
        return self.model.recommend(queries, k=k, **kw)


def measure(split, queries, slow=()) -> dict:
    """A results dict (docs/results.md contract, the parts compare reads) of one measurement."""
    from mfsoftmax.bench.measure import timed_fit
    from mfsoftmax.bench.serving import serving_profiles
    from mfsoftmax.runtime import calibrate_matmul, sample_calibration

    calibration = {"matmul_gflops": round(calibrate_matmul(), 3)}
    models, fitted = {}, []
    for name in ("popularity", "wals", "softmax"):
        model = build(name, slow=name in slow)
        training = timed_fit(model, split.train)
        sample_calibration(calibration, f"fit {name}")
        models[name] = {"family": model.family, "training": training}
        fitted.append((name, model))
    profiles = serving_profiles([(m, queries, "test") for _, m in fitted], SERVING)
    sample_calibration(calibration, "serving")
    for (name, _), prof in zip(fitted, profiles, strict=True):
        models[name]["serving"] = prof
    return {"schema_version": 1, "run": {"calibration": calibration}, "models": models}


def best_of(a: dict, b: dict) -> dict:
    """A baseline from two quiet measurements: per model the faster gated figures, the better
    calibration (a baseline is made on a quiet machine; one measurement disturbed by someone
    else's burst does not make it slow)."""
    out = copy.deepcopy(a)
    cal_a, cal_b = a["run"]["calibration"], b["run"]["calibration"]
    if cal_b["matmul_gflops"] > cal_a["matmul_gflops"]:
        out["run"]["calibration"] = copy.deepcopy(cal_b)
    ga, gb = cal_a["matmul_gflops"], cal_b["matmul_gflops"]
    g = max(ga, gb)
    for name, m in out["models"].items():
        for sec, keys in GATED_TIMINGS.items():
            for key in keys:
                # in work units (time x GFLOP/s), back to seconds at the chosen calibration
                work = min(a["models"][name][sec][key] * ga, b["models"][name][sec][key] * gb)
                m[sec][key] = work / g
    return out


def busy_processes(n: int) -> list:
    code = "while True: pass"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


def gated_rows(res, model=None):
    return [r for r in res.rows if r.metric in GATED and (model is None or r.model == model)]


def test_self_compare_under_load_passes_and_a_2x_slowdown_fails(setup):
    import psutil

    split, queries = setup
    quiet = best_of(measure(split, queries), measure(split, queries))
    n_busy = min(4, max(2, os.cpu_count() or 2))  # every core contended, as on a loaded runner
    procs = busy_processes(n_busy)
    try:
        time.sleep(0.2)  # let them get going
        t0 = time.perf_counter()
        # the same statistic as the quiet side (best of two measurements): one measurement under
        # load read popularity's p50 at x1.70 once on this VM (2026-12-03), two at x1.2-1.4
        loaded = best_of(measure(split, queries), measure(split, queries))
        elapsed = time.perf_counter() - t0
        alive = [p.poll() is None for p in procs]
        busy_cpu = sum(psutil.Process(p.pid).cpu_times().user for p in procs)
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
    # the load was real: the busy processes ran throughout and took CPU meanwhile (a share
    # that other work on a shared machine may reduce, hence the low bar)
    assert all(alive) and busy_cpu > 0.05 * elapsed, (alive, busy_cpu, elapsed)

    res = compare(quiet, loaded)
    rows = gated_rows(res)
    assert len(rows) == 2 * 3  # both gated timings of every model were compared
    worst = max(r.norm_ratio for r in rows)
    assert res.exit_code == 0, (f"self-compare under load failed (worst normalised ratio "
                                f"x{worst:.2f}):\n" + format_text(res))

    # the same statistic again (best of two): one measurement read an untouched model's epoch
    # at x2.0 once in a fresh-clone CI run on this VM (2026-12-03)
    slowed = best_of(measure(split, queries, slow=("wals",)), measure(split, queries, slow=("wals",)))
    res = compare(quiet, slowed)
    flagged = gated_rows(res, "wals")
    assert {r.metric for r in flagged} == set(GATED)
    for r in flagged:
        assert r.verdict == "REGRESSION" and r.failed, (r, format_text(res))
    others = [r for r in gated_rows(res) if r.model != "wals"]
    assert others and not [r for r in others if r.failed], format_text(res)
    # the gate flags timings only: the slowed model's quality is a different question
    assert {r.model for r in res.failures if r.kind == "timing"} == {"wals"}
