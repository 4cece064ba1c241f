"""The softmax DNN's lean single-query path with its compiled query tower (``recommend_one``,
``serve_runtime``): the same items as ``recommend`` for known users, new users and users with no
history, for every loss; TorchScript equal to eager; a TorchScript that differs from eager or
does not build falls back to eager with the reason kept. No timed assertions."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse as sp

from mfsoftmax.datasets import make_split
from mfsoftmax.models import Queries, SoftmaxDNN
from mfsoftmax.models.softmax import LOSSES, serving
from mfsoftmax.models.softmax.serving import SERVE_TOLERANCE
from tests.contract import checkerboard

TINY = dict(dim=8, hidden=(16,), batch_size=32, epochs=2, patience=2, lr=0.01, eval_k=3,
            n_negatives=6, hard_pool=12)


@pytest.fixture(scope="module")
def split():
    return make_split(checkerboard(), "holdout", seed=0)


@pytest.fixture(scope="module")
def fitted(split):
    """One tiny model per loss, plus variants that change the tower's inputs and pooling."""
    out = {loss: SoftmaxDNN(loss=loss, **TINY).fit(split.train) for loss in LOSSES}
    out["bias+hash"] = SoftmaxDNN(loss="sampled-uniform", item_bias=True, hash_buckets=7,
                                  **TINY).fit(split.train)
    out["no-history"] = SoftmaxDNN(use_history=False, **TINY).fit(split.train)
    out["no-features"] = SoftmaxDNN(use_user_features=False, **TINY).fit(split.train)
    out["gravity"] = SoftmaxDNN(loss="in-batch", gravity=0.1, **TINY).fit(split.train)  # dense tables
    return out


def _requests(split, n_items):
    """(user, history ids, known) of every training user, new users (a test row's history or a
    random subset) and users with no history at all."""
    m = split.train.matrix
    rng = np.random.default_rng(1)
    out = [(u, m.indices[m.indptr[u]:m.indptr[u + 1]], True) for u in range(m.shape[0])]
    for u in range(0, m.shape[0], 4):
        out.append((u, np.sort(rng.choice(n_items, size=int(rng.integers(1, 8)), replace=False)), False))
        out.append((u, np.zeros(0, np.int64), False))
        out.append((u, np.zeros(0, np.int64), True))
    return out


def _row(hist, n_items):
    hist = np.asarray(hist, dtype=np.int64)
    return sp.csr_matrix((np.ones(len(hist), np.float32), (np.zeros(len(hist), np.int64), hist)),
                         shape=(1, n_items))


def _assert_same_items(model, u, hist, known, k=5, runtime=None):
    q = Queries(np.array([u]), _row(hist, model.n_items), known=known)
    ids, scores = model.recommend(q, k=k)
    lean_ids, lean_scores = model.recommend_one(u, hist, k=k, known=known, runtime=runtime)
    assert not set(lean_ids.tolist()) & set(np.asarray(hist).tolist())
    np.testing.assert_allclose(lean_scores, scores[0], rtol=1e-5, atol=1e-6)
    if not np.array_equal(lean_ids, ids[0]):  # only float reordering of near-equal scores
        full = np.asarray(model.score(q))[0]
        np.testing.assert_allclose(full[lean_ids], scores[0], rtol=1e-5, atol=1e-6)
    return np.array_equal(lean_ids, ids[0])


@pytest.mark.parametrize("name", [*LOSSES, "bias+hash", "no-history", "no-features", "gravity"])
def test_lean_compiled_tower_returns_recommends_items(fitted, split, name):
    model = fitted[name]
    info = model.serve_info()
    assert info["requested"] == "auto" and info["runtime"] == "torchscript", info
    assert info["max_abs_diff"] <= SERVE_TOLERANCE and info["checked"] >= 3
    same = [_assert_same_items(model, u, h, kn) for u, h, kn in _requests(split, model.n_items)]
    assert np.mean(same) >= 0.95  # the order itself, not only near-equal scores


@pytest.mark.parametrize("name", ["full", "in-batch", "bias+hash", "no-history", "gravity"])
def test_torchscript_tower_equals_eager(fitted, split, name):
    model = fitted[name]
    ts = model._serve_fn("torchscript")
    for u, h, _ in _requests(split, model.n_items)[::3]:
        args = model._one_inputs(u, np.unique(np.asarray(h, dtype=np.int64)))
        ref = model._eager_one(*args)
        np.testing.assert_allclose(ts(*args), ref, atol=SERVE_TOLERANCE * max(1.0, np.abs(ref).max()))
        # eager on the lean inputs is the generic path's query embedding
        q = Queries(np.array([u]), _row(np.unique(h), model.n_items), known=True)
        np.testing.assert_allclose(ref, model.query_embeddings(q)[0], rtol=1e-5, atol=1e-6)
        a = model.recommend_one(u, h, k=5, runtime="eager")
        b = model.recommend_one(u, h, k=5, runtime="torchscript")
        np.testing.assert_allclose(a[1], b[1], rtol=1e-5, atol=1e-6)


def test_eager_runtime_returns_recommends_items(fitted, split):
    model = fitted["sampled-popularity"]
    for u, h, kn in _requests(split, model.n_items)[::2]:
        _assert_same_items(model, u, h, kn, runtime="eager")


def test_forced_mismatch_falls_back_to_eager(split, monkeypatch):
    real = serving._trace_query_tower

    def off_by_one(model, example):
        traced = real(model, example)
        return lambda *args: traced(*args) + 1.0

    monkeypatch.setattr(serving, "_trace_query_tower", off_by_one)
    model = SoftmaxDNN(**TINY).fit(split.train)
    info = model.serve_info()
    assert info["runtime"] == "eager" and "differs from eager" in info["reason"]
    assert info["max_abs_diff"] > SERVE_TOLERANCE
    for u, h, kn in _requests(split, model.n_items)[::5]:
        _assert_same_items(model, u, h, kn)  # auto serves through eager
    with pytest.raises(RuntimeError, match="torchscript"):
        model.recommend_one(0, [1, 2], runtime="torchscript")
    explicit = SoftmaxDNN(serve_runtime="torchscript", **TINY).fit(split.train)
    with pytest.raises(RuntimeError, match="differs from eager"):
        explicit.recommend_one(0, [1, 2])


def test_trace_failure_falls_back_with_the_reason(split, monkeypatch):
    def broken(model, example):
        raise RuntimeError("cannot trace this")

    monkeypatch.setattr(serving, "_trace_query_tower", broken)
    model = SoftmaxDNN(**TINY).fit(split.train)
    info = model.serve_info()
    assert info["runtime"] == "eager" and "cannot trace this" in info["reason"]
    _assert_same_items(model, 3, [0, 1], True)


def test_serve_runtime_parameter(split, tmp_path):
    with pytest.raises(ValueError, match="serve_runtime"):
        SoftmaxDNN(serve_runtime="onnx")
    model = SoftmaxDNN(serve_runtime="eager", **TINY).fit(split.train)
    assert model.get_params()["serve_runtime"] == "eager"
    assert model.serve_info()["runtime"] == "eager"
    _assert_same_items(model, 2, [0, 3], True)
    with pytest.raises(ValueError, match="runtime"):
        model.recommend_one(0, [1], runtime="jit")
    model.save(tmp_path / "m")
    again = SoftmaxDNN.load(tmp_path / "m")
    assert again.serve_runtime == "eager"
    again.serve_runtime = "auto"
    assert again.serve_info()["runtime"] == "torchscript"
    _assert_same_items(again, 2, [0, 3], True)


def test_refit_rebuilds_the_trace_and_pickles(split):
    model = SoftmaxDNN(**TINY).fit(split.train)
    before = model.recommend_one(1, [0, 2], k=5)
    model.epochs = 3
    model.fit(split.train)  # new weights: the trace (weights baked in) must not survive
    assert model._serve is None
    _assert_same_items(model, 1, [0, 2], True)
    assert before[0].shape == (5,)
    clone = pickle.loads(pickle.dumps(model))  # the TorchScript function is dropped, rebuilt
    np.testing.assert_allclose(clone.recommend_one(1, [0, 2], k=5)[1],
                               model.recommend_one(1, [0, 2], k=5)[1], rtol=1e-6)


def test_lean_path_checks_its_inputs(fitted):
    model = fitted["full"]
    with pytest.raises((ValueError, IndexError)):
        model.recommend_one(0, [model.n_items + 3])
    with pytest.raises(IndexError):
        model.recommend_one(model.n_users + 5, [0])
    ids, _ = model.recommend_one(0, [1, 1, 2], k=3)  # duplicates: the history's set
    assert not {1, 2} & set(ids.tolist())
