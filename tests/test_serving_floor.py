"""The serving floor, its decomposition, the lean single-query path and the compiled query
tower (bench/floor.py, bench/tower_runtime.py, models' ``recommend_one``). No timed
assertions: only that the figures exist, are positive and are computed from each other."""

from __future__ import annotations

import numpy as np
import pytest

from bench.floor import floor_profiles, ratio_to_floor
from bench.tower_runtime import build_runtimes, tower_flops, tower_profile
from mfsoftmax.datasets import make_split
from mfsoftmax.models import Queries, SoftmaxDNN
from mfsoftmax.models.base import topk, topk_one
from mfsoftmax.models.popularity import Popularity
from mfsoftmax.models.wals import WALS
from tests.contract import checkerboard

SMALL_DNN = dict(dim=8, hidden=(16,), batch_size=32, epochs=3, patience=2, lr=0.01, eval_k=3,
                 n_negatives=6)


@pytest.fixture(scope="module")
def split():
    return make_split(checkerboard(), "holdout", seed=0)


@pytest.fixture(scope="module")
def models(split):
    return {"popularity": Popularity().fit(split.train), "wals": WALS(dim=8).fit(split.train),
            "dnn": SoftmaxDNN(**SMALL_DNN).fit(split.train),
            "dnn-bias": SoftmaxDNN(item_bias=True, **SMALL_DNN).fit(split.train)}


def _singles(split, n=8, known=True):
    m = split.train.matrix
    return [(u, m.indices[m.indptr[u]:m.indptr[u + 1]], known) for u in range(n)]


def test_topk_one_matches_topk_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(50):
        s = rng.integers(0, 4, size=30).astype(np.float32)
        s[rng.integers(0, 30, size=5)] = -np.inf
        for k in (1, 3, 10, 30):
            ids, vals = topk(s[None, :], k)
            one_ids, one_vals = topk_one(s.copy(), k)
            np.testing.assert_array_equal(one_ids, ids[0])
            np.testing.assert_array_equal(one_vals, vals[0])


@pytest.mark.parametrize("name", ["popularity", "wals", "dnn", "dnn-bias"])
def test_lean_path_equals_recommend(models, split, name):
    model = models[name]
    for known in (True, False):
        for u, hist, _ in _singles(split, 10, known):
            q = Queries(np.array([u]), split.train.matrix[u], known=known)
            ids, scores = model.recommend(q, k=5)
            lean_ids, lean_scores = model.recommend_one(u, hist, k=5, known=known)
            np.testing.assert_allclose(lean_scores, scores[0], rtol=1e-5, atol=1e-6)
            if not np.array_equal(lean_ids, ids[0]):  # float reordering of near-equal scores
                full = np.asarray(model.score(q))[0]
                np.testing.assert_allclose(full[lean_ids], scores[0], rtol=1e-5, atol=1e-6)


def test_popularity_lean_path_is_its_ranking(models):
    pop = models["popularity"]
    order = pop.ranking()
    ids, _ = pop.recommend_one(0, order[:3], k=4)
    np.testing.assert_array_equal(ids, order[3:7])
    everything = np.arange(pop.n_items)
    ids, scores = pop.recommend_one(0, everything, k=3)  # recommend's -inf tail, ids ascending
    np.testing.assert_array_equal(ids, [0, 1, 2])
    assert np.all(np.isneginf(scores))


def test_floors_and_decomposition_present_and_positive(models, split):
    names = list(models)
    specs = [(models[n], _singles(split)) for n in names]
    specs.append((models["wals"], _singles(split, known=False)))
    out = floor_profiles(specs, n=20, k=5, rounds=2, warmup=1)
    assert len(out) == len(specs)
    kinds = dict(zip([*names, "wals-new"], [o["floor_kind"] for o in out], strict=True))
    assert kinds == {"popularity": "ranking", "wals": "lookup", "dnn": "query-tower",
                     "dnn-bias": "query-tower", "wals-new": "query-embedding"}
    for o in out:
        assert o["floor_p50_us"] > 0 and o["lean_p50_us"] > 0 and o["topk_us"] > 0
        assert o["embed_us"] >= 0 and o["score_us"] >= 0
        if o["floor_kind"] != "ranking":
            assert o["embed_us"] > 0 and o["score_us"] > 0


def test_ratio_to_floor():
    assert ratio_to_floor(200.0, 50.0) == 4.0
    assert ratio_to_floor(None, 50.0) is None and ratio_to_floor(10.0, 0.0) is None


def test_stage_rows_carry_the_floor(models, split):
    """The serving stage's rows: floor, decomposition, lean path, ratio from the recorded
    numbers, and the tower for the DNN."""
    from bench.stages import serving as stage

    class Ctx:
        cfg = {"serving": {"queries": 10, "warmup": 2, "batch_sizes": [4], "k": 5, "rounds": 2,
                           "min_time": 0.01, "max_batches": 2}}
        seed = 0
        results = {"run": {"calibration": {"matmul_gflops": 10.0}}}
        fitted = {n: models[n] for n in ("popularity", "wals", "dnn")}
        said: list = []

        def say(self, msg):
            self.said.append(msg)

    ctx = Ctx()
    ctx.split = split
    section = stage.run(ctx)
    rows = section.top["serving"]
    for row in rows:
        for key in ("p50_us", "p50_min_us", "p95_us", "qps", "mode", "floor_p50_us", "embed_us",
                    "score_us", "topk_us", "lean_p50_us", "ratio_to_floor"):
            assert key in row, (row["model"], key)
        assert row["ratio_to_floor"] == pytest.approx(row["p50_min_us"] / row["floor_p50_us"], rel=1e-2)
    dnn = next(r for r in rows if r["model"] == "dnn")
    assert dnn["tower"]["chosen"] in ("eager", "torchscript", "compiled")
    assert dnn["tower"]["flops"] > 0 and dnn["tower"]["flops_ratio_at_calibration"] > 0
    assert dnn["embed_fast_us"] >= 0
    # the production path: the DNN's lean path through its compiled tower, eager beside it
    assert dnn["lean_runtime"] == "torchscript" and "lean_runtime_note" not in dnn
    assert dnn["lean_eager_p50_us"] > 0 and dnn["lean_embed_us"] > 0 and dnn["lean_embed_eager_us"] > 0
    wals = next(r for r in rows if r["model"] == "wals")
    assert "lean_runtime" not in wals and "lean_eager_p50_us" not in wals
    from mfsoftmax.results.schema import validate

    problems = validate({"schema_version": 1, "serving": rows}, partial=True)
    assert not [p for p in problems if "serving" in p], problems


@pytest.mark.parametrize("name", ["dnn", "dnn-bias"])
def test_compiled_tower_equals_eager(models, split, name):
    model = models[name]
    u, hist, _ = _singles(split, 1)[0]
    runtimes, inputs, notes = build_runtimes(model, u, hist)
    assert "torchscript" in runtimes, notes
    ref = runtimes["eager"](*inputs.args)
    # the wrapped module is the model's own tower: eager equals query_embeddings
    q = Queries(np.array([u]), split.train.matrix[u], known=True)
    np.testing.assert_allclose(ref, model.query_embeddings(q), atol=1e-6)
    for fn in runtimes.values():
        np.testing.assert_allclose(fn(*inputs.args), ref, atol=1e-5)
    others = [(v, h) for v, h, _ in _singles(split, 6)[1:]]
    prof = tower_profile(model, u, hist, n=10, rounds=2, warmup=1, gflops=10.0, checks=others)
    assert prof["chosen"] in runtimes and prof["chosen_us"] > 0
    assert prof["max_abs_diff"][prof["chosen"]] <= 1e-5  # chosen only when equal on every check
    for v, h in others:  # the chosen runtime is right on other history lengths too
        args = build_runtimes(model, v, h)[1].args
        np.testing.assert_allclose(runtimes[prof["chosen"]](*args), runtimes["eager"](*args),
                                   atol=1e-5)
    assert prof["flops"] == tower_flops(model, len(hist)) > 0


def test_floor_of_a_model_without_embeddings(split):
    from mfsoftmax.models.feature_popularity import FeaturePopularity

    model = FeaturePopularity().fit(split.train)
    (out,) = floor_profiles([(model, _singles(split))], n=8, k=5, rounds=2, warmup=1)
    assert out["floor_kind"] == "score" and out["embed_us"] == 0 and out["floor_p50_us"] > 0
    for u, hist, _ in _singles(split, 5):  # the generic fallback is recommend's own answer
        ids, _ = model.recommend(Queries(np.array([u]), split.train.matrix[u]), k=5)
        np.testing.assert_array_equal(model.recommend_one(u, hist, k=5)[0], ids[0])


def test_serving_verdict_names_the_dominant_part():
    from mfsoftmax.reports.verdicts import CLAIMS
    from reports.sections.serving import judge as _serving

    claim = next(c for c in CLAIMS if c.key == "serving")
    results = {"models": {
        "wals": {"family": "mf", "serving": {"p50_us": 60.0, "mode": "lookup", "embed_us": 0.5,
                                             "score_us": 30.0, "topk_us": 20.0, "ratio_to_floor": 1.2}},
        "dnn": {"family": "softmax", "serving": {
            "p50_us": 400.0, "mode": "query-tower", "embed_us": 300.0, "embed_fast_us": 40.0,
            "score_us": 31.0, "topk_us": 20.0, "ratio_to_floor": 1.1,
            "tower": {"chosen": "torchscript", "eager_us": 290.0, "chosen_us": 30.0}}}}}
    res = _serving(claim, results)
    assert "tower via torchscript" in res.text
    assert "DNN is 40.5 µs slower per query at the same corpus, mostly in query embedding" in res.text
    assert "scoring dominates" in res.text  # MF's time is the V @ u


def test_serving_verdict_when_mf_is_the_slower():
    """MF at d = 256 against a DNN at d = 64 on a large catalogue: MF's scoring reads 4x the
    floats, the DNN's tower costs the other way; the verdict says which side is slower and why."""
    from mfsoftmax.reports.verdicts import CLAIMS
    from reports.sections.serving import judge as _serving

    claim = next(c for c in CLAIMS if c.key == "serving")
    results = {"models": {
        "wals": {"family": "mf", "params": {"dim": 256}, "serving": {
            "p50_us": 2600.0, "mode": "lookup", "embed_us": 2.0, "score_us": 2300.0,
            "topk_us": 280.0}},
        "dnn": {"family": "softmax", "params": {"dim": 64}, "serving": {
            "p50_us": 600.0, "mode": "query-tower", "embed_us": 216.0, "score_us": 235.0,
            "topk_us": 160.0}}}}
    text = _serving(claim, results).text
    assert "MF is 1,971 µs slower per query at the same corpus, mostly in scoring (+2,065 µs)" in text
    assert "partly offset by query embedding (-214 µs)" in text
    assert "embedding dims differ (MF 256, DNN 64)" in text


def _serving_results(lean=True, sweep=True):
    """A serving section of both families: generic p50s far apart, lean ones closer; a corpus
    sweep whose ANN rows at low recall are the fastest."""
    mf = {"p50_us": 200.0, "p50_min_us": 190.0, "mode": "lookup", "embed_us": 0.3, "score_us": 20.0,
          "topk_us": 15.0, "floor_p50_us": 36.0}
    dnn = {"p50_us": 600.0, "p50_min_us": 580.0, "mode": "query-tower", "embed_us": 300.0,
           "score_us": 21.0, "topk_us": 15.0, "floor_p50_us": 336.0,
           "tower": {"chosen": "torchscript", "eager_us": 290.0, "chosen_us": 30.0}}
    if lean:
        mf.update(lean_p50_us=40.0)
        dnn.update(lean_p50_us=90.0, lean_runtime="torchscript", lean_eager_p50_us=350.0,
                   lean_embed_us=45.0, lean_embed_eager_us=300.0)
    res = {"models": {"wals": {"family": "mf", "serving": mf},
                      "dnn-model": {"family": "softmax", "serving": dnn}}}
    if sweep:
        rows = []
        for n, exact in ((1_000, 10.0), (100_000, 2000.0)):
            for fam, q, src in (("mf", 1.0, "wals"), ("dnn", 300.0, "dnn-model")):
                base = {"model": fam, "n_items": n, "vectors": "trained", "source_model": src,
                        "query_embedding_us": q}
                rows.append({**base, "index": "exact", "p50_us": exact, "recall_vs_exact": 1.0})
                rows.append({**base, "index": "hnswlib", "param": "ef", "param_value": 10,
                             "p50_us": 5.0, "recall_vs_exact": 0.5})  # too inaccurate to count
                rows.append({**base, "index": "hnswlib", "param": "ef", "param_value": 64,
                             "p50_us": 60.0 if n > 1000 else 30.0, "recall_vs_exact": 0.97})
            rows.append({"model": "random", "vectors": "random", "n_items": n, "index": "exact",
                         "p50_us": 0.1, "recall_vs_exact": 1.0})
        res["sweeps"] = {"serving_vs_corpus": rows}
    return res


def _serving_claim(results):
    from mfsoftmax.reports.verdicts import CLAIMS
    from reports.sections.serving import judge as _serving

    return _serving(next(c for c in CLAIMS if c.key == "serving"), results)


def test_serving_verdict_uses_the_lean_compiled_path():
    res = _serving_claim(_serving_results(sweep=False))
    assert res.figures["mf"].startswith("40.0 µs (lean;")
    assert res.figures["softmax"].startswith("90.0 µs (lean, TorchScript tower;")
    assert "generic recommend 200 µs vs 600 µs" in res.text
    assert res.winner == "mf"  # 2.2x on the lean path
    assert "embed 45.0 µs" in res.text and "tower via torchscript" in res.text


def test_serving_verdict_old_file_falls_back_to_generic():
    res = _serving_claim(_serving_results(lean=False, sweep=False))
    assert "(generic recommend;" in res.figures["mf"] and "(generic recommend;" in res.figures["softmax"]
    assert "generic recommend 200" not in res.text  # no second generic figure to show


def test_serving_verdict_compares_at_the_same_recall_on_the_compiled_tower():
    from reports.sections.serving import serving_at_recall

    results = _serving_results()
    at = serving_at_recall(results)
    assert sorted(at) == [1_000, 100_000]
    for e in at.values():
        assert e["recall"] == 0.95
        for fam in ("mf", "softmax"):
            assert e[fam]["recall"] >= 0.95  # the ef=10 rows (recall 0.5) never count
        # the DNN's query embedding: the lean TorchScript tower (45 µs), not the sweep's eager 300
        assert e["softmax"]["query_us"] == 45.0 and e["softmax"]["query_from"] == "TorchScript tower"
        assert e["mf"]["query_us"] == 1.0
    assert at[1_000]["mf"]["index"] == "exact" and at[1_000]["mf"]["total_us"] == 11.0
    assert at[100_000]["softmax"]["index"] == "hnswlib" and at[100_000]["softmax"]["total_us"] == 105.0
    res = _serving_claim(results)
    # 1k: 11 vs 55 µs (MF 5x); 100k: 61 vs 105 µs (1.7x): MF ahead at both sizes
    assert res.verdict == "confirmed"
    assert "recall@10 ≥ 0.95" in res.text and "1k: 11.0 µs (exact) vs 55.0 µs (exact)" in res.text
    assert "most of its cost at n ≤ 1k" in res.text and "the search dominates at n ≥ 100k" in res.text
    # a size where no ANN point reaches the target: compared at the best recall both reach
    rows = [r for r in results["sweeps"]["serving_vs_corpus"] if r["index"] != "exact"]
    at2 = serving_at_recall({**results, "sweeps": {"serving_vs_corpus": rows}})
    assert at2[1_000]["recall"] == 0.95 and at2[1_000]["mf"]["index"] == "hnswlib"


def test_serving_table_shows_the_served_path_and_generic():
    from reports.sections.serving import serving_table

    t = serving_table([_serving_results(sweep=False)], ["run"])
    cols = t.groups[0][1]
    for c in ("served p50", "path", "lean, eager tower", "floor p50", "served / floor", "recommend p50"):
        assert c in cols, cols
    rows = {k[0]: dict(zip(cols, v, strict=True)) for k, v in t.rows}
    assert rows["dnn-model"]["path"] == "lean, TorchScript tower"
    assert rows["wals"]["path"] == "lean" and rows["wals"]["lean, eager tower"] == "—"
    old = serving_table([_serving_results(lean=False, sweep=False)], ["run"])
    cols = old.groups[0][1]
    rows = {k[0]: dict(zip(cols, v, strict=True)) for k, v in old.rows}
    assert rows["wals"]["path"] == "generic recommend" and "served / floor" not in cols


def test_serving_verdict_depends_when_the_corpus_sweep_disagrees_with_the_request_figures():
    """MF ahead per request (a lookup) but behind at every corpus size of the sweep (its MF
    queries are fold-ins: new test users): not "same at every corpus size", but depends."""
    results = _serving_results()
    for r in results["sweeps"]["serving_vs_corpus"]:
        if r.get("model") == "mf":
            r["query_embedding_us"] = 900.0  # a fold-in per query, slower than the DNN's tower
    res = _serving_claim(results)
    assert res.verdict == "depends", res.text
    assert "same at every corpus size" not in res.text
    assert "softmax faster at n ∈ {1k, 100k}" in res.text and "at the run's corpus" in res.text
