"""``mfsoftmax history``: the store, change points naming the first commit of a step, the page."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mfsoftmax.cli import main as cli
from mfsoftmax.history.changepoints import change_points
from tests.fixtures import RESULTS_V1

BASELINE = RESULTS_V1  # a real (old) quick run's results
N_RUNS, STEP_AT = 24, 15


@pytest.mark.parametrize("seed", range(5))
def test_one_injected_step_is_found_at_its_first_point(seed):
    rng = np.random.default_rng(seed)
    x = 1.0 + 0.03 * rng.standard_normal(30)
    x[17:] *= 1.2
    (step,) = change_points(x)
    assert step.index == 17 and step.direction == "up" and step.ratio == pytest.approx(1.2, 0.05)
    (down,) = change_points(1 / x)
    assert down.index == 17 and down.direction == "down"


@pytest.mark.parametrize("seed", range(5))
def test_a_flat_noisy_series_has_no_step(seed):
    rng = np.random.default_rng(100 + seed)
    x = 1.0 + 0.03 * rng.standard_normal(40)
    assert change_points(x) == []
    x[20] *= 1.5  # one outlier is not a step
    assert change_points(x) == []


def test_a_noiseless_series_steps_at_any_real_change():
    assert [s.index for s in change_points([0.30] * 8 + [0.36] * 8)] == [8]
    assert change_points([0.30] * 16) == []


def _runs(tmp_path: Path) -> list[Path]:
    """N_RUNS results files of commits c00..: timings noisy, WALS's epoch x1.3 from STEP_AT on."""
    base = json.loads(BASELINE.read_text())
    rng = np.random.default_rng(0)
    paths = []
    for i in range(N_RUNS):
        d = copy.deepcopy(base)
        d["run"]["id"], d["run"]["git_commit"] = f"run-{i:02d}", f"c{i:02d}" + "0" * 38
        for m in d["models"].values():
            for sec, key in (("training", "epoch_thread_min_s"), ("serving", "p50_min_us")):
                if isinstance(m.get(sec), dict) and m[sec].get(key):
                    m[sec][key] *= 1 + 0.03 * rng.standard_normal()
        if i >= STEP_AT:
            d["models"]["wals"]["training"]["epoch_thread_min_s"] *= 1.3
        paths.append(tmp_path / f"r{i}.json")
        paths[-1].write_text(json.dumps(d))
    return paths


def test_history_names_the_commit_of_an_injected_step(tmp_path, capsys):
    store = tmp_path / "store"
    for p in _runs(tmp_path):
        assert cli(["history", "add", str(p), "--store", str(store)]) == 0
    capsys.readouterr()
    page = tmp_path / "h.html"
    assert cli(["history", "show", "--store", str(store), "--format", "json",
                "--figures", "wals/*", "softmax-in-batch/*", "--html", str(page)]) == 0
    out = json.loads(capsys.readouterr().out)
    steps = {f["figure"]: f["steps"] for f in out["figures"] if f["steps"]}
    assert list(steps) == ["wals/training.epoch_thread_min_s"]
    (step,) = steps["wals/training.epoch_thread_min_s"]
    assert step["commit"] == f"c{STEP_AT:02d}" + "0" * 38 and step["direction"] == "up"
    assert len(out["runs"]) == N_RUNS and all(f["n"] == N_RUNS for f in out["figures"])
    text = page.read_text()
    assert text.count("data:image/png;base64,") == len(out["figures"])
    assert "http" not in text.replace("http-equiv", "")  # self-contained


def test_history_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    store = tmp_path / "store"
    assert cli(["history", "add", str(tmp_path / "nope.json"), "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.json" in err[0]
    d = json.loads(BASELINE.read_text())
    d["run"]["git_commit"] = None
    (tmp_path / "nocommit.json").write_text(json.dumps(d))
    assert cli(["history", "add", str(tmp_path / "nocommit.json"), "--store", str(store)]) == 2
    assert "--commit" in capsys.readouterr().err
    assert not (store / "history.sqlite").exists()  # nothing half-written
    assert cli(["history", "show", "--store", str(store)]) == 2
    assert "--store" in capsys.readouterr().err


# ----------------------------------------------------------------------------- CI's step
CI_HISTORY = Path(__file__).resolve().parents[1] / ".ci" / "history"


def _ci_run(tmp_path: Path, i: int, wals_factor: float = 1.0) -> Path:
    """The quick run of CI run ``i``: the folder name (run.id 'quick') is the same every run."""
    d = json.loads(BASELINE.read_text())
    d["run"].update(id="quick", git_commit=f"ci{i:02d}" + "0" * 36,
                    started_at=f"2026-12-{i + 1:02d}T00:00:00+00:00")
    d["models"]["wals"]["training"]["epoch_thread_min_s"] *= wals_factor
    path = tmp_path / f"ci{i}.json"
    path.write_text(json.dumps(d))
    return path


def _ci_history(*args) -> subprocess.CompletedProcess:
    """``.ci/history ARGS`` as .ci/run calls it (``mfsoftmax`` of this environment on PATH)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", str(CI_HISTORY), *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300, check=False)


def test_ci_history_step_starts_a_store_then_names_the_commit_of_a_step(tmp_path, capsys):
    """.ci/history: a first CI run (no store yet) passes with one run and no step; runs whose
    run.id repeats (CI's 'quick' folder) are all kept; a step in WALS's epoch from the 4th run
    on is named at that run's commit."""
    store = tmp_path / "ci-out" / "history"
    first = _ci_history(_ci_run(tmp_path, 0), store)
    assert first.returncode == 0, first.stderr
    assert "1 run(s)" in first.stdout and "0 figure(s) with a step" in first.stdout
    for i in range(1, 5):  # the CI runs in between, added as .ci/history's first line does
        assert cli(["history", "add", str(_ci_run(tmp_path, i, 1.3 if i >= 3 else 1.0)),
                    "--store", str(store)]) == 0
    last = _ci_history(_ci_run(tmp_path, 5, 1.3), store)
    assert last.returncode == 0, last.stderr
    assert "6 run(s)" in last.stdout and "1 figure(s) with a step" in last.stdout
    (line,) = [x for x in last.stdout.splitlines() if "step up" in x]
    assert line.strip().startswith("wals/training.epoch_thread_min_s: step up x1.300")
    assert line.endswith("first at ci03000000")
    again = _ci_history(_ci_run(tmp_path, 5, 1.3), store)  # the same run twice: refused
    assert again.returncode == 2
    assert "already in" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    assert _ci_history(store).returncode == 2  # a missing argument: usage, exit 2
