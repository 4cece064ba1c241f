"""The training and serving verdicts name the precision each family was judged in (issue 27):
the precision recorded on the training rows (fp32 in files from before the option), the query
tower's and the scoring's precision at serving, and the fastest reduced-precision scoring the
run measured beside the fp32 one."""

from __future__ import annotations

from mfsoftmax.reports.verdicts import CLAIMS
from reports.judge import precision_of
from reports.sections.serving import judge as _serving
from reports.sections.training import judge as _training


def _claim(key):
    return next(c for c in CLAIMS if c.key == key)


def _results(with_precision=True):
    sm_training = {"wall_s": 50.0, **({"precision": "bf16"} if with_precision else {})}
    return {"models": {
        "wals": {"family": "mf", "training": {"wall_s": 10.0}, "serving": {
            "lean_p50_us": 100.0, "p50_us": 150.0, "mode": "lookup",
            "score_precision": {"fp32": {"p50_us": 100.0, "recall@10": 1.0},
                                "int8": {"p50_us": 40.0, "recall@10": 0.99},
                                "bf16": {"p50_us": 70.0, "recall@10": 1.0}}}},
        "dnn": {"family": "softmax", "training": sm_training, "serving": {
            "lean_p50_us": 400.0, "p50_us": 500.0, "mode": "query-tower",
            "lean_runtime": "torchscript"}}}}


def test_training_verdict_names_each_familys_precision():
    res = _training(_claim("training"), _results())
    assert "judged in fp32 (wals), bf16 (dnn)" in res.text
    rows = [{"model": m, "family": f, "n_interactions": n, "wall_s": t * n / 1e5,
             "s_per_pass": t * n / 1e5, "precision": p}
            for m, f, t, p in (("wals", "mf", 1.0, "fp32"), ("dnn", "softmax", 5.0, "bf16"))
            for n in (1e5, 1e6)]
    res = _training(_claim("training"), {**_results(), "sweeps": {"training_vs_size": rows}})
    assert "N^" in res.text and "judged in fp32 (wals), bf16 (dnn)" in res.text


def test_files_without_precision_read_as_fp32():
    res = _training(_claim("training"), _results(with_precision=False))
    assert "judged in fp32 (wals), fp32 (dnn)" in res.text
    assert precision_of({}, "anything") == "fp32"


def test_serving_verdict_names_tower_scoring_and_the_reduced_scoring_beside():
    res = _serving(_claim("serving"), _results())
    assert "judged in fp32 (wals) [scoring int8 40" in res.text and "recall 0.990" in res.text
    assert "bf16 tower, fp32 scoring (dnn)" in res.text


def test_serving_verdict_shows_a_flagged_lean_path():
    results = _results()
    results["models"]["dnn"]["serving"]["flags"] = ["lean path slower than generic recommend (7903 vs 863 us)"]
    res = _serving(_claim("serving"), results)
    assert "FLAGGED dnn: lean path slower than generic recommend (7903 vs 863 us)" in res.text
    assert "FLAGGED" not in _serving(_claim("serving"), _results()).text
