"""The serving floor, its decomposition, the lean single-query path and the compiled query
tower (bench/floor.py, bench/tower_runtime.py, models' ``recommend_one``). No timed
assertions: only that the figures exist, are positive and are computed from each other."""

from __future__ import annotations

import numpy as np
import pytest

from bench.floor import floor_profiles, ratio_to_floor
from bench.tower_runtime import build_runtimes, tower_flops, tower_profile
from mfsoftmax.datasets import make_split
from mfsoftmax.models import Queries
from mfsoftmax.models.base import topk, topk_one
from mfsoftmax.models.popularity import Popularity
from mfsoftmax.models.softmax_dnn import SoftmaxDNN
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
    assert kinds == {"popularity": "ranking", "wals": "lookup", "dnn": "query-embedding",
                     "dnn-bias": "query-embedding", "wals-new": "query-embedding"}
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
    from reports.verdicts import CLAIMS, _serving

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
    assert "the gap is mostly query embedding" in res.text
    assert "scoring dominates" in res.text  # MF's time is the V @ u
