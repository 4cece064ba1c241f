"""`mfsoftmax run` and `mfsoftmax report` against issue 29's hostile cases: two runs at once,
signals (an ignored SIGHUP; a signal while the report renders; SIGHUP itself is tested with
SIGTERM in test_run_reliability.py), flags that were silently ignored
(`--stages ''`, `--param` under `--quick`, booleans as strings), a stage whose input a budget
stopped, `report --out` that cannot be written, and `--quick` on a large catalogue."""

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mfsoftmax.bench.config import ConfigError
from mfsoftmax.bench.suite import LOCK, claim_run_dir, resolve_config
from mfsoftmax.cli import main

from .test_run_reliability import _args, _one_line_error, _run, _signal_after_quality

SMALL = ["--quick", "--models", "popularity", "wals", "--stages", "quality", "--no-report",
         "--no-progress"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def _results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


# ------------------------------------------------------------ 1: one folder per run
def _claim_together(path: Path, explicit: bool, n: int = 8) -> list:
    """``n`` threads claiming ``path`` at once: each one's folder, or its ConfigError."""
    cfg = {"run": {"out": str(path.parent)}}
    start, out = threading.Barrier(n), [None] * n

    def claim(i):
        start.wait()
        try:
            out[i] = claim_run_dir(path, cfg, explicit)
        except ConfigError as exc:
            out[i] = exc

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_runs_claiming_one_default_name_get_distinct_folders(tmp_path):
    base = tmp_path / "runs" / "20260101-000000-synthetic-strong-quick"
    got = _claim_together(base, explicit=False)
    assert all(isinstance(p, Path) for p in got), got
    assert len({str(p) for p in got}) == len(got)
    assert base in got and all(p.name.startswith(base.name) for p in got)
    assert all((p / LOCK).read_text().strip() == str(os.getpid()) for p in got)


def test_runs_claiming_one_out_folder_let_exactly_one_in(tmp_path):
    out = tmp_path / "o"
    out.mkdir()  # an existing empty --out is allowed
    got = _claim_together(out, explicit=True)
    winners = [p for p in got if isinstance(p, Path)]
    assert winners == [out]
    assert all("another run is writing into it" in str(e) for e in got if isinstance(e, ConfigError))


def test_claiming_an_out_folder_that_filled_up_meanwhile_is_refused(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "results.json").write_text("the other run's")
    with pytest.raises(ConfigError, match="not empty"):
        claim_run_dir(out, {"run": {"out": "runs"}}, explicit=True)
    assert sorted(os.listdir(out)) == ["results.json"]  # its lock is dropped again


def _start(*argv):
    return subprocess.Popen([sys.executable, "-m", "mfsoftmax", "run", *SMALL, *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True)


def test_two_runs_started_together_never_share_a_folder(tmp_path):
    root = tmp_path / "runs"
    procs = [_start("--seed", str(s), "--set", f'run.out="{root}"') for s in (1, 2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    paths = [next(ln.split(": ", 1)[1] for ln in o.splitlines() if ln.startswith("results:"))
             for o, _ in outs]
    assert paths[0] != paths[1]
    for seed, path in zip((1, 2), paths, strict=True):
        res = json.loads(Path(path).read_text())
        assert res["run"]["seed"] == seed and res["run"]["id"] == Path(path).parent.name
        assert not (Path(path).parent / LOCK).exists()  # released at the end


def test_two_runs_with_one_out_folder_one_is_refused(tmp_path):
    out = tmp_path / "o"
    procs = [_start("--seed", str(s), "--out", str(out)) for s in (1, 2)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    winner = [s for s, p in zip((1, 2), procs, strict=True) if p.returncode == 0][0]
    loser_err = [e for (_, e), p in zip(outs, procs, strict=True) if p.returncode == 2][0]
    assert _one_line_error(loser_err).startswith(f"mfsoftmax run: --out {out}")
    assert _results(out)["run"]["seed"] == winner


# ------------------------------------------------------------ 6, 7, 18: flags
def test_explicit_param_wins_over_quick_data_caps(capsys):
    cfg = resolve_config(_args("--quick", "--param", "n_users=400"))
    assert cfg["dataset"]["params"]["n_users"] == 400
    assert cfg["dataset"]["params"]["n_items"] == 900  # the caps not named stay
    assert "--param n_users=400 replaces --quick's n_users=1500" in capsys.readouterr().err


@pytest.mark.parametrize("param, want", [("n_users=abc", "an integer"),
                                         ("n_users=true", "an integer"),
                                         ("noise=[0.1]", "a finite number")])
def test_a_dataset_param_of_the_wrong_type_is_refused_even_under_quick(tmp_path, capsys, param,
                                                                        want):
    code, err = _run(capsys, *SMALL, "--param", param, "--out", str(tmp_path / "o"))
    assert code == 2
    assert f"dataset.params.{param.split('=')[0]} must be {want}" in _one_line_error(err)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("value", ['"false"', '"no"', "0"])
def test_a_string_or_number_for_a_boolean_in_toml_is_refused(tmp_path, capsys, value):
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[models.p]\nkind = "popularity"\n[stages]\nserving = {value}\n')
    code, err = _run(capsys, "--config", str(bad), "--out", str(tmp_path / "o"))
    assert code == 2
    line = _one_line_error(err)
    assert str(bad) in line and "stages.serving must be true or false" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("setting, key", [
    ("run.report=yes", "run.report"), ("dataset.binarize=1", "dataset.binarize"),
    ("stages.serving=no", "stages.serving"),
    ("models.wals.params.track_loss=no", "track_loss must be true or false"),
])
def test_set_of_a_boolean_to_another_value_is_refused(tmp_path, capsys, setting, key):
    argv = [a for a in SMALL if a != "--no-report"]  # --no-report would set run.report itself
    code, err = _run(capsys, *argv, "--set", setting, "--out", str(tmp_path / "o"))
    assert code == 2 and key in _one_line_error(err)


def test_set_parses_false_in_any_case_as_a_boolean():
    for text in ("false", "False", "FALSE"):
        cfg = resolve_config(_args("--set", f"stages.serving={text}"))
        assert cfg["stages"]["serving"] is False
    assert resolve_config(_args("--set", "stages.serving=True"))["stages"]["serving"] is True


@pytest.mark.parametrize("stages", ["", ",", " , "])
def test_an_empty_stage_list_is_refused(tmp_path, capsys, stages):
    code, err = _run(capsys, "--quick", "--stages", stages, "--out", str(tmp_path / "o"))
    assert code == 2 and "--stages" in _one_line_error(err) and "no stage named" in err
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------ 12: an input stopped by a budget
def test_stage_whose_input_a_budget_stopped_is_skipped_with_the_reason(tmp_path, capsys):
    out = tmp_path / "o"
    code, err = _run(capsys, "--quick", "--models", "popularity", "wals", "softmax-in-batch",
                     "--stages", "quality,ablation,hashing,offline_topk", "--set",
                     "budgets.quality_s=0", "--no-report", "--no-progress", "--out", str(out))
    assert code == 0, err
    assert "Traceback" not in err
    stages = _results(out)["stages"]
    assert stages["quality"]["status"] == "skipped"
    for name, what in (("ablation", "no fitted model with ablation switches"),
                       ("hashing", "no fitted softmax model"), ("offline_topk", "no fitted MF")):
        assert stages[name]["status"] == "skipped", stages[name]
        assert what in stages[name]["reason"] and "budgets.quality_s" in stages[name]["reason"]


def test_missing_input_after_a_good_quality_stage_is_still_a_failure(tmp_path, capsys):
    out = tmp_path / "o"
    code, err = _run(capsys, "--quick", "--models", "popularity", "--stages", "quality,hashing",
                     "--no-report", "--no-progress", "--out", str(out))
    assert code == 1
    assert _results(out)["stages"]["hashing"]["status"] == "failed"


def test_a_budget_stop_never_lands_inside_an_import():
    from mfsoftmax.bench.runner import StageOverBudget, _on_alarm

    class Code:
        def __init__(self, name):
            self.co_filename = name

    class Frame:
        def __init__(self, name, back=None):
            self.f_code, self.f_back = Code(name), back

    in_import = Frame("torch/_dynamo/utils.py", Frame("<frozen importlib._bootstrap>",
                                                      Frame("bench/stages/quality.py")))
    try:
        assert _on_alarm(signal.SIGALRM, in_import) is None  # deferred: the timer is re-armed
        assert 0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 0.05
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    with pytest.raises(StageOverBudget):
        _on_alarm(signal.SIGALRM, Frame("bench/stages/quality.py"))


# ------------------------------------------------------------ 10, 17: signals
def test_an_ignored_sighup_stays_ignored(tmp_path):
    out = tmp_path / "o"
    proc = subprocess.Popen(  # as under nohup
        [sys.executable, "-m", "mfsoftmax", "run", "--quick", "--models", "popularity", "wals",
         "--stages", "quality,serving,cold_start_users", "--no-report", "--no-progress", "--out",
         str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ENV, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    text = _signal_after_quality(out, proc, signal.SIGHUP, timeout=120)
    assert proc.returncode == 0, text
    assert _results(out)["run"]["status"] == "complete"


@pytest.mark.parametrize("signum, code", [(None, 130), (signal.SIGTERM, 143),
                                          (signal.SIGHUP, 129)])
def test_a_signal_while_the_report_renders_says_the_results_are_complete(
        tmp_path, capsys, monkeypatch, signum, code):
    from mfsoftmax import reports
    from mfsoftmax.bench.suite import Terminated

    def stop(*a, **k):
        raise KeyboardInterrupt() if signum is None else Terminated(signum)

    monkeypatch.setattr(reports, "render_report", stop)
    out = tmp_path / "o"
    got, err = _run(capsys, "--quick", "--models", "popularity", "--stages", "quality",
                    "--no-progress", "--out", str(out))
    assert got == code
    assert "nothing written" not in err and "results are complete" in err
    assert f"mfsoftmax report {out}" in err
    assert _results(out)["run"]["status"] == "complete"


# ------------------------------------------------------------ 10, 11: report
@pytest.fixture(scope="module")
def one_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    assert main(["run", "--quick", "--models", "popularity", "wals", "--stages",
                 "quality,folding", "--no-progress", "--out", str(out)]) == 0
    return out


def test_report_warns_about_an_unfinished_run(one_run, tmp_path, capsys):
    res = _results(one_run)
    res["run"]["status"], res["run"]["finished_at"] = "running", None
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "results.json").write_text(json.dumps(res))
    capsys.readouterr()
    assert main(["report", str(killed)]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "did not finish (status running)" in err
    assert "did not finish (status running)" in (killed / "report.md").read_text()
    assert main(["report", str(one_run), "--out", str(tmp_path / "fine")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_report_out_that_cannot_be_written_is_refused_before_rendering(
        one_run, tmp_path, capsys, monkeypatch):
    from mfsoftmax.reports import plots

    drawn = []
    monkeypatch.setattr(plots, "render", lambda *a, **k: drawn.append(1) or [])
    f = tmp_path / "f"
    f.write_text("mine")
    for out in (f, f / "sub", Path("/proc/mfsoftmax-report")):
        assert main(["report", str(one_run), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert err.startswith(f"mfsoftmax report: --out {out}")
    assert not drawn and f.read_text() == "mine"


def test_report_into_another_runs_folder_replaces_its_plots(one_run, tmp_path, capsys):
    other = tmp_path / "other"
    (other / "plots").mkdir(parents=True)
    (other / "plots" / "stale_only_in_b.png").write_bytes(b"old")
    (other / "report.md").write_text("B's report")
    assert main(["report", str(one_run), "--out", str(other)]) == 0
    plots = sorted(os.listdir(other / "plots"))
    assert plots == sorted(os.listdir(one_run / "plots")) and "stale_only_in_b.png" not in plots
    assert "B's report" not in (other / "report.md").read_text()
    assert sorted(os.listdir(other)) == ["plots", "report.html", "report.md"]  # no temp folder


def test_a_report_stopped_part_way_leaves_the_folder_as_it_was(one_run, tmp_path, monkeypatch):
    from mfsoftmax.reports import render

    before = {p: p.read_bytes() for p in one_run.rglob("*") if p.is_file()}

    def stop(*a, **k):
        raise KeyboardInterrupt()

    monkeypatch.setattr(render, "to_html", stop)
    with pytest.raises(KeyboardInterrupt):
        render.render_report(_results(one_run), one_run)
    after = {p: p.read_bytes() for p in one_run.rglob("*") if p.is_file()}
    assert after == before


# ------------------------------------------------------------ --quick at any catalogue size
def test_quick_caps_a_large_catalogue_and_says_so(tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 2500, 30000), (rng.pareto(1.2, 30000) * 200).astype(int) % 4000
    data = tmp_path / "big.csv"
    data.write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i in
                                            sorted(set(zip(users.tolist(), items.tolist(), strict=True)))))
    out = tmp_path / "o"
    code, err = _run(capsys, "--quick", "--dataset", "file", "--param", f"path={data}",
                     "--models", "popularity", "--stages", "quality", "--no-report",
                     "--no-progress", "--out", str(out))
    assert code == 0, err
    ds = _results(out)["dataset"]
    assert ds["n_items"] <= 1000 and ds["n_users"] <= 1500 and ds["n_interactions"] <= 30000
    assert ds["capped_from"]["n_items"] > 1000 and ds["capped_from"]["n_users"] > 1500
    assert "--quick caps it (dataset.max_items = 1000, dataset.max_users = 1500" in err
    # lifted by an explicit --set
    code, err = _run(capsys, "--quick", "--dataset", "file", "--param", f"path={data}",
                     "--models", "popularity", "--stages", "quality", "--no-report",
                     "--no-progress", "--set", "dataset.max_items=null", "--set",
                     "dataset.max_users=null", "--set", "dataset.max_interactions=null",
                     "--out", str(tmp_path / "full"))
    assert code == 0, err
    assert _results(tmp_path / "full")["dataset"]["n_items"] == ds["capped_from"]["n_items"]


def test_quick_leaves_the_synthetic_default_uncapped():
    cfg = resolve_config(_args("--quick"))
    assert all(cfg["dataset"][k] is None for k in ("max_items", "max_users", "max_interactions"))
    cfg = resolve_config(_args("--quick", "--dataset", "ml-100k"))
    assert [cfg["dataset"][k] for k in ("max_items", "max_users", "max_interactions")] == [
        1000, 1500, 30000]


def test_cap_size_keeps_popular_items_and_a_bounded_user_sample():
    import numpy as np
    import scipy.sparse as sp

    from mfsoftmax.bench.data import cap_size
    from mfsoftmax.datasets import Interactions

    rng = np.random.default_rng(1)
    m = sp.random(400, 300, density=0.1, random_state=rng, format="csr", dtype=np.float32)
    m.data[:] = 1.0
    data = Interactions(name="x", matrix=m)
    assert cap_size(data) is data and cap_size(data, 300, 400, 10**6) is data
    capped = cap_size(data, max_items=50, max_interactions=1000, seed=3)
    assert capped.n_items <= 50 and 0 < capped.n_interactions <= 1000
    popular = set(np.argsort(-data.item_popularity(), kind="stable")[:50].tolist())
    assert {data.item_ids[i] for i in popular} >= set(capped.item_ids.tolist())
    assert cap_size(data, max_users=30, seed=3).n_users == 30
