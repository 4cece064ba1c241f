"""Engines: RssMonitor counts the memory of child processes (Spark's JVM, DDP ranks); the
[engines] section reaches every model; training-cost rows say how and how fast one pass ran."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from mfsoftmax.bench.config import ConfigError, load_config, validate
from mfsoftmax.bench.measure import RssMonitor

CHILD = ("import sys, time\n"
         "b = bytearray(200 * 2**20)\n"
         "for i in range(0, len(b), 4096): b[i] = 1\n"
         "print('ready', flush=True)\n"
         "sys.stdin.read()\n")


def test_rss_monitor_counts_a_child_process():
    with RssMonitor(interval=0.01, children_every=0.01) as mon:
        child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "ready"
            deadline = time.monotonic() + 10
            while mon.children_peak_mb < 150 and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            child.stdin.close()
            child.wait(timeout=30)
    assert mon.children_peak_mb >= 150, mon.children_peak_mb
    assert mon.delta_mb >= 150
    assert mon.processes >= 2
    assert mon.peak_mb >= mon.self_peak_mb + 150


def test_rss_monitor_without_children_ignores_them():
    with RssMonitor(interval=0.01, children=False) as mon:
        child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "ready"
            time.sleep(0.1)
        finally:
            child.stdin.close()
            child.wait(timeout=30)
    assert mon.children_peak_mb == 0.0 and mon.processes == 1


def _cfg(**engines):
    from mfsoftmax.bench.config import DEFAULTS, merge

    return merge(DEFAULTS, {"engines": engines, "models": {
        "wals": {"kind": "wals", "params": {"dim": 8}},
        "wals-own": {"kind": "wals", "params": {"engine": "implicit"}},
        "softmax": {"kind": "softmax", "params": {"dim": 8}},
        "pop": {"kind": "popularity"}}})


def test_engines_reach_every_built_model_and_model_params_override():
    from mfsoftmax.bench.context import RunContext

    results: dict = {"run": {}}

    class Split:
        protocol = "strong"

    ctx = RunContext(_cfg(mf="spark", dnn_workers=2), None, Split(), None, results)
    assert ctx.build("wals").engine == "spark"
    assert ctx.build("wals-own").engine == "implicit"
    assert ctx.build("softmax").workers == 2
    assert ctx.tuned_params("softmax")["workers"] == 2
    assert "engine" not in ctx.tuned_params("pop")
    assert results["run"]["engines"]["models"]["wals"] == {"engine": "spark"}
    assert results["run"]["engines"]["mf"] == "spark"


def test_bad_engines_are_clear_errors():

    for engines, what in (({"mf": "hadoop"}, "engines.mf"), ({"dnn_workers": 0}, "engines.dnn_workers"),
                          ({"gpus": 2}, "engines.gpus")):
        cfg = _cfg()
        cfg["engines"].update(engines)
        with pytest.raises(ConfigError, match=what.replace(".", r"\.")):
            validate(cfg, "t.toml")


def test_training_rows_carry_engine_workers_processes():
    from mfsoftmax.bench.sweeps import training_vs_size
    from mfsoftmax.models import WALS

    rows = training_vs_size([3000], {"wals": lambda: WALS(dim=4, iterations=1)}, n_items=200)
    (row,) = rows
    assert row["engine"] == "implicit" and row["workers"] == 1 and row["processes"] >= 1
    assert row["peak_rss_abs_mb"] >= row["peak_rss_mb"]


def test_training_rows_time_one_pass_and_its_throughput():
    from mfsoftmax.bench.sweeps import training_vs_size
    from mfsoftmax.models import WALS, SoftmaxDNN

    builders = {"wals": lambda: WALS(dim=4, iterations=2),
                "dnn": lambda: SoftmaxDNN(dim=4, hidden=(8,), epochs=2, patience=5,
                                          loss="sampled-uniform", n_negatives=5)}
    rows = training_vs_size([3000], builders, n_items=200, families={"wals": "mf", "dnn": "softmax"})
    wals, dnn = rows
    assert (wals["family"], dnn["family"]) == ("mf", "softmax")
    assert wals["s_per_pass"] == pytest.approx(wals["wall_s"] / 2)  # two iterations
    assert 0 < dnn["s_per_pass"] < dnn["wall_s"] / 2  # an epoch without setup and validation
    for r in rows:
        assert r["examples_per_s"] == pytest.approx(r["n_interactions"] / r["s_per_pass"])
        assert r["dim"] == 4
    assert dnn["engine"] == "torch" and dnn["workers"] == 1


def test_sweep_models_and_params_validated():
    cfg = load_config("scale-out")
    validate(cfg, "scale-out.toml")  # the shipped scale-out config is valid
    assert cfg["sweeps"]["train_models"] == ["wals", "wals-spark", "softmax-sampled-uniform",
                                             "softmax-sampled-uniform-2w"]
    bad = load_config("scale-out")
    bad["sweeps"]["train_models"] = ["wals", "missing"]
    with pytest.raises(ConfigError, match="sweeps.train_models names 'missing'"):
        validate(bad, "t.toml")
    bad = load_config("scale-out")
    bad["sweeps"]["train_params"] = {"wals": {"dim": 0}}
    with pytest.raises(ConfigError, match="sweeps.train_params"):
        validate(bad, "t.toml")


def test_children_count_only_for_models_that_spawn_them():
    from mfsoftmax.bench.engines import spawns_processes
    from mfsoftmax.models import WALS, SoftmaxDNN

    assert spawns_processes(WALS(dim=4)) is False
    assert spawns_processes(WALS(dim=4, engine="spark")) is True  # its kept JVM counts
    assert spawns_processes(SoftmaxDNN(dim=4)) is False
    assert spawns_processes(SoftmaxDNN(dim=4, workers=2)) == "new"  # its ranks, not a JVM
    # a process left running beside an in-process fit (a kept Spark session) is not charged to it
    from mfsoftmax.bench.sweeps import training_vs_size

    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        (row,) = training_vs_size([3000], {"wals": lambda: WALS(dim=4, iterations=1)}, n_items=200)
    finally:
        child.communicate("")
    assert row["children_peak_rss_mb"] == 0 and row["processes"] == 1


def test_a_failing_fit_is_a_row_and_the_sweep_goes_on():
    from mfsoftmax.bench.sweeps import training_vs_size
    from mfsoftmax.models import WALS

    class OutOfMemory(WALS):
        def fit(self, train, *a, **k):
            if train.n_users > 150:  # sizes 2000, 4000, 8000: 100, 200, 400 users
                raise MemoryError("Java heap space")
            return super().fit(train, *a, **k)

    rows = training_vs_size([2000, 4000, 8000], {"big": lambda: OutOfMemory(dim=4, iterations=1),
                                                 "wals": lambda: WALS(dim=4, iterations=1)},
                            n_items=200, families={"big": "mf", "wals": "mf"})
    big = [r for r in rows if r["model"] == "big"]
    assert [r["wall_s"] is not None for r in big] == [True, False, False]
    assert big[1]["note"] == "failed: MemoryError: Java heap space" and big[1]["engine"] == "implicit"
    assert big[2]["note"].startswith("not run: failed at ")
    assert all(r["wall_s"] is not None for r in rows if r["model"] == "wals")  # the others go on


def test_new_children_only_leaves_out_a_process_started_before_the_block():
    old = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
    try:
        assert old.stdout.readline().strip() == "ready"
        with RssMonitor(interval=0.01, children="new", children_every=0.01) as mon:
            new = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)
            assert new.stdout.readline().strip() == "ready"
            time.sleep(0.1)
            new.communicate("")
        with RssMonitor(interval=0.01, children=True, children_every=0.01) as every:
            time.sleep(0.1)
    finally:
        old.communicate("")
    assert mon.processes == 2 and 150 < mon.children_peak_mb < 350  # the new 200 MB child only
    assert every.processes == 2 and every.children_peak_mb > 150  # the old one, with children=True
