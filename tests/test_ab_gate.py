"""The A/B gate (``mfsoftmax ab``): statistics, the small version of its proof, environments.

The proof's small version uses the worker's synthetic kernels (a numpy matmul loop and a Python
loop; seconds): the same commit against itself under a concurrent busy process passes, and a
1.25x slowdown injected into head (real CPU work) fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from mfsoftmax.bench.ab import add_arguments
from mfsoftmax.bench.ab import main as ab_main
from mfsoftmax.bench.ab.cli import run
from mfsoftmax.bench.ab.report import format_json, format_markdown, format_text
from mfsoftmax.bench.ab.stats import estimate, settled, verdict
from mfsoftmax.bench.ab.worker import slowdowns
from mfsoftmax.bench.ab.worktree import KEEP_ENV, commit_env, prune
from tests.fixtures import RESULTS_V1

REPO = Path(__file__).resolve().parents[1]
SYNTH = ["synthetic.matmul", "synthetic.python"]
BASELINE_FILE = RESULTS_V1  # any results file: only its run.git_commit is rewritten


def _args(*argv):
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(["--repo", str(REPO), *argv])


@pytest.fixture
def busy():
    """A concurrent CPU-bound process for the duration of the test."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield proc
    proc.kill()
    proc.wait()


def test_estimate_is_a_ratio_of_medians_with_a_paired_interval():
    rng = np.random.default_rng(1)
    load = rng.uniform(1.0, 3.0, 30)  # a round's load slows both sides alike
    base = load * (1 + 0.02 * rng.standard_normal(30))
    head = 1.3 * load * (1 + 0.02 * rng.standard_normal(30))
    e = estimate(base, head)
    assert e.ratio == pytest.approx(np.median(head) / np.median(base))
    assert e.lo < e.ratio < e.hi and e.lo > 1.0
    assert estimate(base, head) == e  # seeded: reproducible
    with pytest.raises(ValueError, match="paired"):
        estimate([1.0, 2.0], [1.0])


def test_verdict_needs_both_the_size_and_the_significance():
    from mfsoftmax.bench.ab.stats import Estimate

    assert verdict(Estimate(1, 1.2, 1.2, 1.05, 1.3, 10)) == "SLOWER"
    assert verdict(Estimate(1, 1.2, 1.2, 0.95, 1.4, 10)) == "ok"  # not significant
    assert verdict(Estimate(1, 1.1, 1.1, 1.05, 1.15, 10)) == "ok"  # significant, too small
    assert verdict(Estimate(1, 0.8, 0.8, 0.7, 0.9, 10)) == "faster"
    assert settled(Estimate(1, 1, 1.0, 0.9, 1.1, 10))
    assert not settled(Estimate(1, 1.1, 1.1, 1.0, 1.2, 10))


def test_slowdown_spec_parses_and_names_a_bad_factor():
    assert slowdowns("a=1.25, b=1.1") == {"a": 1.25, "b": 1.1}
    assert slowdowns("1.3") == {"*": 1.3}
    with pytest.raises(ValueError, match="must be >= 1"):
        slowdowns("a=0.5")


def test_identical_commits_pass_under_a_concurrent_busy_process(busy):
    res = run(_args("--base", ".", "--head", ".", "--kernels", *SYNTH, "--min-rounds", "6",
                    "--max-rounds", "16"))
    assert res.exit_code == 0, format_text(res)
    for r in res.rows:
        assert r.verdict != "SLOWER", format_text(res)


def test_an_injected_slowdown_fails_the_gate(busy):
    res = run(_args("--base", ".", "--head", ".", "--kernels", *SYNTH, "--min-rounds", "6",
                    "--max-rounds", "16", "--inject", "synthetic.matmul=1.25"))
    rows = {r.kernel: r for r in res.rows}
    assert rows["synthetic.matmul"].verdict == "SLOWER", format_text(res)
    assert 1.15 < rows["synthetic.matmul"].ratio < 1.4
    assert rows["synthetic.python"].verdict != "SLOWER"
    assert res.exit_code == 1
    md, js = format_markdown(res), json.loads(format_json(res))
    assert "**SLOWER**" in md and md.startswith("<!-- mfsoftmax-ab -->")
    assert js["exit_code"] == 1 and len(js["samples"]["synthetic.matmul"]["head"]) >= 6
    assert all(len(line) <= 100 for line in format_text(res).splitlines())


def test_unknown_ref_is_exit_2_naming_the_option(capsys):
    assert ab_main(_args("--base", "no-such-ref-xyz", "--kernels", *SYNTH)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--base" in err[0] and "no-such-ref-xyz" in err[0]


def test_bad_round_counts_are_exit_2(capsys):
    assert ab_main(_args("--base", ".", "--min-rounds", "9", "--max-rounds", "3")) == 2
    assert "--max-rounds" in capsys.readouterr().err


def _old_project(tmp_path: Path) -> Path:
    """A git repository whose one commit is an 'older' mfsoftmax without the kernels' API."""
    repo = tmp_path / "old"
    (repo / "mfsoftmax").mkdir(parents=True)
    (repo / "mfsoftmax" / "__init__.py").write_text("__version__ = '0.0.1'\n")
    (repo / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "mfsoftmax"\nversion = "0.0.1"\n'
        '[tool.setuptools]\npackages = ["mfsoftmax"]\n')
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "old"], check=True)
    return repo


def test_commit_env_runs_its_own_code_and_a_missing_api_is_reported(tmp_path):
    repo = _old_project(tmp_path)
    env = commit_env(repo, "HEAD", tmp_path / "cache", log=lambda m: None)
    assert (tmp_path / "cache" / env.sha / "ready").exists()
    got = subprocess.run([env.python, "-I", "-c", "import mfsoftmax, numpy; "
                          "print(mfsoftmax.__file__)"], capture_output=True, text=True, check=True)
    assert Path(got.stdout.strip()).resolve().is_relative_to((env.src).resolve())
    assert commit_env(repo, "HEAD", tmp_path / "cache", log=lambda m: None) == env  # cached
    from mfsoftmax.bench.ab.session import Plan, measure
    from mfsoftmax.bench.ab.worktree import head_env

    measured = measure(env, head_env(REPO), Plan(("data.load_file",), 2, 2), log=lambda m: None)
    assert "data.load_file" in measured.info["base"]["missing"]
    from mfsoftmax.bench.ab.report import build

    (row,) = build(measured, ["data.load_file"], 1.15)
    assert row.verdict == "missing in base" and not row.failed


def test_a_worker_that_dies_is_a_clear_error():
    from mfsoftmax.bench.ab.session import Plan, measure
    from mfsoftmax.bench.ab.worktree import CommitEnv, head_env
    from mfsoftmax.compare.load import CompareError

    broken = CommitEnv("broken", "", "/bin/false", REPO)
    with pytest.raises(CompareError, match="worker of broken .* ended with status 1 during setup"):
        measure(broken, head_env(REPO), Plan(tuple(SYNTH), 2, 2), log=lambda m: None)
    assert not psutil.Process().children(), "the head worker was left running"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], capture_output=True, text=True, check=True).stdout.strip()


def test_ci_base_is_the_merge_base_then_the_baselines_commit_then_nothing(tmp_path):
    """.ci/ab-base: the merge base with main; on main itself the commit the committed baseline
    was made from; after a push, the commit before it when known; in a clone without either,
    nothing (CI then skips the gate, saying so)."""
    repo = tmp_path / "r"
    (repo / ".ci").mkdir(parents=True)
    (repo / ".ci" / "ab-base").write_text((REPO / ".ci" / "ab-base").read_text())
    (repo / "bench" / "baselines").mkdir(parents=True)
    _git(tmp_path, "init", "-q", "-b", "main", str(repo))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "first")
    first = _git(repo, "rev-parse", "HEAD")
    base = json.loads(BASELINE_FILE.read_text())
    base["run"]["git_commit"] = first + "-dirty"
    (repo / "bench" / "baselines" / "default-quick.json").write_text(json.dumps(base))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "baseline")

    def ab_base(r: Path, **env) -> str:
        return subprocess.run(["bash", str(r / ".ci" / "ab-base")], capture_output=True,
                              text=True, check=True, env={**os.environ, **env}).stdout.strip()

    assert ab_base(repo) == first  # on main: the baseline's commit
    main_tip = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-qb", "feature")
    (repo / "x").write_text("x")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "feature")
    assert ab_base(repo) == main_tip  # a branch: its merge base with main
    assert ab_base(repo, AB_BASE="abc") == "abc"
    # a push to main: the commit before it, when this clone has it
    assert ab_base(repo, AB_BEFORE=first) == first
    assert ab_base(repo, AB_BEFORE="0" * 40) == main_tip  # unknown (a force push): merge base
    single = tmp_path / "single"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(single)],
                   check=True, capture_output=True)
    assert ab_base(single) == ""  # no history: no base


# ----------------------------------------------------------------------------- the cache
def _fake_env(cache: Path, sha: str, age_s: float, src: Path | None = None) -> Path:
    """A cache entry that looks finished without a real venv build: ``ready``, used ``age_s``
    ago, its python a script running this interpreter (and ``src`` a link, when given)."""
    root = cache / sha
    (root / "venv" / "bin").mkdir(parents=True)
    py = root / "venv" / "bin" / "python"
    py.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    py.chmod(0o755)
    if src is not None:
        (root / "src").symlink_to(src)
    (root / "ready").write_text(sha + "\n")
    (root / "used").touch()
    t = time.time() - age_s
    os.utime(root / "used", (t, t))
    return root


@contextlib.contextmanager
def _locked_by_another_process(path: Path, mode: str):
    """Another process holds ``flock(path, LOCK_<mode>)`` (as a second gate would)."""
    code = (f"import fcntl, sys; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_{mode}); "
            "print('held', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def test_prune_keeps_the_most_recently_used_and_never_one_in_use(tmp_path):
    cache = tmp_path / "cache"
    shas = [f"{i:x}" * 40 for i in range(1, 6)]  # newest first
    for age, sha in enumerate(shas):
        _fake_env(cache, sha, 100 * (age + 1))
    (cache / "notes").mkdir()  # not an environment: left alone
    with _locked_by_another_process(cache / shas[-1] / "inuse", "SH"):  # the oldest, in use
        assert sorted(prune(cache, 2)) == sorted(shas[2:4])
    assert sorted(p.name for p in cache.iterdir() if p.is_dir()) == sorted(
        [*shas[:2], shas[-1], "notes"])
    assert prune(cache, 2) == [shas[-1]]  # no longer in use
    assert prune(cache, 2) == [] and prune(tmp_path / "none", 0) == []


def test_prune_waits_for_another_gate_holding_the_cache_lock(tmp_path):
    cache = tmp_path / "cache"
    _fake_env(cache, "a" * 40, 10)
    _fake_env(cache, "b" * 40, 20)
    got = []
    with _locked_by_another_process(cache / ".lock", "EX"):  # e.g. building an environment
        worker = threading.Thread(target=lambda: got.append(prune(cache, 1)))
        worker.start()
        worker.join(0.5)
        assert worker.is_alive() and (cache / ("b" * 40)).exists()
    worker.join(30)
    assert got == [["b" * 40]]


def test_a_gate_run_prunes_its_cache_but_keeps_what_it_used(tmp_path, capsys):
    cache = tmp_path / "cache"
    head = _git(REPO, "rev-parse", "HEAD")
    _fake_env(cache, head, 1000, src=REPO)  # the oldest entry, until this run uses it
    old = [_fake_env(cache, c * 40, age).name for c, age in (("1", 10), ("2", 20), ("3", 30))]
    res = run(_args("--base", "HEAD", "--kernels", "synthetic.python", "--min-rounds", "2",
                    "--max-rounds", "2", "--cache", str(cache), "--cache-keep", "1"))
    assert res.base["sha"] == head
    assert [p.name for p in cache.iterdir() if p.is_dir()] == [head]
    err = capsys.readouterr().err
    assert "removed 3 environment(s)" in err and all(s[:10] in err for s in old)


def test_bad_cache_keep_is_exit_2_naming_it(capsys, monkeypatch):
    assert ab_main(_args("--base", ".", "--cache-keep", "-1")) == 2
    assert "--cache-keep" in capsys.readouterr().err
    monkeypatch.setenv(KEEP_ENV, "three")
    assert ab_main(_args("--base", ".")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and KEEP_ENV in err[0] and "'three'" in err[0]


def test_a_kernel_working_on_its_own_threads_is_timed_by_the_process_cpu():
    """The loader kernel's parse runs on polars' threads: timed by this thread's CPU, the work
    would not count (nor would a slowdown injected in proportion to it). The process clock
    counts it, and the injected spin scales with it."""
    from mfsoftmax.bench.ab import worker

    def busy(seconds):
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass

    def body():  # the work happens on another thread; this one only waits
        t = threading.Thread(target=busy, args=(0.05,))
        t.start()
        t.join()

    assert worker._clock("data.load_file") is time.process_time
    assert worker._clock("train.wals_iteration") is time.thread_time
    by_thread = worker._sample(body, 2, 1, 1.0, time.thread_time)["cpu_s"]
    by_process = worker._sample(body, 2, 1, 1.0, time.process_time)["cpu_s"]
    slowed = worker._sample(body, 2, 1, 1.5, time.process_time)["cpu_s"]
    assert by_thread < 0.01 <= 0.04 < by_process
    assert 1.3 < slowed / by_process < 1.7
