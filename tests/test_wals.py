"""WALS on implicit: the contract, exactness against an independent reference, fold-in, cold start."""

import numpy as np
import pytest
import scipy.sparse as sp

from mfsoftmax.datasets import Interactions, make_split
from mfsoftmax.models import Queries
from mfsoftmax.models.wals import WALS
from mfsoftmax.models.wals import linalg as la
from mfsoftmax.models.wals.features import FeatureMeans
from tests import wals_reference as ref
from tests.contract import RecommenderContract, checkerboard


class TestWALS(RecommenderContract):
    def make_model(self):
        return WALS(dim=4, w0=0.1, reg=0.1, iterations=10)


def tiny(seed=0, m=25, n=15, density=0.3):
    """Random ratings 1..5 with one empty user row and one empty item column, plus features."""
    rng = np.random.default_rng(seed)
    mask = rng.random((m, n)) < density
    mask[2] = False
    mask[:, 4] = False
    vals = np.where(mask, rng.integers(1, 6, (m, n)), 0).astype(np.float32)
    mat = sp.csr_matrix(vals)
    return Interactions(
        name="tiny", matrix=mat,
        user_features={"a": rng.integers(0, 2, m), "b": rng.integers(0, 3, m)},
        item_features={"c": rng.integers(0, 2, n)},
    )


def dense_weights(model, data):
    """Dense m x n observed-weight matrix (0 where unobserved) under the model's scheme."""
    W = np.zeros(data.matrix.shape)
    coo = data.matrix.tocoo()
    W[coo.row, coo.col] = model.weights_of(coo.data)
    return W


SETTINGS = [
    dict(w0=0.1, reg=0.05, weight="binary"),
    dict(w0=0.5, reg=1.0, weight="binary"),
    dict(w0=0.2, reg=0.3, weight="linear", alpha=0.5),
    dict(w0=1.0, reg=0.01, weight="linear", alpha=2.0),
]


@pytest.mark.parametrize("setting", SETTINGS)
def test_cholesky_matches_reference(setting):
    """Same init, exact solver: objective trajectory and scores equal the numpy reference."""
    data = tiny()
    model = WALS(dim=4, iterations=8, solver="cholesky", init_scale=0.1, seed=3, **setting)
    U0, V0 = model.init_factors(data.n_users, data.n_items)
    model.fit(data)
    W = dense_weights(model, data)
    U, V, history = ref.fit(W, setting["w0"], setting["reg"], U0, V0, 8)
    np.testing.assert_allclose(model.loss_history, history, rtol=2e-4)
    scores = model.score(Queries(np.arange(data.n_users), data.matrix, known=True))
    np.testing.assert_allclose(scores, U @ V.T, atol=2e-4)
    assert np.all(model.U[2] == 0)  # empty training row: the exact minimiser is 0
    assert np.all(model.V[4] == 0)  # empty training column
    assert np.all(np.diff(model.loss_history) <= 1e-6 * model.loss_history[0])  # ALS never ascends


def test_cg_approaches_the_exact_objective():
    data = tiny(1)
    exact = WALS(dim=4, iterations=30, solver="cholesky", w0=0.2, reg=0.1).fit(data)
    cg = WALS(dim=4, iterations=30, solver="cg", cg_steps=4, w0=0.2, reg=0.1).fit(data)
    assert cg.loss_history[-1] == pytest.approx(exact.loss_history[-1], rel=2e-2)


def test_gramian_objective_equals_dense():
    data = tiny(2)
    rng = np.random.default_rng(0)
    U = rng.standard_normal((data.n_users, 3)).astype(np.float32)
    V = rng.standard_normal((data.n_items, 3)).astype(np.float32)
    for weight in ("binary", "linear"):
        model = WALS(weight=weight, alpha=0.7, w0=0.3, reg=0.2)
        W = dense_weights(model, data)
        got = la.objective(U, V, data.matrix, model.weights_of(data.matrix.data), 0.3, 0.2)
        assert got == pytest.approx(ref.dense_objective(W, 0.3, 0.2, U, V), rel=1e-6)


def test_objective_hand_computed():
    """1 x 2 matrix, one observed entry: exact arithmetic."""
    mat = sp.csr_matrix(np.array([[2.0, 0.0]], dtype=np.float32))
    U, V = np.array([[1.0]]), np.array([[0.5], [2.0]])
    # observed: w=1+1*2=3, s=0.5 -> 3*0.25; unobserved: w0=0.1 * 4; reg 0.5*(1 + 0.25 + 4)
    got = la.objective(U, V, mat, np.array([3.0]), 0.1, 0.5)
    assert got == pytest.approx(0.75 + 0.4 + 2.625, rel=1e-12)


@pytest.mark.parametrize("setting", SETTINGS[1:3])
def test_fold_in_equals_reference_and_half_step(setting, monkeypatch):
    data = tiny(3)
    model = WALS(dim=4, iterations=5, solver="cholesky", **setting).fit(data)
    w0, reg = setting["w0"], setting["reg"]
    monkeypatch.setattr(la, "MAX_BLOCK", 40)  # force many small padded blocks
    folded = model.fold_in_users(data.matrix)
    # one exact half-step of ALS for every user given the final V (empty rows -> 0)
    half = ref.solve_rows(dense_weights(model, data), w0, reg, model.V)
    np.testing.assert_allclose(folded, half, rtol=1e-4, atol=1e-5)
    for u in (0, 5, 11):
        row = data.matrix[u]
        expect = ref.fold_in(model.V, row.indices, model.weights_of(row.data), w0, reg)
        np.testing.assert_allclose(folded[u], expect, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(model.fold_in_users(row)[0], folded[u], rtol=1e-5, atol=1e-6)


def test_new_users_scored_by_fold_in():
    data = checkerboard()
    split = make_split(data, "strong", seed=0, n_heldout=6)
    model = WALS(dim=8, iterations=10).fit(split.train)
    q = Queries.from_evalset(split.test)
    np.testing.assert_allclose(model.score(q), model.fold_in_users(q.history) @ model.V.T, rtol=1e-5)


def test_item_fold_in_and_cold_scores():
    data = tiny(4)
    model = WALS(dim=4, iterations=6, solver="cholesky", w0=0.3, reg=0.2).fit(data)
    item_users = sp.csr_matrix(data.matrix.T)[[0, 1, 4]]  # item 4 has no users
    got = model.fold_in_items(item_users)
    for r in range(3):
        row = item_users[r]
        expect = ref.fold_in(model.U, row.indices, model.weights_of(row.data), 0.3, 0.2)
        np.testing.assert_allclose(got[r], expect, rtol=1e-4, atol=1e-5)
    assert np.all(got[2] == 0)
    q = Queries(np.arange(3), data.matrix[:3], known=True)
    scores = model.item_cold_scores(q, np.array([0, 4]), revealed=item_users[[0, 2]])
    emb = np.vstack([got[0], model.cold_item_embeddings([4])[0]])
    np.testing.assert_allclose(scores, model.U[:3] @ emb.T, rtol=1e-5, atol=1e-6)


def test_feature_means_back_off():
    codes = np.array([[0, 0], [0, 0], [0, 1], [1, 1], [1, 2], [0, 2], [1, 0]])
    trained = np.array([True, True, True, True, False, False, False])
    emb = np.arange(14, dtype=np.float64).reshape(7, 2)
    fm = FeatureMeans(codes, trained, emb)
    out, level = fm.lookup([0, 4, 5, 6])
    np.testing.assert_allclose(out[0], emb[[0, 1]].mean(0))  # exact match on both features
    np.testing.assert_allclose(out[1], emb[3])  # (1, 2) unseen -> back off to a == 1
    np.testing.assert_allclose(out[2], emb[[0, 1, 2]].mean(0))  # (0, 2) unseen -> a == 0
    np.testing.assert_allclose(out[3], emb[3])  # (1, 0) unseen -> a == 1
    assert list(level) == [2, 1, 1, 1]
    out, level = FeatureMeans(codes[:, [1]] + np.array([[0]]), trained, emb).lookup([4])
    np.testing.assert_allclose(out[0], emb[:4].mean(0))  # b == 2 never trained -> global mean
    assert level[0] == 0


def test_multi_hot_features_are_one_category():
    data = tiny(5)
    data.item_features = {"genres": np.array([[1, 0], [0, 1]] * 7 + [[1, 0]])}
    model = WALS(dim=3, iterations=3).fit(data)
    trained = np.flatnonzero(data.item_popularity() > 0)
    group = trained[data.item_features["genres"][trained, 0] == 1]
    np.testing.assert_allclose(model.cold_item_embeddings([0])[0], model.V[group].mean(0), rtol=1e-5)


@pytest.mark.parametrize("cold", ["features", "popularity", "zero"])
def test_cold_user_strategies(cold):
    data = tiny(6)
    model = WALS(dim=4, iterations=4, cold_user=cold).fit(data)
    empty = sp.csr_matrix((2, data.n_items), dtype=np.float32)
    q = Queries(np.array([0, 7]), empty, known=False)
    scores = model.score(q)
    if cold == "features":
        active = data.user_activity() > 0
        ua, ub = data.user_features["a"], data.user_features["b"]
        for r, u in enumerate(q.users):
            same = active & (ua == ua[u]) & (ub == ub[u])
            assert same.any()  # the user itself is a trained match
            np.testing.assert_allclose(scores[r], model.U[same].mean(0) @ model.V.T, rtol=1e-4, atol=1e-6)
    elif cold == "popularity":
        np.testing.assert_allclose(scores, np.log1p(np.tile(data.item_popularity(), (2, 1))), rtol=1e-6)
    else:
        assert np.all(scores == 0)


def test_save_load_roundtrip_cold_and_fold_in(tmp_path):
    data = tiny(7)
    model = WALS(dim=4, iterations=4, weight="linear", alpha=0.3).fit(data)
    model.save(tmp_path / "m")
    again = WALS.load(tmp_path / "m")
    assert again.get_params() == model.get_params()
    assert again.loss_history == model.loss_history
    hist = sp.vstack([sp.csr_matrix((1, data.n_items), dtype=np.float32), data.matrix[1:3]]).tocsr()
    q = Queries(np.arange(3), hist, known=False)
    np.testing.assert_array_equal(model.score(q), again.score(q))
    np.testing.assert_array_equal(model.cold_item_embeddings([1, 4]), again.cold_item_embeddings([1, 4]))
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["factors.npz", "params.json"]


def test_callback_stops_early():
    data = tiny(8)
    seen = []

    def cb(it, model):
        seen.append((it, model.objective()))
        return it == 2

    model = WALS(dim=4, iterations=10).fit(data, callback=cb)
    assert [it for it, _ in seen] == [0, 1, 2]
    assert model.iterations_run == 3 and len(model.loss_history) == 3
    np.testing.assert_allclose(model.loss_history, [o for _, o in seen])
    quiet = WALS(dim=4, iterations=10, track_loss=False).fit(data)
    assert quiet.loss_history == [] and quiet.iterations_run == 10


def test_bad_parameters_and_device():
    for bad in (dict(w0=0), dict(weight="sqrt"), dict(solver="direct", device="cuda"), dict(solver="lu"), dict(cold_user="x"), dict(dim=0)):
        with pytest.raises(ValueError, match="WALS: bad parameter"):
            WALS(**bad)
    import implicit.gpu

    if not implicit.gpu.HAS_CUDA:
        with pytest.raises(RuntimeError, match="CUDA"):
            WALS(device="cuda", iterations=1).fit(tiny())
    with pytest.raises(RuntimeError, match="fit"):
        WALS().fold_in_users(sp.csr_matrix((1, 3), dtype=np.float32))


def test_direct_solver_matches_cholesky_and_takes_w0_zero():
    from mfsoftmax.datasets import load, make_split

    data = load("synthetic", n_users=400, n_items=150, n_groups=5, seed=0)
    train = make_split(data, "holdout", seed=0).train
    base = dict(dim=8, w0=0.05, reg=1.0, iterations=4, track_loss=True, seed=0)
    exact = WALS(solver="cholesky", **base).fit(train)
    direct = WALS(solver="direct", **base).fit(train)
    np.testing.assert_allclose(direct.loss_history, exact.loss_history, rtol=1e-4)
    np.testing.assert_allclose(direct.V, exact.V, rtol=1e-3, atol=1e-4)
    zero = WALS(solver="direct", **{**base, "w0": 0.0}).fit(train)
    assert np.all(np.diff(zero.loss_history) <= 1e-6 * zero.loss_history[0])  # ALS never ascends
    assert np.isfinite(zero.U).all() and zero.objective() < exact.objective()  # no unobserved term
    with pytest.raises(ValueError, match="w0 = 0 needs solver='direct'"):
        WALS(w0=0.0, solver="cg")
    assert WALS.w0_params(0) == {"w0": 0.0, "solver": "direct"} and WALS.w0_params(0.1) == {"w0": 0.1}


def test_log_weights_follow_hu_koren_volinsky():
    m = WALS(weight="log", alpha=2.0, eps=0.5)
    c = np.array([0.0, 1.0, 10.0])
    np.testing.assert_allclose(m.weights_of(c), 1.0 + 2.0 * np.log1p(c / 0.5), rtol=1e-6)
    np.testing.assert_allclose(WALS(weight="linear", alpha=3.0).weights_of(c), 1.0 + 3.0 * c)
    with pytest.raises(ValueError, match="eps"):
        WALS(weight="log", eps=0.0)


@pytest.mark.parametrize("params, key, cls", [
    ({}, "implicit-cpu", "ImplicitCPU"),
    ({"solver": "cholesky"}, "implicit-cpu", "ImplicitCPU"),
    ({"device": "cuda"}, "implicit-gpu", "ImplicitGPU"),
    ({"solver": "direct", "w0": 0.0}, "direct", "Direct"),
    ({"engine": "spark", "solver": "direct"}, "spark", "SparkEngine"),
])
def test_the_factory_picks_one_engine_module_per_engine(params, key, cls):
    from mfsoftmax.models.wals import engines

    model = WALS(**params)
    assert engines.engine_key(model.engine, model.solver, model.device) == key
    engine = engines.make_engine(model.engine, model.solver, model.device)
    assert type(engine).__name__ == cls
    assert type(engine).__module__ == f"mfsoftmax.models.wals.{engines._CLASSES[key][0]}"


def test_fit_runs_the_engine_the_factory_gives(monkeypatch):
    """WALS.fit has no engine branch of its own: whatever the factory returns fits, and the
    numpy code after the fit (objective, fold-in, scoring) runs on the factors it set."""
    from mfsoftmax.models.wals import model as wals_model

    asked = []

    class Planted:  # an engine that plants the reference solver's factors in one step
        def check(self, owner, p):
            pass

        def fit(self, model, matrix, init=None, callback=None):
            W = (matrix.toarray() > 0).astype(np.float64)  # binary weights
            U, V, _ = ref.fit(W, model.w0, model.reg, *model.init_factors(*matrix.shape), 10)
            model.U, model.V = U.astype(np.float32), V.astype(np.float32)
            model.fit_seconds = 0.0
            model.iteration_done(0, callback)

    def factory(engine, solver, device):
        asked.append((engine, solver, device))
        return Planted()

    data = tiny()
    monkeypatch.setattr(wals_model, "make_engine", factory)
    model = WALS(dim=2, w0=0.5, reg=0.1, solver="cholesky").fit(data)
    assert asked == [("implicit", "cholesky", "cpu")] * 2  # the constructor's check, the fit
    assert model.iterations_run == 1 and len(model.loss_history) == 1
    assert model.loss_history[0] == pytest.approx(model.objective())
    assert model.score(Queries(np.arange(2), data.matrix[:2], known=True)).shape == (2, data.n_items)


def test_get_params_is_the_declared_parameters_and_rebuilds_the_model():
    import inspect

    model = WALS(dim=8, w0=0.2, weight="log", solver="cholesky", spark_conf={"spark.x": "1"})
    params = model.get_params()
    assert list(params) == list(WALS.PARAMS) == list(inspect.signature(WALS).parameters)
    assert params["dim"] == 8 and params["weight"] == "log" and params["spark_conf"] == {"spark.x": "1"}
    params["spark_conf"]["spark.y"] = "2"  # a copy: the model's table is not touched
    assert model.spark_conf == {"spark.x": "1"}
    assert WALS(**model.get_params()).get_params() == model.get_params()
    assert WALS().get_params()["spark_conf"] == {} and WALS().get_params()["spark_reg"] is None


def test_wals_is_one_package_without_the_old_module_paths():
    import importlib.util

    from mfsoftmax import models

    assert models.WALS is WALS and WALS.__module__ == "mfsoftmax.models.wals.model"
    for old in ("wals_spark", "wals_linalg", "wals_features", "spark_settings"):
        assert importlib.util.find_spec(f"mfsoftmax.models.{old}") is None, old
