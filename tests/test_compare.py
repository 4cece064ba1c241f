"""`mfsoftmax compare`: regression verdicts, exit codes and output formats."""

import copy
import json

import pytest

from mfsoftmax.bench.compare import CompareError, compare, format_json, format_markdown
from mfsoftmax.cli import main as cli_main


def make_results(gflops=100.0) -> dict:
    """A small results dict following docs/RESULTS.md: wals and softmax-full."""

    def model(family, recall, wall_s, p50):
        return {
            "family": family,
            "params": {"dim": 32},
            "quality": {"recall@10": recall, "ndcg@10": recall * 0.8, "precision@10": 0.1,
                        "mrr": 0.3, "coverage@10": 0.5, "avg_pop@10": 120.0},
            "quality_se": {"recall@10": 0.01, "ndcg@10": 0.01},
            "training": {"wall_s": wall_s, "cpu_s": wall_s * 2, "peak_rss_mb": 300.0,
                         "epochs": 10, "curve": [{"wall_s": 1.0, "recall@10": recall}]},
            "serving": {"mode": "exact", "p50_us": p50, "p95_us": p50 * 2, "p99_us": p50 * 3,
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
    cur["models"]["softmax-full"]["training"]["wall_s"] = 20.0  # 2x
    assert run_cli(tmp_path, base, cur) == 1
    r = row(compare(base, cur), "softmax-full", "training.wall_s")
    assert r.verdict == "REGRESSION"
    assert r.ratio == pytest.approx(2.0) and r.norm_ratio == pytest.approx(2.0)


def test_slowdown_on_slower_machine_is_normalised(tmp_path, capsys):
    base = make_results(gflops=100.0)
    cur = make_results(gflops=50.0)  # the current machine is 2x slower
    cur["models"]["softmax-full"]["training"]["wall_s"] = 20.0
    cur["models"]["wals"]["serving"]["p50_us"] = 800.0
    assert run_cli(tmp_path, base, cur) == 0
    out = capsys.readouterr().out
    assert "x2.00" in out  # the raw ratio is shown
    res = compare(base, cur)
    r = row(res, "softmax-full", "training.wall_s")
    assert r.verdict == "ok"
    assert r.ratio == pytest.approx(2.0) and r.norm_ratio == pytest.approx(1.0)
    assert row(res, "wals", "serving.p50_us").norm_ratio == pytest.approx(1.0)
    assert res.calibration["machine_speed_ratio"] == pytest.approx(0.5)


def test_faster_machine_does_not_hide_a_slowdown():
    base = make_results(gflops=100.0)
    cur = make_results(gflops=200.0)  # 2x faster machine, yet equal time = 2x more work
    res = compare(base, cur)
    r = row(res, "wals", "training.wall_s")
    assert r.ratio == pytest.approx(1.0) and r.norm_ratio == pytest.approx(2.0)
    assert r.verdict == "REGRESSION" and res.exit_code == 1


def test_qps_drop_is_regression():
    base, cur = make_results(), make_results()
    cur["models"]["wals"]["serving"]["qps"]["32"] = 10000.0  # half the throughput
    r = row(compare(base, cur), "wals", "serving.qps[32]")
    assert r.verdict == "REGRESSION" and r.ratio == pytest.approx(2.0)
    cur["models"]["wals"]["serving"]["qps"]["32"] = 40000.0
    r = row(compare(base, cur), "wals", "serving.qps[32]")
    assert r.verdict == "improved" and r.ratio == pytest.approx(0.5)


def test_tiny_timings_below_floor_are_ignored(tmp_path, capsys):
    base, cur = make_results(), make_results()
    for results, t in ((base, 10.0), (cur, 40.0)):  # 4x, but both under 50 us
        results["models"]["wals"]["serving"]["p50_us"] = t
        results["models"]["wals"]["training"]["wall_s"] = t / 1000  # 0.01 s -> 0.04 s
    res = compare(base, cur)
    assert res.exit_code == 0
    r = row(res, "wals", "serving.p50_us")
    assert r.verdict == "ok" and "floor" in r.note
    assert row(res, "wals", "training.wall_s").verdict == "ok"
    assert run_cli(tmp_path, base, cur) == 0
    assert "noise floors" in capsys.readouterr().out
    # with the floor lowered the same change fails
    assert run_cli(tmp_path, base, cur, "--min-time-us", "5", "--min-time-s", "0.001") == 1


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
    assert row(res, "wals", "serving.p50_us").verdict == "missing"
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
    cur["models"]["wals"]["training"]["wall_s"] = 1.0
    cur["models"]["wals"]["folding"]["leakage@10"] = 0.0
    assert run_cli(tmp_path, base, cur) == 0
    res = compare(base, cur)
    assert row(res, "wals", "quality.recall@10").verdict == "improved"
    assert row(res, "wals", "training.wall_s").verdict == "improved"
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
    cur["models"]["wals"]["training"]["wall_s"] = 20.0
    assert run_cli(tmp_path, base, cur, "--metrics", "recall@*", "ndcg@10") == 0
    res = compare(base, cur, metrics=["recall@*"])
    assert res.rows and all("recall@" in r.metric for r in res.rows)
    assert run_cli(tmp_path, base, cur, "--metrics", "training.*") == 1


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
    cur["models"]["softmax-full"]["training"]["wall_s"] = 20.0
    assert run_cli(tmp_path, base, cur, "--format", "json") == 1
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "FAIL" and data["exit_code"] == 1
    rows = {(r["model"], r["metric"]): r for r in data["rows"]}
    r = rows[("softmax-full", "training.wall_s")]
    assert r["verdict"] == "REGRESSION" and r["baseline"] == 10.0 and r["current"] == 20.0
    assert rows[("wals", "quality.recall@10")]["verdict"] == "ok"
    assert json.loads(format_json(compare(base, base)))["exit_code"] == 0
