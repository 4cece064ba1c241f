"""The suite end to end (`mfsoftmax run --quick`) and its failure handling."""

import json
import os

import pytest

from mfsoftmax.bench.config import ConfigError, load_config, shrink
from mfsoftmax.cli import main
from mfsoftmax.results.schema import check_results
from tests.test_headline_glance import check_report_headline, check_terminal_headline


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "quick"
    code = main(["run", "--quick", "--out", str(out), "--no-progress"])
    return code, out


def test_quick_run_honours_the_contract(quick_run):
    code, out = quick_run
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    assert check_results(res, require_all=True) == []
    assert all(s["status"] == "ok" for s in res["stages"].values()), res["stages"]
    assert {"popularity", "wals", "softmax-full", "softmax-positives-only"} <= set(res["models"])
    assert res["run"]["config"]["run"]["quick"] is True
    assert res["run"]["threads"]["torch"] == 1
    assert res["run"]["calibration"]["matmul_gflops"] > 0
    wals = res["models"]["wals"]
    assert wals["family"] == "mf"
    assert [r["n_known"] for r in wals["cold_start"]["users"]] == [0, 1, 5]
    assert all(r["recall@20_se"] > 0 for r in wals["cold_start"]["users"])
    cold_pairs = res["cold_users_paired_se"]  # every pair of curve models at every point
    curve_models = [n for n, m in res["models"].items() if "users" in m.get("cold_start", {})]
    assert len(cold_pairs) == 3 * len(curve_models) * (len(curve_models) - 1) // 2
    for r in cold_pairs:
        pt = next(p for p in res["models"][r["a"]]["cold_start"]["users"] if p["n_known"] == r["n_known"])
        assert r["n_users"] == pt["n_users"] and r["recall@10"] >= 0.0
    item_models = [n for n, m in res["models"].items() if "items" in m.get("cold_start", {})]
    item_points = len(res["models"]["wals"]["cold_start"]["items"])
    assert len(res["cold_items_paired_se"]) == item_points * len(item_models) * (len(item_models) - 1) // 2
    assert 0.0 <= wals["folding"]["leakage@10"] <= 1.0
    modes = {r["mode"] for r in res["serving"]}
    assert {"known-user", "fold-in", "query-tower"} <= modes
    assert res["ablation"] and res["offline_topk"]["bytes"] > 0
    fp = [r for r in res["ablation"] if r["model"] == "feature-popularity"]
    assert fp and fp[0]["user_features"] is True
    # the DNN with features (and history) against itself without: paired over the same users
    both = [r for r in res["ablation"] if r["history"] is True and r["user_features"] is True
            and not r.get("item_features")]
    assert len(both) == 1 and set(both[0]["lift_se"]) == {"recall@20", "ndcg@20", "cold_recall@20", "cold_ndcg@20"}
    assert all(v >= 0 for v in both[0]["lift_se"].values())
    hashed = {r["scope"]: r for r in res["sweeps"]["hashing"]}
    assert set(hashed) == {"exact", "inputs", "all"}
    exact, inputs, every = hashed["exact"], hashed["inputs"], hashed["all"]
    assert exact["buckets"] == res["dataset"]["n_items"] and inputs["buckets"] == every["buckets"] < exact["buckets"]
    assert 0 < every["embedding_mb"] < inputs["embedding_mb"] < exact["embedding_mb"]
    assert all(0.0 <= r["recall@20"] <= 1.0 for r in hashed.values())
    # one row per pair of models, on the same test users, for every per-user metric
    names = list(res["models"])
    pairs = {(r["a"], r["b"]) for r in res["quality_paired_se"]}
    assert pairs == {(a, b) for i, a in enumerate(names) for b in names[i + 1:]}
    for r in res["quality_paired_se"]:
        assert r["n_users"] == res["models"][r["a"]]["n_test_users"] == res["models"][r["b"]]["n_test_users"]
        assert r["recall@20"] >= 0.0 and "coverage@20" not in r


def test_quick_run_writes_the_report(quick_run):
    _, out = quick_run
    assert (out / "report.md").stat().st_size > 0
    html = (out / "report.html").read_text()
    assert "<table" in html and "http://" not in html.replace("http://www.w3.org", "")
    # the headline at a glance: short cells, the full sentences folded, a sparkline per claim
    check_report_headline(json.loads((out / "results.json").read_text()), out)
    # --out elsewhere: `latest` (kept in the suite's own reports root) is not put beside it
    assert not (out.parent / "latest").exists() and not (out.parent / "latest").is_symlink()


def test_quick_run_prints_summary_headline_time_and_report(quick_run_output):
    out, text = quick_run_output
    assert "recall@20" in text and "headline (textbook claim: verdict)" in text
    assert "Overall quality" in text and "Serving scalability" in text
    check_terminal_headline(text)  # one line per claim within 120 columns
    assert "total time:" in text
    assert f"report:  {out / 'report.html'}" in text
    assert "rendering the report" in text


@pytest.fixture(scope="module")
def quick_run_output(tmp_path_factory):
    """A small run's stdout and stderr (what the user sees at the end)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("seen") / "r"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        code = main(["run", "--quick", "--models", "popularity", "wals", "softmax-in-batch",
                     "--stages", "quality,serving", "--out", str(out), "--no-progress"])
    assert code == 0
    return out, buf.getvalue()


def test_cold_start_over_split_seeds(tmp_path):
    """cold_start.split_seeds repeats the 0-item comparison per strong split; the run's own seed
    reuses its fits, so that split's rows equal the cold-start curve's n_known = 0 point."""
    out = tmp_path / "seeds"
    code = main(["run", "--quick", "--models", "popularity", "feature-popularity", "wals",
                 "--stages", "quality,cold_start_users", "--set", "cold_start.split_seeds=[0, 3]",
                 "--out", str(out), "--no-report", "--no-progress"])
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    rows = res["sweeps"]["cold_start_seeds"]
    assert {(r["seed"], r["model"]) for r in rows} == {
        (s, m) for s in (0, 3) for m in ("popularity", "feature-popularity", "wals")}
    assert all(0.0 <= r["recall@20"] <= 1.0 and r["n_users"] > 0 for r in rows)
    for name, model in res["models"].items():
        point = next(p for p in model["cold_start"]["users"] if p["n_known"] == 0)
        own = next(r for r in rows if r["seed"] == 0 and r["model"] == name)
        assert own["recall@20"] == point["recall@20"]
    pop = {r["seed"]: r["recall@20"] for r in rows if r["model"] == "popularity"}
    assert pop[0] != pop[3]  # another split, other held-out users
    out2 = tmp_path / "seeds-wals"
    assert main(["run", "--quick", "--models", "popularity", "feature-popularity", "wals",
                 "--stages", "quality,cold_start_users", "--set", "cold_start.split_seeds=[3]",
                 "--set", 'cold_start.seed_models=["popularity"]', "--out", str(out2),
                 "--no-report", "--no-progress"]) == 0
    rows2 = json.loads((out2 / "results.json").read_text())["sweeps"]["cold_start_seeds"]
    assert {r["model"] for r in rows2} == {"popularity", "feature-popularity"}  # wals left out
    assert rows2 == [r for r in rows if r["seed"] == 3 and r["model"] != "wals"]  # deterministic


def test_split_seeds_are_checked_and_quick_keeps_two():
    cfg = load_config("ml-100k")
    assert cfg["cold_start"]["split_seeds"] == [0, 1, 2, 3, 4]
    assert shrink(cfg)["cold_start"]["split_seeds"] == [0, 1]
    cfg["cold_start"]["split_seeds"] = ["0"]
    from mfsoftmax.bench.config import validate

    with pytest.raises(ConfigError, match="cold_start.split_seeds"):
        validate(cfg)
    cfg["cold_start"]["split_seeds"], cfg["cold_start"]["n_known_users"] = [0], [1, 5]
    with pytest.raises(ConfigError, match="must include 0"):
        validate(cfg)


def test_quality_is_deterministic(tmp_path):
    args = ["run", "--quick", "--models", "popularity", "wals", "--stages", "quality",
            "--no-report", "--no-progress"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    qa = {k: v["quality"] for k, v in json.loads((tmp_path / "a" / "results.json").read_text())["models"].items()}
    qb = {k: v["quality"] for k, v in json.loads((tmp_path / "b" / "results.json").read_text())["models"].items()}
    assert qa == qb


def test_failed_stage_is_recorded_and_exit_is_nonzero(tmp_path, capsys, monkeypatch):
    from mfsoftmax.models import WALS

    def broken(self, *a, **k):
        raise RuntimeError("solver diverged")

    monkeypatch.setattr(WALS, "fit", broken)
    out = tmp_path / "r"
    code = main(["run", "--quick", "--models", "popularity", "wals", "--stages", "quality,offline_topk",
                 "--no-report", "--no-progress", "--out", str(out)])
    assert code == 1
    res = json.loads((out / "results.json").read_text())
    assert res["stages"]["quality"]["status"] == "failed"
    assert "wals" in res["stages"]["quality"]["error"]
    assert "popularity" in res["models"] and "wals" not in res["models"]
    assert res["stages"]["offline_topk"]["status"] == "failed"


def test_interrupt_keeps_earlier_runs_and_partial_results(tmp_path, monkeypatch):
    from mfsoftmax.bench.stages import serving as serving_stage

    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "results.json").write_text('{"schema_version": 1}')

    def boom(ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr(serving_stage, "run", boom)
    out = tmp_path / "now"
    code = main(["run", "--quick", "--models", "popularity", "--stages", "quality,serving",
                 "--no-report", "--no-progress", "--out", str(out)])
    assert code == 130
    res = json.loads((out / "results.json").read_text())
    assert res["stages"]["quality"]["status"] == "ok"
    assert res["stages"]["serving"]["status"] == "interrupted"
    assert (earlier / "results.json").read_text() == '{"schema_version": 1}'
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]


def test_bad_config_names_the_key(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[models.x]\nparams = {}\n')
    assert main(["run", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "models.x needs a 'kind'" in capsys.readouterr().err
    assert main(["run", "--models", "nope", "--out", str(tmp_path / "o2")]) == 2
    assert "nope" in capsys.readouterr().err
    bad.write_text("[run\n")
    assert main(["run", "--config", str(bad)]) == 2
    assert "invalid TOML" in capsys.readouterr().err


def test_every_shipped_config_loads_and_shrinks():
    from mfsoftmax.bench.config import CONFIG_DIR

    names = sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))
    assert {"default", "ml-100k", "ml-latest-small", "ml-1m", "ml-20m", "scale"} <= set(names)
    for name in names:
        cfg = load_config(name)
        quick = shrink(cfg)
        assert quick["tuning"]["trials"] == 1
        for spec in quick["models"].values():
            assert spec["search"] == {}
    with pytest.raises(ConfigError, match="not found"):
        load_config("no-such-config")


def test_hashing_fractions_are_checked(tmp_path, capsys):
    code = main(["run", "--quick", "--set", "hashing.fractions=[0.5, 2.0]", "--out", str(tmp_path / "o"),
                 "--no-progress"])
    assert code == 2
    assert "hashing.fractions" in capsys.readouterr().err
    code = main(["run", "--quick", "--set", "hashing.scopes=[\"outputs\"]", "--out", str(tmp_path / "o"),
                 "--no-progress"])
    assert code == 2
    assert "hashing.scopes" in capsys.readouterr().err
