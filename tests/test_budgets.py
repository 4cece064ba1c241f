"""Stage time budgets ([budgets]): a stage with no budget left is skipped, one that runs past its
budget is stopped, each recorded as skipped with the reason; no real timing (a fake clock, a
budget of 0, the over-budget signal raised by the stage itself)."""

from __future__ import annotations

import types

import pytest

from bench import runner as runner_mod
from bench.config import DEFAULTS, ConfigError, merge, validate
from bench.context import Section
from bench.runner import Runner, StageOverBudget, stage_budget


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make_runner(tmp_path, monkeypatch, budgets, clock=None):
    import mfsoftmax.runtime as rt

    monkeypatch.setattr(rt, "run_info", lambda seed, cfg, threads: {
        "started_at": "2026-01-01T00:00:00Z", "calibration": {}})
    monkeypatch.setattr(rt, "pin_threads", lambda n: {})
    monkeypatch.setattr(runner_mod, "sample_calibration", lambda cal, name: None)
    cfg = merge(DEFAULTS, {"budgets": budgets, "run": {"progress": False}})
    r = Runner(cfg, tmp_path / "run", clock=clock or FakeClock())
    r.ctx = types.SimpleNamespace(data=types.SimpleNamespace(
        name="d", user_features={"a": 1}, item_features={"b": 1}))
    return r


def test_budget_zero_skips_without_running(tmp_path, monkeypatch):
    r = make_runner(tmp_path, monkeypatch, {"serving_s": 0})
    ran = []
    r.run_stage("serving", lambda ctx: ran.append(1) or Section())
    entry = r.results["stages"]["serving"]
    assert ran == []
    assert entry["status"] == "skipped"
    assert entry["budget_s"] == 0
    assert "budgets.serving_s is 0s" in entry["reason"]


def test_total_budget_spent_skips_later_stages(tmp_path, monkeypatch):
    clock = FakeClock()
    r = make_runner(tmp_path, monkeypatch, {"total_s": 100, "serving_s": 50}, clock)
    assert r.budget_for("serving") == (50.0, "budgets.serving_s")
    clock.now += 70  # 30 s of the run's budget left: less than the stage's own
    budget, which = r.budget_for("serving")
    assert budget == pytest.approx(30.0) and "total_s" in which
    clock.now += 40  # the run's budget is spent
    r.run_stage("quality", lambda ctx: Section(models={"m": {"x": 1}}))
    entry = r.results["stages"]["quality"]
    assert entry["status"] == "skipped" and "total_s" in entry["reason"]
    assert "m" not in r.results["models"]


def test_stage_over_budget_is_stopped_with_reason(tmp_path, monkeypatch):
    r = make_runner(tmp_path, monkeypatch, {"folding_s": 5})

    def stage(ctx):  # what the alarm does when the budget runs out
        runner_mod._on_alarm(None, None)

    r.run_stage("folding", stage)
    entry = r.results["stages"]["folding"]
    assert entry["status"] == "skipped"
    assert entry["budget_s"] == 5.0
    assert entry["reason"].startswith("stopped: over its time budget of 5s")
    assert entry["peak_rss_mb"] > 0


def test_over_budget_is_not_swallowed_by_a_stage_catching_exceptions(tmp_path, monkeypatch):
    r = make_runner(tmp_path, monkeypatch, {"quality_s": 5})
    done = []

    def stage(ctx):  # quality goes on to the next model on an Exception
        for i in range(3):
            try:
                if i == 1:
                    raise StageOverBudget()
                done.append(i)
            except Exception:
                done.append("swallowed")
        return Section()

    r.run_stage("quality", stage)
    assert done == [0]
    assert r.results["stages"]["quality"]["status"] == "skipped"


def test_unbudgeted_stage_runs_and_records_rss(tmp_path, monkeypatch):
    r = make_runner(tmp_path, monkeypatch, {})
    r.run_stage("quality", lambda ctx: Section(models={"m": {"x": 1}}))
    entry = r.results["stages"]["quality"]
    assert entry["status"] == "ok" and "budget_s" not in entry
    assert entry["peak_rss_mb"] > 0
    assert r.results["models"]["m"] == {"x": 1}


def test_config_budgets_checked():
    cfg = merge(DEFAULTS, {"models": {"p": {"kind": "popularity"}}})
    validate(merge(cfg, {"budgets": {"total_s": 3600, "quality_s": 1.5}}))
    assert stage_budget(merge(cfg, {"budgets": {"quality_s": 7}}), "quality") == 7.0
    assert stage_budget(cfg, "quality") is None
    with pytest.raises(ConfigError, match="budgets.qualty_s"):
        validate(merge(cfg, {"budgets": {"qualty_s": 10}}))
    with pytest.raises(ConfigError, match="seconds >= 0"):
        validate(merge(cfg, {"budgets": {"serving_s": -1}}))


def test_stopped_stage_keeps_what_it_registered_as_finished(tmp_path, monkeypatch):
    r = make_runner(tmp_path, monkeypatch, {"quality_s": 5})
    r.ctx.partial = None

    def stage(ctx):  # the quality stage: one model done, the alarm during the next
        out = Section()
        ctx.partial = out
        out.models["popularity"] = {"quality": {"recall@20": 0.1}}
        runner_mod._on_alarm(None, None)
        out.models["wals"] = {"quality": {"recall@20": 0.4}}  # never reached
        return out

    r.run_stage("quality", stage)
    entry = r.results["stages"]["quality"]
    assert entry["status"] == "skipped"
    assert entry["reason"].endswith("kept what it finished before the stop: popularity")
    assert r.results["models"]["popularity"]["quality"]["recall@20"] == 0.1
    assert "wals" not in r.results["models"]
    r.run_stage("serving", lambda ctx: Section(top={"serving": []}))
    assert r.ctx.partial is None  # reset for the next stage


def test_interrupted_stage_keeps_what_it_registered_as_finished(tmp_path, monkeypatch):
    r = make_runner(tmp_path, monkeypatch, {})
    r.ctx.partial = None

    def stage(ctx):
        ctx.partial = out = Section()
        out.models["wals"] = {"quality": {"recall@20": 0.4}}
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        r.run_stage("quality", stage)
    entry = r.results["stages"]["quality"]
    assert entry["status"] == "interrupted"
    assert entry["reason"] == "kept what it finished before the stop: wals"
    assert r.results["models"]["wals"]["quality"]["recall@20"] == 0.4


def test_report_stages_table_shows_budget_and_peak_rss():
    from reports import tables as tb
    from reports.sections.run import stages_table

    results = {"stages": {
        "quality": {"status": "ok", "error": None, "wall_s": 12.0, "budget_s": 60.0, "peak_rss_mb": 2048.0},
        "serving": {"status": "skipped", "error": None, "wall_s": 0.0, "budget_s": 0.0,
                    "reason": "no time budget (budgets.serving_s is 0s)"}}}
    t = stages_table([results], ["A"])
    cols = t.groups[0][1]
    assert cols == ["status", "wall", "budget", "peak RSS", "error"]
    rows = {k[0]: [tb.cell_text(v) for v in vals] for k, vals in t.rows}
    assert rows["quality"][2:4] == ["60.0 s", "2.00 GiB"]
    assert rows["serving"][3] == "—" and "budgets.serving_s is 0s" in rows["serving"][4]
    old = stages_table([{"stages": {"quality": {"status": "ok", "wall_s": 1.0}}}], ["A"])
    assert old.groups[0][1] == ["status", "wall", "error"]  # files before budgets: no empty columns


def test_a_signal_between_stages_still_marks_the_run_interrupted(tmp_path, monkeypatch):
    r = make_runner(tmp_path, monkeypatch, {})
    r.run_stage("quality", lambda ctx: Section(models={"m": {"x": 1}}))
    r.finish(interrupted=True)  # SIGTERM after quality was written ok, before serving started
    assert r.results["stages"]["quality"]["status"] == "ok"
    assert r.results["run"]["status"] == "interrupted"
    r.finish()
    assert r.results["run"]["status"] == "complete"
