"""Reduced-precision scoring at serving time (``serving.score_precision``,
bench/score_precision.py): every precision's top-k against the exact fp32 top-k, the fp32
re-rank, the serving stage's and the corpus sweep's rows, the config check. No timed
assertions."""

from __future__ import annotations

import numpy as np
import pytest

from mfsoftmax.bench.ann.catalogue import VectorSet
from mfsoftmax.bench.config import ConfigError, load_config, validate
from mfsoftmax.bench.score_precision import (
    PRECISIONS,
    Scorer,
    precision_vs_corpus,
    recall_at_k,
    score_precision_profile,
)


@pytest.fixture(scope="module")
def catalogue():
    rng = np.random.default_rng(0)
    V = rng.standard_normal((3000, 32), dtype=np.float32)
    return V, rng.standard_normal((20, 32), dtype=np.float32), rng.standard_normal(3000).astype(np.float32)


def _exact(V, q, b, k):
    s = V @ q + (0 if b is None else b)
    return np.argsort(-s, kind="stable")[:k]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_rerank_of_every_item_is_exact(catalogue, precision):
    """With every item a candidate the fp32 re-rank returns the exact top-k, in order."""
    V, Q, b = catalogue
    scorer = Scorer(V, precision, b, rerank=len(V))
    for q in Q[:5]:
        np.testing.assert_array_equal(scorer.topk(q, 10), _exact(V, q, b, 10))


@pytest.mark.parametrize("precision", ["bf16", "fp16", "int8"])
def test_reduced_precision_recall_and_bytes(catalogue, precision):
    V, Q, b = catalogue
    exact = np.stack([_exact(V, q, b, 10) for q in Q])
    approx = np.stack([Scorer(V, precision, b).topk(q, 10) for q in Q])
    assert recall_at_k(approx, exact) >= 0.9  # 100 candidates re-ranked in fp32
    assert Scorer(V, precision).bytes() == V.size * (1 if precision == "int8" else 2)


def test_bad_precision_is_named():
    with pytest.raises(ValueError, match="'fp8'"):
        Scorer(np.zeros((3, 2), np.float32), "fp8")


def test_profile_records_recall_beside_latency(catalogue):
    V, Q, b = catalogue
    prof = score_precision_profile(V, Q[:8], b, precisions=("fp32", "int8"), k=5, rerank=20, rounds=1)
    assert set(prof) == {"fp32", "int8"}
    assert prof["fp32"]["recall@5"] == 1.0 and prof["fp32"]["rerank"] is None
    assert prof["int8"]["rerank"] == 20 and 0.0 <= prof["int8"]["recall@5"] <= 1.0
    assert all(v["p50_us"] > 0 for v in prof.values())
    assert recall_at_k(np.array([[1, 2], [3, 4]]), np.array([[1, 9], [4, 3]])) == 0.75


def test_corpus_rows_per_size_and_precision(catalogue):
    V, Q, _ = catalogue
    sets = [VectorSet(model="mf", items=V[:500], queries=Q, dim=32, source_model="wals"),
            VectorSet(model="random", vectors="random", dim=8)]
    rows = precision_vs_corpus(sets, [500, 1000], ("fp32", "bf16"), n_queries=5, rounds=1)
    assert [(r["n_items"], r["precision"]) for r in rows] == [
        (500, "fp32"), (500, "bf16"), (1000, "fp32"), (1000, "bf16")]  # trained sets only
    assert all(r["model"] == "mf" and r["source_model"] == "wals" for r in rows)
    assert rows[0]["recall_vs_exact"] == 1.0
    late = precision_vs_corpus(sets, [500], ("fp32",), n_queries=5, time_budget_s=-1.0)
    assert late[0]["p50_us"] is None and "time budget" in late[0]["note"]


def test_config_checks_score_precision():
    cfg = load_config("default")
    assert cfg["serving"]["score_precision"] == list(PRECISIONS)
    cfg["serving"]["score_precision"] = ["fp32", "fp8"]
    with pytest.raises(ConfigError, match="serving.score_precision") as err:
        validate(cfg)
    assert "\n" not in str(err.value)
    cfg["serving"]["score_precision"] = ["int8"]
    cfg["serving"]["score_rerank"] = 0
    with pytest.raises(ConfigError, match="serving.score_rerank"):
        validate(cfg)


def test_serving_stage_rows_carry_score_precision():
    from mfsoftmax.bench.stages import serving as stage
    from mfsoftmax.datasets import make_split
    from mfsoftmax.models import SoftmaxDNN
    from mfsoftmax.models.popularity import Popularity
    from mfsoftmax.models.wals import WALS
    from tests.contract import checkerboard

    split = make_split(checkerboard(), "holdout", seed=0)

    class Ctx:
        cfg = {"serving": {"queries": 6, "warmup": 1, "batch_sizes": [2], "k": 3, "rounds": 1,
                           "min_time": 0.001, "max_batches": 1, "score_precision": ["fp32", "int8"],
                           "score_rerank": 4}}
        seed, results, said = 0, {}, []

        def say(self, msg):
            self.said.append(msg)

    ctx = Ctx()
    ctx.split = split
    ctx.fitted = {"popularity": Popularity().fit(split.train),
                  "wals": WALS(dim=4, iterations=2, track_loss=False).fit(split.train),
                  "dnn": SoftmaxDNN(dim=4, hidden=(8,), epochs=1, batch_size=16).fit(split.train)}
    rows = {r["model"]: r for r in stage.run(ctx).top["serving"]}
    assert "score_precision" not in rows["popularity"]
    for name in ("wals", "dnn"):
        sp = rows[name]["score_precision"]
        assert set(sp) == {"fp32", "int8"} and sp["fp32"]["recall@3"] == 1.0
        assert sp["int8"]["rerank"] == 4
        assert isinstance(rows[name]["flags"], list) and rows[name]["request_threads"] == 1
    assert any("score precision (wals)" in s for s in ctx.said)
