"""The results contract: docs/results.md + src/mfsoftmax/results/results.schema.json, one validator
(`mfsoftmax.results.schema.validate`) for `run`, `report` and `compare`."""

import copy
import json
import re
from importlib import resources
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from mfsoftmax.cli import main
from mfsoftmax.reports.load import ReportInputError
from mfsoftmax.reports.load import validate as report_validate
from mfsoftmax.results.schema import (
    SCHEMA_VERSION,
    ResultsError,
    check_results,
    ensure_valid,
    schema,
    validate,
)
from tests.fixtures import RESULTS_V1
from tests.fixtures.results_fixture import make_results

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A real (small) run: three models, the stages that fill every model section, two
    training seeds (paired rows by user and seed)."""
    out = tmp_path_factory.mktemp("schema") / "run"
    code = main(["run", "--quick", "--no-report", "--no-progress", "--out", str(out),
                 "--models", "popularity", "wals", "softmax-in-batch",
                 "--stages", "quality,serving,cold_start_users,cold_start_items,folding,"
                             "serving_vs_corpus",
                 "--set", "sweeps.corpus_sizes=[1000]", "--set", "quality.seeds=2"])
    assert code == 0
    return json.loads((out / "results.json").read_text())


# ----------------------------------------------------------------------------- the document
def test_schema_is_valid_versioned_and_packaged():
    doc = schema()
    Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"] and doc["version"] == SCHEMA_VERSION
    assert doc["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    packaged = resources.files("mfsoftmax.results").joinpath("results.schema.json")
    assert json.loads(packaged.read_text()) == doc
    assert not (ROOT / "docs" / "results.schema.json").exists()  # one copy, linked from docs


def _required_keys(node, out):
    if isinstance(node, dict):
        out.update(node.get("required", []))
        for v in node.values():
            _required_keys(v, out)
    elif isinstance(node, list):
        for v in node:
            _required_keys(v, out)
    return out


def test_prose_contract_names_every_required_key():
    text = (ROOT / "docs" / "results.md").read_text()
    assert "src/mfsoftmax/results/results.schema.json" in text
    missing = sorted(k for k in _required_keys(schema(), set()) if f"{k}" not in text)
    assert missing == []


# ----------------------------------------------------------------------------- valid files
def test_real_run_passes(small_run):
    assert validate(small_run) == []
    assert small_run["run"]["status"] == "complete"
    assert all("components" in row for row in small_run["quality_paired_se"])
    assert report_validate(small_run, "run") is small_run


def test_fixture_passes():
    assert validate(make_results(), require_all=True) == []
    assert check_results(make_results(), require_all=True) == []


def test_committed_baseline_passes():
    baseline = json.loads((ROOT / "bench" / "baselines" / "default-quick.json").read_text())
    assert validate(baseline) == []


def test_old_results_file_still_passes():
    """A results.json written by an older commit (schema_version 1, before strata) stays valid."""
    old = json.loads(RESULTS_V1.read_text())
    assert "strata" not in old and old["schema_version"] == 1
    assert validate(old) == []


def test_extra_keys_and_nulls_are_allowed():
    r = make_results()
    r["my_section"] = {"anything": [1, "two"]}
    r["run"]["status"] = "complete"
    r["run"]["note"] = "extra"
    r["run"]["calibration"]["matmul_gflops_samples"] = [40.0, 41.7]
    r["models"]["wals"]["serving"]["p50_min_us"] = 80.0
    r["models"]["wals"]["quality"]["ndcg@10"] = None  # NaN is written as null
    r["models"]["wals"]["my_figure"] = 3
    r["stages"]["ablation"] = {"status": "skipped", "error": None, "wall_s": 0.0,
                               "reason": "no user features"}
    r["sweeps"]["my_sweep"] = [{"x": 1}]
    assert validate(r, require_all=True) == []


def test_a_running_run_may_have_no_model_yet():
    r = make_results()
    r["models"] = {}
    r["run"]["status"] = "running"
    assert validate(r) == []
    r["run"]["status"] = "complete"
    assert r["stages"]["quality"]["status"] == "ok"
    assert validate(r) == ["models is empty"]


def test_a_sweep_only_run_may_have_no_model():
    r = make_results()
    r["models"] = {}
    del r["stages"]["quality"]  # quality = false: only the sweeps ran (the train-cost config)
    assert validate(r) == []
    r["stages"]["quality"] = {"status": "failed", "error": "boom", "wall_s": 1.0}
    assert validate(r) == []


# ----------------------------------------------------------------------------- invalid files
def _del(path):
    def edit(r):
        *parents, last = path
        node = r
        for p in parents:
            node = node[p]
        del node[last]
    return edit


def _set(path, value):
    def edit(r):
        *parents, last = path
        node = r
        for p in parents:
            node = node[p]
        node[last] = value
    return edit


MISSING = [
    (("run",), "run missing"),
    (("run", "seed"), "run.seed missing"),
    (("run", "threads", "blas"), "run.threads.blas missing"),
    (("run", "packages", "torch"), "run.packages.torch missing"),
    (("dataset", "protocol"), "dataset.protocol missing"),
    (("models", "wals", "family"), "models['wals'].family missing"),
    (("models", "wals", "training", "epochs"), "models['wals'].training.epochs missing"),
    (("models", "wals", "serving", "p95_us"), "models['wals'].serving.p95_us missing"),
    (("models", "wals", "folding", "xin_score"), "models['wals'].folding.xin_score missing"),
]

WRONG_TYPE = [
    (("run", "calibration", "matmul_gflops"), "fast",
     "run.calibration.matmul_gflops must be a number, got a string ('fast')"),
    (("run", "threads", "torch"), "1", "run.threads.torch must be an integer, got a string ('1')"),
    (("dataset", "n_users"), 12.5, "dataset.n_users must be an integer, got a number (12.5)"),
    (("models", "wals", "training", "wall_s"), "4.2 s",
     "models['wals'].training.wall_s must be a number, got a string ('4.2 s')"),
    (("models", "wals", "quality", "recall@10"), "0.18",
     "models['wals'].quality.recall@10 must be a number or null, got a string ('0.18')"),
    (("models", "wals", "serving", "qps", "32"), True,
     "models['wals'].serving.qps['32'] must be a number, got a boolean (true)"),
    (("models", "wals", "quality"), [0.1], "models['wals'].quality must be an object, got a list"),
    (("sweeps", "folding_vs_w0"), {"w0": 1}, "sweeps['folding_vs_w0'] must be a list, got an object"),
    (("sweeps", "training_vs_size", 0, "wall_s"), "slow",
     "sweeps['training_vs_size'][0].wall_s must be a number or null, got a string ('slow')"),
    (("models", "wals", "family"), "dnn", "models['wals'].family is 'dnn', expected one of"),
    (("stages", "serving", "status"), "done", "stages['serving'].status is 'done', expected one of"),
]


@pytest.mark.parametrize("path, message", MISSING, ids=[m for _, m in MISSING])
def test_a_missing_required_key_is_named(path, message):
    r = make_results()
    _del(path)(r)
    problems = validate(r, "x.json")
    assert f"x.json: {message}" in problems
    with pytest.raises(ResultsError, match=re.escape(message)):
        ensure_valid(r, "x.json")
    report_validate(r, "x.json")  # the report reads partial files: absent means not measured


@pytest.mark.parametrize("path, value, message", WRONG_TYPE, ids=[m[:40] for *_, m in WRONG_TYPE])
def test_a_wrong_type_is_named(path, value, message):
    r = make_results()
    _set(path, value)(r)
    problems = validate(r, "x.json")
    assert any(p.startswith(f"x.json: {message}") for p in problems), problems
    with pytest.raises(ReportInputError, match=r"^x\.json: .*" + re.escape(message)):
        report_validate(r, "x.json")  # partial or not, what is present must be well-formed


def test_list_rows_keep_their_keys_even_when_partial():
    r = make_results()
    del r["models"]["wals"]["cold_start"]["users"][1]["n_known"]
    r["quality_paired_se"] = [{"a": "wals"}]
    problems = validate(r, partial=True)
    assert problems == ["models['wals'].cold_start.users[1].n_known missing",
                        "quality_paired_se[0].b missing"]


@pytest.mark.parametrize("version, message", [
    (2, "schema_version 2 is not supported (expected 1"),
    ("1", "schema_version '1' is not supported"),
    (None, "schema_version None is not supported"),
])
def test_another_schema_version_is_refused(version, message):
    r = make_results()
    r["schema_version"] = version
    assert validate(r, "old.json") == [f"old.json: {validate(r)[0]}"]
    assert validate(r)[0].startswith(message)
    with pytest.raises(ReportInputError, match=re.escape(message)):
        report_validate(r, "old.json")


def test_no_schema_version_or_not_an_object():
    r = make_results()
    del r["schema_version"]
    assert "no schema_version" in validate(r)[0]
    assert validate([1, 2]) == ["expected a JSON object at the top level, got list"]


def test_require_all_asks_for_every_section_and_sweep():
    r = make_results()
    del r["models"]["wals"]["cold_start"]
    del r["sweeps"]["serving_vs_corpus"]
    assert validate(r) == []
    assert validate(r, require_all=True) == ["models['wals'].cold_start missing",
                                             "sweeps['serving_vs_corpus'] missing"]


def test_messages_list_every_problem_once():
    r = copy.deepcopy(make_results())
    del r["run"]["seed"]
    r["dataset"]["k"] = []
    with pytest.raises(ResultsError) as info:
        ensure_valid(r, "f.json")
    assert str(info.value) == "f.json: dataset.k must have at least 1 item(s); run.seed missing"


# ----------------------------------------------------------------------------- values
NOT_FINITE = [
    (("models", "wals", "quality", "recall@10"), float("nan"), "models['wals'].quality.recall@10 is NaN"),
    (("models", "wals", "quality", "recall@10_se"), float("inf"),
     "models['wals'].quality.recall@10_se is Infinity"),  # a key the schema does not name
    (("models", "wals", "serving", "p50_min_us"), float("-inf"),
     "models['wals'].serving.p50_min_us is -Infinity"),
    (("sweeps", "folding_vs_w0", 0, "leakage@10"), float("inf"),
     "sweeps['folding_vs_w0'][0].leakage@10 is Infinity"),  # once, not also as out of range
    (("run", "calibration", "matmul_gflops"), float("nan"), "run.calibration.matmul_gflops is NaN"),
]

OUT_OF_RANGE = [
    (("models", "wals", "quality", "recall@10"), 7.5, "models['wals'].quality.recall@10 is 7.5"),
    (("models", "wals", "quality", "ndcg@20"), 1e308, "models['wals'].quality.ndcg@20 is 1e+308"),
    (("models", "wals", "quality", "mrr"), -0.1, "models['wals'].quality.mrr is -0.1"),
    (("models", "wals", "cold_start", "items", 0, "recall@10"), 2.0,
     "models['wals'].cold_start.items[0].recall@10 is 2.0"),
    (("models", "wals", "folding", "leakage@10"), 1.5, "models['wals'].folding.leakage@10 is 1.5"),
    (("models", "wals", "folding", "users_with_leak"), 3, "models['wals'].folding.users_with_leak is 3"),
    (("ablation", 0, "cold_recall@20"), 4.0, "ablation[0].cold_recall@20 is 4.0"),
    (("sweeps", "serving_vs_corpus", 0, "recall_vs_exact"), 1.2,
     "sweeps['serving_vs_corpus'][0].recall_vs_exact is 1.2"),
    (("models", "wals", "training", "wall_s"), -1.0, "models['wals'].training.wall_s is -1.0"),
    (("models", "wals", "serving", "p50_us"), -3, "models['wals'].serving.p50_us is -3"),
    (("models", "wals", "serving", "qps", "32"), -5.0, "models['wals'].serving.qps['32'] is -5.0"),
    (("sweeps", "training_vs_size", 0, "wall_s"), -0.5,
     "sweeps['training_vs_size'][0].wall_s is -0.5"),
    (("stages", "serving", "wall_s"), -2.0, "stages['serving'].wall_s is -2.0"),
]


@pytest.mark.parametrize("path, value, message", NOT_FINITE, ids=[m[:40] for *_, m in NOT_FINITE])
def test_nan_and_infinity_are_refused_naming_the_key(path, value, message):
    r = make_results()
    _set(path, value)(r)
    problems = validate(r, "x.json", partial=True)
    assert problems == [f"x.json: {message}: not a finite number (a figure that could not be "
                        "computed is written as null)"]
    with pytest.raises(ReportInputError, match=re.escape(message)):
        report_validate(r, "x.json")


@pytest.mark.parametrize("path, value, message", OUT_OF_RANGE, ids=[m[:40] for *_, m in OUT_OF_RANGE])
def test_out_of_range_figures_are_refused_naming_the_key(path, value, message):
    r = make_results()
    _set(path, value)(r)
    problems = validate(r, "x.json", partial=True)
    assert len(problems) == 1 and problems[0].startswith(f"x.json: {message}, out of range"), problems
    timing = str(path[-1]).endswith(("_s", "_us")) or path[-2] == "qps"
    expected = ">= 0" if timing else "a value in [0, 1]"
    assert problems[0].endswith(expected)


def test_ranges_keep_the_bounds_and_what_is_not_a_share():
    r = make_results()
    wals = r["models"]["wals"]
    wals["quality"].update({"recall@10": 1.0, "ndcg@10": 0.0, "avg_pop@10": 250.0})
    wals["quality_se"]["recall@10"] = 0.0
    wals["serving"]["p50_us"] = 0.0
    wals["folding"]["xin_score"] = -0.3  # a score, not a share
    assert validate(r, require_all=True) == []
