"""`mfsoftmax compare`: regression verdicts, exit codes, output formats, and the robust
statistics it gates on (serving rounds, per-epoch training times, calibration samples)."""

import copy
import json
import time

import numpy as np
import pytest

from mfsoftmax.cli import main as cli_main
from mfsoftmax.compare import (
    DEFAULT_MAX_SLOWDOWN,
    MAX_WIDTH,
    CompareError,
    compare,
    format_json,
    format_markdown,
    format_text,
)


def make_results(gflops=100.0) -> dict:
    """A small results dict following docs/results.md: wals and softmax-full."""

    def model(family, recall, wall_s, p50):
        return {
            "family": family,
            "params": {"dim": 32},
            "quality": {"recall@10": recall, "ndcg@10": recall * 0.8, "precision@10": 0.1,
                        "mrr": 0.3, "coverage@10": 0.5, "avg_pop@10": 120.0},
            "quality_se": {"recall@10": 0.01, "ndcg@10": 0.01},
            "training": {"wall_s": wall_s, "cpu_s": wall_s * 2, "peak_rss_mb": 300.0,
                         "epochs": 10, "curve": [{"wall_s": 1.0, "recall@10": recall}],
                         "epoch_wall_s": [wall_s / 10] * 10, "epoch_thread_s": [wall_s / 10] * 10,
                         "epoch_thread_min_s": wall_s / 10, "epoch_wall_min_s": wall_s / 10},
            "serving": {"mode": "exact", "p50_us": p50, "p95_us": p50 * 2, "p99_us": p50 * 3,
                        "p50_min_us": p50 * 0.95, "p50_round_us": [p50] * 5, "rounds": 5,
                        "qps": {"1": 1e6 / p50, "32": 20000.0}},
            "cold_start": {"users": [{"n_known": 1, "recall@10": 0.10, "ndcg@10": 0.08},
                                     {"n_known": 5, "recall@10": 0.20, "ndcg@10": 0.15}],
                           "items": [{"n_known": 1, "recall@10": 0.05}]},
            "folding": {"probe": "twin", "leakage@10": 0.10, "users_with_leak": 0.2,
                        "xin_score": 0.5},
        }

    return {
        "schema_version": 1,
        "run": {"id": "r1", "started_at": "2024-01-01T00:00:00", "finished_at": "2024-01-01T00:10:00",
                "git_commit": None, "python": "3.11", "packages": {}, "seed": 0, "config": {},
                "machine": {"cpu": "x", "cores": 2, "memory_gb": 8.0, "gpu": None},
                "threads": {"blas": 1, "torch": 1, "implicit": 1},
                "calibration": {"matmul_gflops": gflops}},
        "dataset": {"name": "synthetic", "n_users": 100, "n_items": 50, "n_interactions": 1000,
                    "protocol": "holdout", "k": [10]},
        "models": {"wals": model("mf", 0.30, 2.0, 400.0),
                   "softmax-full": model("softmax", 0.35, 10.0, 800.0)},
        "stages": {"train": {"status": "ok", "error": None, "wall_s": 12.0}},
    }


def write(tmp_path, name, obj) -> str:
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return str(path)


def run_cli(tmp_path, base, cur, *extra):
    return cli_main(["compare", write(tmp_path, "base.json", base),
                     write(tmp_path, "cur.json", cur), *extra])


def row(res, model, metric):
    found = [r for r in res.rows if r.model == model and r.metric == metric]
    assert len(found) == 1, f"{model} {metric}: {found}"
    return found[0]


def test_identical_passes(tmp_path, capsys):
    base = make_results()
    assert run_cli(tmp_path, base, copy.deepcopy(base)) == 0
    res = compare(base, copy.deepcopy(base))
    assert res.exit_code == 0 and res.verdict == "PASS"
    assert {r.verdict for r in res.rows} <= {"ok", "info"}
    assert "PASS" in capsys.readouterr().out


def test_recall_drop_is_regression(tmp_path, capsys):
    base, cur = make_results(), make_results()
    cur["models"]["wals"]["quality"]["recall@10"] = 0.25  # 5 points absolute
    assert run_cli(tmp_path, base, cur) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "quality.recall@10" in out
    r = row(compare(base, cur), "wals", "quality.recall@10")
    assert r.verdict == "REGRESSION" and r.failed
    assert r.delta == pytest.approx(-0.05)
    # the same drop is tolerated with a looser threshold
    assert run_cli(tmp_path, base, cur, "--max-quality-drop", "0.06") == 0


def test_small_drop_within_threshold(tmp_path):
    base, cur = make_results(), make_results()
    cur["models"]["wals"]["quality"]["recall@10"] = 0.29
    assert run_cli(tmp_path, base, cur) == 0
    # lower-is-better quality figures are informational only
    cur["models"]["wals"]["quality"]["avg_pop@10"] = 999.0
    res = compare(base, cur)
    assert res.exit_code == 0
    assert row(res, "wals", "quality.avg_pop@10").verdict == "info"


def test_slowdown_is_regression(tmp_path):
    base, cur = make_results(), make_results()
    cur["models"]["softmax-full"]["training"]["epoch_thread_min_s"] = 2.0  # 2x the fastest epoch
    assert run_cli(tmp_path, base, cur) == 1
    r = row(compare(base, cur), "softmax-full", "training.epoch_thread_min_s")
    assert r.verdict == "REGRESSION" and r.kind == "timing"
    assert r.ratio == pytest.approx(2.0) and r.norm_ratio == pytest.approx(2.0)
    base, cur = make_results(), make_results()
    cur["models"]["wals"]["serving"]["p50_min_us"] *= 2
    r = row(compare(base, cur), "wals", "serving.p50_min_us")
    assert r.verdict == "REGRESSION" and r.norm_ratio == pytest.approx(2.0)
    assert run_cli(tmp_path, base, cur) == 1


def test_default_threshold_between_noise_and_2x():
    """The default tolerates the x1.45 measured under load and fails a real 2x."""
    assert 1.45 < DEFAULT_MAX_SLOWDOWN < 2.0
    for factor, code in ((1.45, 0), (2.0, 1)):
        base, cur = make_results(), make_results()
        cur["models"]["wals"]["serving"]["p50_min_us"] *= factor
        cur["models"]["wals"]["training"]["epoch_thread_min_s"] *= factor
        assert compare(base, cur).exit_code == code, factor


def test_single_walls_tails_and_qps_are_informational(tmp_path):
    base, cur = make_results(), make_results()
    tr, sv = cur["models"]["softmax-full"]["training"], cur["models"]["softmax-full"]["serving"]
    tr["wall_s"], tr["cpu_s"], tr["epoch_wall_min_s"] = 40.0, 80.0, 4.0  # x4: one preempted run
    sv["p95_us"], sv["p99_us"], sv["p50_us"] = 16000.0, 24000.0, 3200.0  # tails under load
    sv["qps"] = {"1": 10.0, "32": 100.0}
    res = compare(base, cur)
    assert res.exit_code == 0
    for metric in ("training.wall_s", "training.cpu_s", "training.epoch_wall_min_s",
                   "serving.p95_us", "serving.p99_us", "serving.p50_us", "serving.qps[1]",
                   "serving.qps[32]"):
        r = row(res, "softmax-full", metric)
        assert r.verdict == "info" and not r.failed, metric
        assert r.norm_ratio is not None and r.norm_ratio > 3, metric  # ratios still shown
    assert row(res, "softmax-full", "serving.qps[32]").ratio == pytest.approx(200.0)
    assert run_cli(tmp_path, base, cur) == 0


def test_slowdown_on_slower_machine_is_normalised(tmp_path, capsys):
    base = make_results(gflops=100.0)
    cur = make_results(gflops=50.0)  # the current machine is 2x slower
    cur["models"]["softmax-full"]["training"]["epoch_thread_min_s"] = 2.0
    cur["models"]["wals"]["serving"]["p50_min_us"] *= 2
    assert run_cli(tmp_path, base, cur, "--all") == 0
    out = capsys.readouterr().out
    assert "x2.00" in out  # the raw ratio is shown
    res = compare(base, cur)
    r = row(res, "softmax-full", "training.epoch_thread_min_s")
    assert r.verdict == "ok"
    assert r.ratio == pytest.approx(2.0) and r.norm_ratio == pytest.approx(1.0)
    assert row(res, "wals", "serving.p50_min_us").norm_ratio == pytest.approx(1.0)
    assert res.calibration["machine_speed_ratio"] == pytest.approx(0.5)


def test_faster_machine_does_not_hide_a_slowdown():
    base = make_results(gflops=100.0)
    cur = make_results(gflops=200.0)  # 2x faster machine, yet equal time = 2x more work
    res = compare(base, cur)
    r = row(res, "wals", "training.epoch_thread_min_s")
    assert r.ratio == pytest.approx(1.0) and r.norm_ratio == pytest.approx(2.0)
    assert r.verdict == "REGRESSION" and res.exit_code == 1


def test_calibration_is_the_best_sample():
    """A run's calibration is the best of matmul_gflops and its samples: a sample slowed by
    load does not make the run look slow."""
    base, cur = make_results(gflops=100.0), make_results(gflops=40.0)
    cur["run"]["calibration"]["matmul_gflops_samples"] = [40.0, 100.0, 61.0]
    res = compare(base, cur)
    assert res.calibration["current_gflops"] == pytest.approx(100.0)
    assert res.exit_code == 0
    bad = copy.deepcopy(cur)
    bad["run"]["calibration"]["matmul_gflops_samples"] = [None, "x", -3, 0.0]
    assert compare(base, bad).calibration["current_gflops"] == pytest.approx(40.0)
    bad["run"]["calibration"]["matmul_gflops_samples"].append(float("nan"))  # not JSON
    with pytest.raises(CompareError, match=r"matmul_gflops_samples\[4\] is NaN"):
        compare(base, bad)


def test_old_results_without_robust_timings_warn_and_do_not_gate(tmp_path, capsys):
    old = make_results()
    for m in old["models"].values():
        del m["training"]["epoch_thread_min_s"], m["serving"]["p50_min_us"]
        m["training"]["wall_s"] *= 10  # a noisy single wall: informational
    cur = make_results()
    res = compare(old, cur)
    assert res.exit_code == 0
    assert row(res, "wals", "serving.p50_min_us").verdict == "new"
    assert any("not gated" in w and "p50_min_us" in w for w in res.warnings)
    assert run_cli(tmp_path, old, cur) == 0
    out = capsys.readouterr().out
    assert "new metric row(s)" in out and "warning:" in out
    # the other way round the robust figure is missing from the current run: a failure
    assert compare(cur, old).exit_code == 1


def test_tiny_timings_below_floor_are_ignored(tmp_path, capsys):
    base, cur = make_results(), make_results()
    for results, t in ((base, 4.0), (cur, 16.0)):  # 4x, but both under the floors
        results["models"]["wals"]["serving"]["p50_min_us"] = t  # us: floor 20
        results["models"]["wals"]["training"]["epoch_thread_min_s"] = t / 1e5  # 40 -> 160 us
    res = compare(base, cur)
    assert res.exit_code == 0
    r = row(res, "wals", "serving.p50_min_us")
    assert r.verdict == "ok" and "floor" in r.note
    assert row(res, "wals", "training.epoch_thread_min_s").verdict == "ok"
    assert run_cli(tmp_path, base, cur) == 0
    assert "noise floors" in capsys.readouterr().out
    # with the floor lowered the same change fails
    assert run_cli(tmp_path, base, cur, "--min-time-us", "2", "--min-time-s", "0.00001") == 1


def test_missing_model_fails_unless_allowed(tmp_path, capsys):
    base, cur = make_results(), make_results()
    del cur["models"]["softmax-full"]
    assert run_cli(tmp_path, base, cur) == 1
    out = capsys.readouterr().out
    assert "softmax-full" in out and "missing" in out
    r = row(compare(base, cur), "softmax-full", "(model)")
    assert r.verdict == "missing" and r.failed
    assert run_cli(tmp_path, base, cur, "--allow-missing") == 0


def test_missing_section_is_reported():
    base, cur = make_results(), make_results()
    del cur["models"]["wals"]["serving"]
    res = compare(base, cur)
    r = row(res, "wals", "serving.p50_min_us")
    assert r.verdict == "missing" and r.failed
    assert row(res, "wals", "serving.p95_us").verdict == "missing"  # shown, not failing
    assert not row(res, "wals", "serving.p95_us").failed
    assert res.exit_code == 1
    assert compare(base, cur, allow_missing=True).exit_code == 0


def test_new_model_is_informational():
    base, cur = make_results(), make_results()
    cur["models"]["popularity"] = copy.deepcopy(cur["models"]["wals"])
    res = compare(base, cur)
    assert row(res, "popularity", "(model)").verdict == "new"
    assert res.exit_code == 0


def test_improvements_pass(tmp_path):
    base, cur = make_results(), make_results()
    cur["models"]["wals"]["quality"]["recall@10"] = 0.40
    cur["models"]["wals"]["training"]["epoch_thread_min_s"] = 0.05  # 4x faster
    cur["models"]["wals"]["folding"]["leakage@10"] = 0.0
    assert run_cli(tmp_path, base, cur) == 0
    res = compare(base, cur)
    assert row(res, "wals", "quality.recall@10").verdict == "improved"
    assert row(res, "wals", "training.epoch_thread_min_s").verdict == "improved"
    assert row(res, "wals", "folding.leakage@10").verdict == "improved"


def test_cold_start_and_folding_regressions():
    base, cur = make_results(), make_results()
    cur["models"]["wals"]["cold_start"]["users"][1]["recall@10"] = 0.15
    res = compare(base, cur)
    r = row(res, "wals", "cold_start.users[n_known=5].recall@10")
    assert r.verdict == "REGRESSION" and r.delta == pytest.approx(-0.05)
    assert row(res, "wals", "cold_start.users[n_known=1].recall@10").verdict == "ok"
    base, cur = make_results(), make_results()
    cur["models"]["softmax-full"]["folding"]["leakage@10"] = 0.13  # lower is better
    res = compare(base, cur)
    assert row(res, "softmax-full", "folding.leakage@10").verdict == "REGRESSION"
    assert row(res, "softmax-full", "folding.xin_score").verdict == "info"
    assert res.exit_code == 1


def test_quality_se_not_compared():
    base, cur = make_results(), make_results()
    cur["models"]["wals"]["quality_se"]["recall@10"] = 0.5
    res = compare(base, cur)
    assert res.exit_code == 0
    assert not [r for r in res.rows if "quality_se" in r.metric]


def test_cold_start_standard_errors_are_info():
    base, cur = make_results(), make_results()
    base["models"]["wals"]["cold_start"]["users"][1]["recall@10_se"] = 0.03
    cur["models"]["wals"]["cold_start"]["users"][1]["recall@10_se"] = 0.01  # a drop: not a loss
    res = compare(base, cur)
    assert row(res, "wals", "cold_start.users[n_known=5].recall@10_se").verdict == "info"
    assert res.exit_code == 0


def test_failed_stage_is_regression():
    base, cur = make_results(), make_results()
    cur["stages"]["train"] = {"status": "failed", "error": "boom", "wall_s": 1.0}
    res = compare(base, cur)
    r = row(res, "(run)", "stages.train")
    assert r.verdict == "REGRESSION" and "boom" in r.note


def test_metrics_filter(tmp_path):
    base, cur = make_results(), make_results()
    cur["models"]["wals"]["training"]["epoch_thread_min_s"] = 2.0
    assert run_cli(tmp_path, base, cur, "--metrics", "recall@*", "ndcg@10") == 0
    res = compare(base, cur, metrics=["recall@*"])
    assert res.rows and all("recall@" in r.metric for r in res.rows)
    assert run_cli(tmp_path, base, cur, "--metrics", "training.*") == 1


@pytest.mark.parametrize("pattern", ["recal@*", "[", "quality.recall@99", ""])
def test_metrics_pattern_matching_nothing_is_exit_2(tmp_path, capsys, pattern):
    base, cur = make_results(), make_results()
    cur["models"]["wals"]["quality"]["recall@10"] = 0.05  # a real regression behind the typo
    assert run_cli(tmp_path, base, cur, "--metrics", "recall@*", pattern) == 2
    out, err = capsys.readouterr()
    assert "PASS" not in out and len(err.strip().splitlines()) == 1
    assert f"--metrics {pattern!r} matches no metric" in err and "cur.json" in err
    with pytest.raises(CompareError, match="matches no metric"):
        compare(base, cur, metrics=[pattern])


def test_metrics_pattern_may_be_a_shown_name_with_brackets():
    base, cur = make_results(), make_results()
    res = compare(base, cur, metrics=["serving.qps[32]", "users[n_known=5].recall@10"])
    assert sorted(r.metric for r in res.rows) == [
        "cold_start.users[n_known=5].recall@10", "cold_start.users[n_known=5].recall@10",
        "serving.qps[32]", "serving.qps[32]"]


def test_schema_mismatch_exit_2(tmp_path, capsys):
    base, cur = make_results(), make_results()
    cur["schema_version"] = 2
    assert run_cli(tmp_path, base, cur) == 2
    err = capsys.readouterr().err
    assert "cur.json" in err and "schema_version" in err
    del cur["schema_version"]
    assert run_cli(tmp_path, base, cur) == 2
    assert "schema_version" in capsys.readouterr().err
    with pytest.raises(CompareError, match="schema_version"):
        compare(base, cur)


def test_missing_file_exit_2(tmp_path, capsys):
    path = write(tmp_path, "base.json", make_results())
    missing = str(tmp_path / "nope.json")
    assert cli_main(["compare", path, missing]) == 2
    err = capsys.readouterr().err
    assert "nope.json" in err and "not found" in err


def test_invalid_json_exit_2(tmp_path, capsys):
    assert run_cli(tmp_path, make_results(), '{"schema_version": 1, "models": ') == 2
    err = capsys.readouterr().err
    assert "cur.json" in err and "invalid JSON" in err


def test_no_common_models_exit_2(tmp_path, capsys):
    base, cur = make_results(), make_results()
    cur["models"] = {"popularity": cur["models"]["wals"]}
    assert run_cli(tmp_path, base, cur) == 2
    assert "no model in common" in capsys.readouterr().err


def test_bad_threshold_exit_2(tmp_path, capsys):
    base = make_results()
    assert run_cli(tmp_path, base, base, "--max-slowdown", "0.5") == 2
    assert "--max-slowdown" in capsys.readouterr().err


def test_null_value_is_missing():
    base, cur = make_results(), make_results()
    cur["models"]["wals"]["quality"]["ndcg@10"] = None  # NaN written as null
    r = row(compare(base, cur), "wals", "quality.ndcg@10")
    assert r.verdict == "missing" and r.failed


def test_markdown_format(tmp_path, capsys):
    base, cur = make_results(), make_results()
    cur["models"]["wals"]["quality"]["recall@10"] = 0.25
    assert run_cli(tmp_path, base, cur, "--format", "markdown") == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert any(line.startswith("| model | metric |") for line in lines)
    bad = [line for line in lines if line.startswith("| wals | quality.recall@10 |")]
    assert bad and "**REGRESSION**" in bad[0]
    # every table row has the same number of cells as the header
    table = [line for line in lines if line.startswith("|")]
    assert len({line.count(" | ") for line in table if "---" not in line}) == 1
    assert out == format_markdown(compare(base, cur), (str(tmp_path / "base.json"),
                                                       str(tmp_path / "cur.json")))


def test_json_format(tmp_path, capsys):
    base, cur = make_results(), make_results()
    cur["models"]["softmax-full"]["training"]["epoch_thread_min_s"] = 2.0
    assert run_cli(tmp_path, base, cur, "--format", "json") == 1
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "FAIL" and data["exit_code"] == 1
    rows = {(r["model"], r["metric"]): r for r in data["rows"]}
    r = rows[("softmax-full", "training.epoch_thread_min_s")]
    assert r["verdict"] == "REGRESSION" and r["baseline"] == 1.0 and r["current"] == 2.0
    assert len(data["rows"]) == len(compare(base, cur).rows)  # every row, not the compact view
    assert rows[("wals", "quality.recall@10")]["verdict"] == "ok"
    assert json.loads(format_json(compare(base, base)))["exit_code"] == 0


# ---------------------------------------------------------------- the compact view


def big_results(n_models=40, long=False) -> dict:
    """Many models with long names, and long informational strings (a wide, long comparison)."""
    res = make_results()
    proto = res["models"]["softmax-full"]
    res["models"] = {}
    for i in range(n_models):
        m = copy.deepcopy(proto)
        m["params"] = {"note": "x" * 300 if long else "short"}
        m["serving"]["mode"] = ("query-tower-" + "y" * 250) if long else "query-tower"
        m["training"]["memory_method"] = "RSS sampled at 100 Hz during fit, " * 8
        m["folding"]["probe"] = "twin " * 40
        res["models"][f"softmax-positives-only-gravity-variant-number-{i:03d}"] = m
    return res


def test_default_view_is_compact(tmp_path, capsys):
    base, cur = big_results(), big_results(long=True)
    names = list(cur["models"])
    cur["models"][names[3]]["quality"]["recall@10"] = 0.1  # one quality regression
    cur["models"][names[7]]["serving"]["p50_min_us"] *= 3  # one timing regression
    cur["models"][names[9]]["serving"]["p99_us"] *= 50  # a tail: info, not shown
    res = compare(base, cur)
    assert len(res.rows) > 40 * 20  # a big comparison
    assert run_cli(tmp_path, base, cur) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) <= 30, out
    assert max(map(len, lines)) <= MAX_WIDTH, max(lines, key=len)
    assert "quality.recall@10" in out and "serving.p50_min_us" in out
    assert "serving.p99_us" not in out  # informational rows stay out of the default view
    assert names[3] in out and names[7] in out and names[9] not in out
    assert "FAIL: 2 failing row(s)" in out and "--all" in out


def test_all_shows_every_row_within_the_width(tmp_path, capsys):
    base, cur = big_results(n_models=5), big_results(n_models=5, long=True)
    res = compare(base, cur)
    for flag in ("--all", "--verbose"):
        assert run_cli(tmp_path, base, cur, flag) == 0
        lines = capsys.readouterr().out.splitlines()
        assert max(map(len, lines)) <= MAX_WIDTH, max(lines, key=len)
        # one line per row (plus one heading line per model and the header)
        assert len(lines) >= len(res.rows) + 5
        for r in res.rows:
            assert any(line.strip().startswith(r.metric[:40]) for line in lines), r.metric
    # the long values are cut in the table, complete in the json
    text = format_text(res, show_all=True)
    assert "y" * 50 not in text and "~" in text
    data = json.loads(format_json(res))
    modes = [r["current"] for r in data["rows"] if r["metric"] == "serving.mode"]
    assert modes and all(m.endswith("y" * 250) for m in modes)


def test_identical_runs_show_no_row(tmp_path, capsys):
    base = big_results(n_models=10)
    assert run_cli(tmp_path, base, copy.deepcopy(base)) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "no row to show" in out
    assert len(out.splitlines()) <= 12


def test_markdown_all_adds_details(tmp_path, capsys):
    base, cur = make_results(), make_results()
    cur["models"]["wals"]["quality"]["recall@10"] = 0.25
    assert run_cli(tmp_path, base, cur, "--format", "markdown") == 1
    compact = capsys.readouterr().out
    assert "<details>" not in compact and "quality.recall@10" in compact
    assert "serving.p99_us" not in compact
    assert run_cli(tmp_path, base, cur, "--format", "markdown", "--all") == 1
    full = capsys.readouterr().out
    assert "<details>" in full and "serving.p99_us" in full


# ---------------------------------------------------------------- robust statistics


def test_robust_latency_ignores_a_disturbed_round():
    from mfsoftmax.bench.serving import robust_latency_us

    clean = [np.full(40, 100e-6) for _ in range(4)]
    disturbed = np.full(40, 100e-6)
    disturbed[::2] = 5e-3  # half of one round preempted for 5 ms
    out = robust_latency_us([disturbed, *clean])
    assert out["p50_min_us"] == pytest.approx(100.0)
    assert out["p50_round_us"][0] > 1000 and out["p50_round_us"][1:] == [100.0] * 4
    assert out["p99_us"] > 4000  # the tail shows the preemptions (information)
    # a uniform 2x slowdown moves the robust figure
    assert robust_latency_us([r * 2 for r in clean])["p50_min_us"] == pytest.approx(200.0)
    with pytest.raises(ValueError):
        robust_latency_us([[]])


class CountingModel:
    """A stand-in model that records which queries it served, in order."""

    family = "baseline"

    def __init__(self, name, log):
        self.name, self.log = name, log

    def recommend(self, queries, k=10, **kw):
        self.log.append((self.name, tuple(np.atleast_1d(queries))))
        return None


def test_serving_rounds_alternate_across_models_and_repeat_the_same_queries():
    from mfsoftmax.bench.serving import serving_profiles

    log = []
    a, b = CountingModel("a", log), CountingModel("b", log)
    queries = np.arange(100)
    cfg = {"queries": 30, "warmup": 0, "batch_sizes": [4], "k": 10, "rounds": 3,
           "min_time": 0.0, "max_batches": 3}
    pa, pb = serving_profiles([(a, queries, "x"), (b, queries, "y")], cfg)
    assert pa["mode"] == "x" and pb["mode"] == "y"
    assert pa["rounds"] == 3 and len(pa["p50_round_us"]) == 3 and pa["n_queries"] == 30
    assert pa["qps_windows"] == 3 and set(pa["qps"]) == {"4"} and set(pa["qps_median"]) == {"4"}
    assert pa["qps"]["4"] >= pa["qps_median"]["4"]  # the best window
    assert min(pa["p50_round_us"]) == pytest.approx(pa["p50_min_us"], rel=1e-3)
    for key in ("p50_us", "p95_us", "p99_us", "mean_us", "n_queries", "qps"):  # old keys kept
        assert key in pa
    # after the warm-up batches, the models alternate round by round: a..., b..., a..., b...
    served = [name for name, _ in log[2:]]
    changes = [served[0]] + [y for x, y in zip(served, served[1:], strict=False) if y != x]
    assert changes == ["a", "b"] * 3
    # every round of single queries is the same 10 queries
    singles = [q[0] for name, q in log[2:] if name == "a" and len(q) == 1]
    assert singles == list(range(10)) * 3


def test_serving_profile_of_one_model_keeps_the_old_contract():
    from mfsoftmax.bench.serving import latency, serving_profile, throughput

    m = CountingModel("m", [])
    prof = serving_profile(m, np.arange(20), {"queries": 7, "warmup": 2, "batch_sizes": [1, 8],
                                              "k": 10}, "lookup")
    assert prof["n_queries"] == 7 and prof["mode"] == "lookup" and set(prof["qps"]) == {"1", "8"}
    assert all(isinstance(prof[k], float) for k in ("p50_us", "p95_us", "p99_us", "p50_min_us"))
    assert latency(m, np.arange(5), n=3, warmup=0)["rounds"] == 3  # fewer queries than rounds
    assert set(throughput(m, np.arange(5), (1, 2), min_time=0.0)) == {"1", "2"}
    with pytest.raises(ValueError):
        latency(m, np.arange(0), n=3)


class EpochModel:
    """Two epochs: the first sleeps (a preempted epoch: wall time, no CPU), the second spins."""

    family = "baseline"

    def fit(self, train, valid=None, callback=None):
        time.sleep(0.05)
        callback(0, self)
        t0 = time.thread_time()
        while time.thread_time() - t0 < 0.005:
            pass
        callback(1, self)
        return self


def test_timed_fit_records_per_epoch_times():
    from mfsoftmax.bench.measure import timed_fit

    tr = timed_fit(EpochModel(), None)
    assert tr["epochs"] == 2
    for key in ("epoch_wall_s", "epoch_cpu_s", "epoch_thread_s"):
        assert len(tr[key]) == 2
    # the sleeping epoch costs wall time but (almost) no thread CPU time: the gated figure
    # is the CPU epoch, not the one that waited
    assert tr["epoch_thread_s"][0] < tr["epoch_wall_s"][0] / 4
    assert tr["epoch_thread_min_s"] == min(tr["epoch_thread_s"])
    assert tr["epoch_wall_min_s"] == min(tr["epoch_wall_s"])
    assert tr["epoch_thread_median_s"] == pytest.approx(np.median(tr["epoch_thread_s"]))
    assert tr["wall_s"] >= sum(tr["epoch_wall_s"]) - 1e-6
    # a model that never calls back is one epoch
    one = timed_fit(type("M", (), {"fit": lambda self, t, valid=None, callback=None: self})(), None)
    assert len(one["epoch_thread_s"]) == 1 and one["epoch_thread_min_s"] is not None


def test_sample_calibration_keeps_every_sample_and_the_best():
    from mfsoftmax.runtime import calibrate_matmul, sample_calibration

    assert calibrate_matmul(n=64, repeats=3) > 0
    cal = {"matmul_gflops": 1e9}  # an impossible start value: it stays the best
    g = sample_calibration(cal, "stage a", n=64, repeats=3)
    assert cal["matmul_gflops_samples"] == [1e9, g]
    assert cal["matmul_gflops_labels"] == ["start", "stage a"]
    assert cal["matmul_gflops"] == 1e9
    cal = {"matmul_gflops": 0.001}
    g1 = sample_calibration(cal, "a", n=64, repeats=3)
    g2 = sample_calibration(cal, "b", n=64, repeats=3)
    assert cal["matmul_gflops"] == max(g1, g2) and len(cal["matmul_gflops_samples"]) == 3
    assert "method" in cal


@pytest.mark.parametrize("side", ["base.json", "cur.json"])
@pytest.mark.parametrize("text, message", [
    ("NaN", "quality.recall@10 is NaN: not a finite number"),
    ("Infinity", "quality.recall@10 is Infinity: not a finite number"),
    ("7.5", "quality.recall@10 is 7.5, out of range: expected a value in [0, 1]"),
    ("1e308", "quality.recall@10 is 1e+308, out of range"),
])
def test_non_finite_or_out_of_range_metric_is_exit_2(tmp_path, capsys, side, text, message):
    """Before: NaN in the baseline read as a 'new' metric (gate off, PASS); 7.5 as 'improved'."""
    good = json.dumps(make_results())
    bad = good.replace('"recall@10": 0.3,', f'"recall@10": {text},', 1)
    assert bad != good
    base, cur = (bad, good) if side == "base.json" else (good, bad)
    assert run_cli(tmp_path, base, cur) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert f"{side}: models['wals'].{message}" in err


def test_negative_timing_is_exit_2(tmp_path, capsys):
    cur = make_results()
    cur["models"]["wals"]["training"]["epoch_thread_min_s"] = -0.2
    assert run_cli(tmp_path, make_results(), cur) == 2
    assert "models['wals'].training.epoch_thread_min_s is -0.2, out of range: expected >= 0" in \
        capsys.readouterr().err
