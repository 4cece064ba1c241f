"""`mfsoftmax run` on bad input and faults: one-line errors (exit 2) before any work, nothing lost
on SIGTERM, SIGKILL or a full disk, nothing of the user's touched."""

import errno
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mfsoftmax.bench.config import CONFIG_DIR, ConfigError
from mfsoftmax.bench.suite import add_arguments, resolve_config, update_latest
from mfsoftmax.cli import main

SMALL = ["--quick", "--models", "popularity", "wals", "--stages", "quality", "--no-report",
         "--no-progress"]


def _args(*argv):
    import argparse

    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


def _run(capsys, *argv):
    code = main(["run", *argv])
    err = capsys.readouterr().err
    return code, err


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines()
             if ln.startswith("mfsoftmax run:") and not ln.startswith("mfsoftmax run: note:")]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    return lines[0]


# ---------------------------------------------------------------- config and flags
@pytest.mark.parametrize("setting, named", [
    ("tuning.trails=8", "tuning.trails"),
    ("serving.querys=5", "serving.querys"),
    ("cold_start.n_known_user=[0]", "cold_start.n_known_user"),
    ("folding.w0s=[0.1]", "folding.w0s"),
])
def test_unknown_keys_at_any_depth_are_errors(capsys, tmp_path, setting, named):
    code, err = _run(capsys, *SMALL, "--set", setting, "--out", str(tmp_path / "o"))
    assert code == 2
    assert named in _one_line_error(err)
    assert not (tmp_path / "o").exists()


def test_unknown_key_in_a_config_file_names_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[models.p]\nkind = "popularity"\n[tuning]\ntrails = 3\n')
    code, err = _run(capsys, "--config", str(bad), "--out", str(tmp_path / "o"))
    assert code == 2
    line = _one_line_error(err)
    assert str(bad) in line and "tuning.trails" in line and "did you mean 'trials'" in line


@pytest.mark.parametrize("setting, named", [
    ("models.wals.params.dim=-3", "dim=-3"),
    ("models.wals.params.dim=abc", "models.wals.params.dim"),
    ("models.wals.params.dimm=8", "models.wals.params.dimm"),
    ("models.wals.search.dim=[16, -2]", "models.wals.search.dim"),
    ("models.wals.kind=\"walz\"", "models.wals.kind"),
    ("models.wals.serach={}", "models.wals.serach"),
])
def test_model_parameters_are_checked_before_any_stage(capsys, tmp_path, setting, named):
    code, err = _run(capsys, *SMALL, "--set", setting, "--out", str(tmp_path / "o"))
    assert code == 2
    assert named in _one_line_error(err)
    assert "stage quality" not in err  # refused when the config is resolved
    assert not (tmp_path / "o").exists()


def test_softmax_parameters_are_checked_too(capsys, tmp_path):
    code, err = _run(capsys, "--quick", "--models", "softmax-full", "--set",
                     'models.softmax-full.params.loss="fulll"', "--out", str(tmp_path / "o"))
    assert code == 2 and "models.softmax-full" in _one_line_error(err)


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIG_DIR.glob("*.toml")))
@pytest.mark.parametrize("protocol", ["holdout", "temporal", "strong"])
def test_every_shipped_config_resolves_under_every_protocol(name, protocol):
    import inspect

    from mfsoftmax.datasets import splits

    cfg = resolve_config(_args("--config", name, "--protocol", protocol))
    assert cfg["dataset"]["protocol"] == protocol
    fn = {"holdout": splits.holdout, "temporal": splits.holdout, "strong": splits.strong}[protocol]
    inspect.signature(fn).bind(None, **cfg["dataset"]["split"])  # no TypeError at split time


def test_holdout_and_temporal_runs_on_the_default_config(capsys, tmp_path):
    for protocol in ("holdout", "temporal"):
        out = tmp_path / protocol
        code, err = _run(capsys, *SMALL, "--protocol", protocol, "--out", str(out))
        assert code == 0, err
        res = json.loads((out / "results.json").read_text())
        assert res["dataset"]["protocol"] == protocol
        assert res["stages"]["quality"]["status"] == "ok"
        assert "heldout_frac" in err  # the dropped strong-only option is named


def test_split_option_of_another_protocol_in_the_file_is_an_error(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[dataset]\nprotocol = "holdout"\nsplit = { heldout_frac = 0.1 }\n'
                   '[models.p]\nkind = "popularity"\n')
    code, err = _run(capsys, "--config", str(bad), "--out", str(tmp_path / "o"))
    assert code == 2 and "dataset.split.heldout_frac" in _one_line_error(err)


@pytest.mark.parametrize("argv, named", [
    (["--threads", "0"], "--threads"),
    (["--seed", "-1"], "--seed"),
    (["--set", "run.threads=0"], "run.threads"),
    (["--set", "serving.queries=0"], "serving.queries"),
])
def test_bad_numbers_are_errors(capsys, tmp_path, argv, named):
    code, err = _run(capsys, *SMALL, *argv, "--out", str(tmp_path / "o"))
    assert code == 2 and named in _one_line_error(err)


def test_config_that_is_a_folder_binary_or_latin1(tmp_path, capsys):
    binary = tmp_path / "b.toml"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00")
    latin = tmp_path / "l.toml"
    latin.write_bytes('[run]\n# caf\xe9\nseed = 1\n'.encode("latin-1"))
    for path, words in ((tmp_path, "folder"), (binary, "binary"), (latin, "UTF-8")):
        code, err = _run(capsys, "--config", str(path), "--out", str(tmp_path / "o"))
        assert code == 2
        line = _one_line_error(err)
        assert str(path) in line and words in line


def test_run_takes_dataset_params():
    cfg = resolve_config(_args("--param", "n_users=700", "--param", "noise=0.1"))
    assert cfg["dataset"]["params"]["n_users"] == 700
    assert cfg["dataset"]["params"]["noise"] == 0.1


def test_unknown_dataset_param_is_a_clean_error(capsys, tmp_path):
    code, err = _run(capsys, *SMALL, "--param", "n_userz=10", "--out", str(tmp_path / "o"))
    assert code == 2 and "n_userz" in _one_line_error(err)
    assert not (tmp_path / "o").exists()


# -------------------------------------------------------------- outputs and latest
def test_non_empty_out_is_refused_and_left_alone(tmp_path, capsys):
    out = tmp_path / "old"
    out.mkdir()
    (out / "results.json").write_text("earlier run")
    (out / "plots").mkdir()
    code, err = _run(capsys, *SMALL, "--out", str(out))
    assert code == 2 and "not empty" in _one_line_error(err)
    assert (out / "results.json").read_text() == "earlier run"
    assert sorted(os.listdir(out)) == ["plots", "results.json"]


def test_out_that_is_a_file_or_under_a_file(tmp_path, capsys):
    f = tmp_path / "f"
    f.write_text("mine")
    for out in (f, f / "sub"):
        code, err = _run(capsys, *SMALL, "--out", str(out))
        assert code == 2 and "not a folder" in _one_line_error(err)
    assert f.read_text() == "mine"


def test_out_that_cannot_be_created(tmp_path, capsys, monkeypatch):
    real_mkdir = Path.mkdir

    def refuse(self, *a, **k):
        if self.name == "o":
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", refuse)
    code, err = _run(capsys, *SMALL, "--out", str(tmp_path / "o"))
    assert code == 2 and "Permission denied" in _one_line_error(err)


def test_failed_dataset_load_leaves_no_run_folder(tmp_path, capsys):
    out = tmp_path / "o"
    code, err = _run(capsys, *SMALL, "--dataset", "ml-1m", "--data-dir", str(tmp_path / "none"),
                     "--out", str(out))
    assert code == 2 and "Traceback" not in err
    assert not out.exists()


def test_latest_lives_in_the_reports_root_and_spares_a_users_file(tmp_path):
    root = tmp_path / "reports"
    run = root / "20260101-000000-x"
    run.mkdir(parents=True)
    assert update_latest(run, root) is None
    assert (root / "latest").is_symlink() and (root / "latest").resolve() == run.resolve()
    # a user's own file called `latest` is never replaced
    root2 = tmp_path / "mine"
    root2.mkdir()
    (root2 / "latest").write_text("my notes")
    warning = update_latest(run, root2)
    assert warning and "left as it is" in warning
    assert (root2 / "latest").read_text() == "my notes"


def test_out_elsewhere_does_not_write_latest_beside_it(tmp_path, capsys):
    (tmp_path / "latest").write_text("user file")
    code, _ = _run(capsys, *SMALL, "--out", str(tmp_path / "run"))
    assert code == 0
    assert (tmp_path / "latest").read_text() == "user file"


# ------------------------------------------------------------------- no test users
def test_split_without_test_users_is_refused(tmp_path, capsys):
    data = tmp_path / "one_each.csv"  # one interaction per user: holdout has no target to hold out
    data.write_text("user,item\n" + "".join(f"{u},{u % 7}\n" for u in range(60)))
    code, err = _run(capsys, *SMALL, "--dataset", "file", "--param", f"path={data}",
                     "--protocol", "holdout", "--out", str(tmp_path / "o"))
    assert code == 2
    assert "0 with >= 2 interactions" in _one_line_error(err)  # the real minimum, stated
    assert not (tmp_path / "o").exists()


def test_split_fractions_out_of_range_are_errors(tmp_path, capsys):
    code, err = _run(capsys, *SMALL, "--protocol", "holdout", "--set",
                     "dataset.split.test_frac=0.0", "--out", str(tmp_path / "o"))
    assert code == 2 and "test_frac=0.0" in _one_line_error(err)


# ----------------------------------------------------------------- nothing lost
def test_results_are_written_after_every_stage(tmp_path, monkeypatch, capsys):
    from mfsoftmax.bench import runner as runner_mod

    seen = []
    real = runner_mod.Runner.write_results

    def spy(self):
        path = real(self)
        seen.append({k: v["status"] for k, v in json.loads(path.read_text())["stages"].items()})
        return path

    monkeypatch.setattr(runner_mod.Runner, "write_results", spy)
    out = tmp_path / "o"
    assert main(["run", "--quick", "--models", "popularity", "wals", "--stages",
                 "quality,serving,offline_topk", "--no-report", "--no-progress", "--out", str(out)]) == 0
    assert seen[0] == {}  # the dataset section, before the first stage
    assert {"quality": "ok"} in seen and {"quality": "ok", "serving": "ok"} in seen
    assert json.loads((out / "results.json").read_text())["run"]["status"] == "complete"


def test_full_disk_keeps_the_last_stage_and_prints_the_summary(tmp_path, monkeypatch, capsys):
    from mfsoftmax import runtime

    real = runtime.atomic_write_json
    calls = {"n": 0}

    def fill_up(path, obj):
        calls["n"] += 1
        if calls["n"] >= 3:  # the dataset section and the quality stage fit, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, obj)

    monkeypatch.setattr(runtime, "atomic_write_json", fill_up)
    out = tmp_path / "o"
    code = main(["run", "--quick", "--models", "popularity", "wals", "--stages", "quality,serving",
                 "--no-report", "--no-progress", "--out", str(out)])
    cap = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in cap.err
    assert "No space left on device" in cap.err and "last completed stage" in cap.err
    assert "recall@20" in cap.out and "wals" in cap.out  # the summary is printed anyway
    kept = json.loads((out / "results.json").read_text())
    assert kept["stages"] == {"quality": {**kept["stages"]["quality"], "status": "ok"}}
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]


def _spawn(out: Path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "mfsoftmax", "run", "--quick", "--no-report", "--no-progress",
         "--models", "popularity", "wals", "softmax-full", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)


def _wait_for_stage(out: Path, proc, stage: str, timeout: float = 120.0) -> dict:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert proc.poll() is None, proc.stdout.read()
        try:
            res = json.loads((out / "results.json").read_text())
            if res["stages"].get(stage, {}).get("status") == "ok":
                return res
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"stage {stage} not written within {timeout}s")


def _signal_after_quality(out: Path, proc, signum: int, timeout: float = 60.0) -> str:
    """Send ``signum`` once the quality stage is written; the run's output."""
    try:
        _wait_for_stage(out, proc, "quality")
        proc.send_signal(signum)
        text, _ = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    return text


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_are_handled_like_ctrl_c(tmp_path, signum, code):
    out = tmp_path / "o"
    proc = _spawn(out)
    text = _signal_after_quality(out, proc, signum)
    assert proc.returncode == code, text
    assert f"terminated ({signal.Signals(signum).name})" in text and "Traceback" not in text
    res = json.loads((out / "results.json").read_text())
    assert res["run"]["status"] == "interrupted"
    assert res["stages"]["quality"]["status"] == "ok"
    # the signal lands inside a stage (marked interrupted) or between two (the next one not run)
    statuses = {v["status"] for v in res["stages"].values()}
    assert "running" not in statuses and statuses & {"interrupted", "not run"}, res["stages"]


def test_sigkill_keeps_the_last_completed_stage(tmp_path):
    out = tmp_path / "o"
    proc = _spawn(out)
    try:
        _wait_for_stage(out, proc, "quality")
        proc.kill()
        proc.wait(timeout=30)
    finally:
        proc.kill()
    res = json.loads((out / "results.json").read_text())  # whole, valid JSON
    assert res["stages"]["quality"]["status"] == "ok"
    assert {"popularity", "wals", "softmax-full"} <= set(res["models"])


# ------------------------------------------------------------------------ progress
def test_log_lines_are_not_glued_onto_a_bar():
    from mfsoftmax.bench.progress import Log

    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    log = Log(progress=True, stream=stream)
    task = log.task("fits", 3)
    task.step("a")
    log.say("a line")
    task.close()
    text = stream.getvalue()
    # the line starts at the beginning of a terminal line (after \n or \r), never mid-bar
    i = text.index("[mfsoftmax] a line")
    assert i == 0 or text[i - 1] in "\r\n"
    assert text[i:].split("\n")[0].rstrip() == "[mfsoftmax] a line"


def test_plain_progress_lines_without_a_terminal():
    from mfsoftmax.bench.progress import Log

    stream = io.StringIO()
    log = Log(progress=False, stream=stream)
    assert list(log.steps([1, 2, 3], "refits", label=str, plain=True)) == [1, 2, 3]
    lines = stream.getvalue().splitlines()
    assert [ln.split("(")[0].strip() for ln in lines] == [
        "[mfsoftmax]   refits: 1/3 1", "[mfsoftmax]   refits: 2/3 2", "[mfsoftmax]   refits: 3/3 3"]
    assert "\r" not in stream.getvalue()


def test_config_error_class_is_value_error():
    assert issubclass(ConfigError, ValueError)


def test_dataset_without_features_skips_the_stages_that_need_them(tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    rows = {(int(u), int(i)) for u, i in zip(rng.integers(0, 200, 4000), rng.integers(0, 80, 4000), strict=True)}
    data = tmp_path / "plain.csv"
    data.write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i in sorted(rows)))
    out = tmp_path / "o"
    code, err = _run(capsys, "--quick", "--dataset", "file", "--param", f"path={data}",
                     "--models", "popularity", "wals", "softmax-in-batch", "--stages",
                     "quality,ablation,cold_start_items", "--no-progress", "--out", str(out))
    assert code == 0, err
    stages = json.loads((out / "results.json").read_text())["stages"]
    assert stages["quality"]["status"] == "ok"
    assert stages["ablation"]["status"] == "skipped"
    assert "no user or item features" in stages["ablation"]["reason"]
    assert stages["cold_start_items"]["status"] == "skipped"
    assert "item features" in stages["cold_start_items"]["reason"]
    assert "skipped" in (out / "report.md").read_text()


def test_folding_regimes_sweep_groups_and_w0_zero(tmp_path, capsys):
    out = tmp_path / "reg"
    code, err = _run(capsys, "--quick", "--models", "popularity", "wals", "--stages", "quality,folding",
                     "--set", "folding.groups=[5, 20]", "--set", "folding.regime_dims=[4]",
                     "--set", "folding.w0=[0.0, 0.05]", "--no-report", "--no-progress", "--out", str(out))
    assert code == 0, err
    rows = json.loads((out / "results.json").read_text())["sweeps"]["folding_regimes"]
    assert {(r["n_groups"], r["dim"], r["w0"]) for r in rows} >= {(g, 4, w) for g in (5, 20) for w in (0.0, 0.05)}
    assert all(0.0 <= r["leakage@10"] <= 1.0 for r in rows)
    assert all(r["groups_per_dim"] == r["n_groups"] / 4 for r in rows)


def test_run_checks_its_own_results_against_the_contract(tmp_path, capsys, monkeypatch):
    from mfsoftmax.bench.stages import serving as serving_stage

    real = serving_stage.run

    def broken(ctx):  # a stage that writes a string where the contract wants a number
        section = real(ctx)
        for entry in section.models.values():
            entry["serving"]["p99_us"] = "slow"
        return section

    monkeypatch.setattr(serving_stage, "run", broken)
    code, err = _run(capsys, "--quick", "--models", "popularity", "--stages", "quality,serving",
                     "--no-report", "--no-progress", "--out", str(tmp_path / "o"))
    assert code == 1
    assert "results contract" in err and "p99_us" in err
    assert (tmp_path / "o" / "results.json").exists()  # still written: nothing is lost
