"""SoftmaxDNN: the shared contract for several training variants, plus its own features."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mfsoftmax.datasets import make_split
from mfsoftmax.evaluation import evaluate
from mfsoftmax.models import Queries, SoftmaxDNN
from mfsoftmax.models.softmax.bags import bag_inputs as _bags
from mfsoftmax.models.softmax.losses import gravity as gravity_term
from tests.contract import RecommenderContract, checkerboard

SMALL = dict(dim=8, hidden=(16,), batch_size=32, epochs=12, patience=4, lr=0.01, eval_k=3, n_negatives=6)


class TestFull(RecommenderContract):
    def make_model(self):
        return SoftmaxDNN(loss="full", **SMALL)


class TestSampledUniform(RecommenderContract):
    def make_model(self):
        return SoftmaxDNN(loss="sampled-uniform", **SMALL)


class TestSampledPopularityGravity(RecommenderContract):
    def make_model(self):
        return SoftmaxDNN(loss="sampled-popularity", gravity=0.1, **SMALL)


class TestInBatch(RecommenderContract):
    def make_model(self):
        return SoftmaxDNN(loss="in-batch", **SMALL)


class TestHardNegatives(RecommenderContract):
    def make_model(self):
        return SoftmaxDNN(loss="hard-negatives", hard_pool=12, **SMALL)


class TestPositivesOnly(RecommenderContract):
    """Positives-only training folds (the point of the variant): nothing pushes other groups'
    scores down, so the in-group bound is waived here and checked relatively below."""

    min_in_group = 0.0

    def make_model(self):
        return SoftmaxDNN(loss="positives-only", weight_decay=1e-4, **SMALL)


class TestItemTowerHashed(RecommenderContract):
    def make_model(self):
        return SoftmaxDNN(loss="full", item_tower="add", hash_buckets=16, **SMALL)


@pytest.fixture(scope="module")
def data():
    return checkerboard()


@pytest.fixture(scope="module")
def split(data):
    return make_split(data, "holdout", seed=0)


def test_names_and_params():
    assert SoftmaxDNN(loss="in-batch").name == "softmax-in-batch"
    assert SoftmaxDNN(loss="sampled-uniform", gravity=0.5).name == "softmax-sampled-uniform-gravity"
    assert SoftmaxDNN(name="mine").name == "mine"
    assert SoftmaxDNN(loss="hard-negatives").get_params()["loss"] == "hard-negatives"


@pytest.mark.parametrize("kwargs, word", [
    (dict(use_history=False, use_user_features=False), "use_history"),
    (dict(loss="nope"), "loss"),
    (dict(optimizer="sgd"), "optimizer"),
    (dict(item_tower="concat"), "item_tower"),
    (dict(dim=0), "dim"),
])
def test_bad_parameters(kwargs, word):
    with pytest.raises(ValueError, match=word):
        SoftmaxDNN(**kwargs)


def test_bags_leave_target_out_and_truncate():
    items = np.array([10, 11, 12, 13, 20, 21])
    flat, offsets, weights = _bags(items, np.array([0, 4]), np.array([4, 2]), np.array([1, 0]), 2)
    assert flat.tolist() == [10, 12, 21]
    assert offsets.tolist() == [0, 2]
    np.testing.assert_allclose(weights, [0.5, 0.5, 1.0])


def test_history_callback_and_eval_time(split):
    seen = []
    model = SoftmaxDNN(loss="full", **dict(SMALL, epochs=5, patience=10))
    model.fit(split.train, valid=split.valid, callback=lambda e, m: seen.append(e) or e == 2)
    assert seen == [0, 1, 2]
    assert [h["epoch"] for h in model.history] == [0, 1, 2]
    assert set(model.history[0]) == {"epoch", "loss", "wall_s", "valid_recall@k"}
    assert all(0 <= h["valid_recall@k"] <= 1 for h in model.history)
    assert model.eval_seconds > 0


def test_early_stopping_keeps_best_state(split):
    model = SoftmaxDNN(loss="sampled-uniform", **dict(SMALL, epochs=30, patience=2)).fit(split.train, split.valid)
    best = max(h["valid_recall@k"] for h in model.history)
    again = evaluate(model, split.valid, ks=(3,))["recall@3"]
    assert again == pytest.approx(best)
    assert len(model.history) < 30 or best == model.history[-1]["valid_recall@k"]


def test_other_seed_differs(split):
    a = SoftmaxDNN(loss="in-batch", seed=0, **SMALL).fit(split.train).item_embeddings()
    b = SoftmaxDNN(loss="in-batch", seed=1, **SMALL).fit(split.train).item_embeddings()
    assert not np.allclose(a, b)


def test_features_only_model_serves_empty_history(data, split):
    model = SoftmaxDNN(loss="full", use_history=False, **SMALL).fit(split.train)
    users = np.arange(data.n_users)
    empty = sp.csr_matrix((len(users), data.n_items), dtype=np.float32)
    ids, _ = model.recommend(Queries(users, empty, known=False), k=3)
    assert (data.item_groups[ids] == data.user_groups[users][:, None]).mean() >= 0.9


def test_history_model_scores_empty_history(data, split):
    model = SoftmaxDNN(loss="full", **SMALL).fit(split.train)
    empty = sp.csr_matrix((3, data.n_items), dtype=np.float32)
    assert np.isfinite(model.score(Queries(np.arange(3), empty, known=False))).all()


@pytest.mark.parametrize("mode", ["replace", "add"])
def test_item_tower_scores_unseen_items(data, mode):
    cold = np.r_[0:3, 12:15]  # three items of each group, never seen in training
    keep = ~np.isin(data.matrix.indices, cold)
    train = data.select(keep)
    assert train.item_popularity()[cold].sum() == 0
    model = SoftmaxDNN(loss="full", item_tower=mode, use_history=False, **dict(SMALL, epochs=40)).fit(train)
    users = np.arange(data.n_users)
    q = Queries(users, train.matrix, known=True)
    s = model.item_cold_scores(q, cold, revealed=None)
    assert s.shape == (len(users), len(cold))
    best = cold[np.argmax(s, axis=1)]
    assert (data.item_groups[best] == data.user_groups[users]).mean() >= 0.9


def test_item_cold_scores_needs_tower(split):
    model = SoftmaxDNN(loss="full", **dict(SMALL, epochs=1)).fit(split.train)
    with pytest.raises(ValueError, match="item_tower"):
        model.item_cold_scores(Queries([0], split.train.matrix[:1]), [0, 1])


def test_hashing_reduces_embedding_bytes(split, data):
    exact = SoftmaxDNN(loss="full", **dict(SMALL, epochs=1)).fit(split.train)
    hashed = SoftmaxDNN(loss="full", hash_buckets=8, **dict(SMALL, epochs=1)).fit(split.train)
    d, n, card = SMALL["dim"], data.n_items, 2  # one categorical user feature with 2 codes
    biased = SoftmaxDNN(loss="full", hash_buckets=8, item_bias=True, **dict(SMALL, epochs=1)).fit(split.train)
    assert exact.embedding_bytes() == 4 * (2 * n * d + card * d)
    assert hashed.embedding_bytes() == 4 * (2 * 8 * d + card * d)
    assert biased.embedding_bytes() == 4 * (2 * 8 * d + 8 + card * d)  # one bias per hashed row
    assert hashed.item_embeddings().shape == (n, d)
    inputs = SoftmaxDNN(loss="full", hash_buckets=8, hash_scope="inputs", **dict(SMALL, epochs=1)).fit(split.train)
    assert inputs.embedding_bytes() == 4 * (8 * d + n * d + card * d)  # history hashed, V exact
    assert inputs.net.query.history.weight.shape[0] == 8 and inputs.net.item.free.weight.shape[0] == n
    V = inputs.item_embeddings()
    assert len(np.unique(V.round(6), axis=0)) == n  # every item keeps its own output row
    assert len(np.unique(hashed.item_embeddings().round(6), axis=0)) <= 8
    with pytest.raises(ValueError, match="hash_scope"):
        SoftmaxDNN(hash_scope="outputs")


def test_gravity_changes_gram_spectrum(split):
    kw = dict(SMALL, epochs=15, patience=100)
    plain = SoftmaxDNN(loss="sampled-uniform", **kw).fit(split.train)
    grav = SoftmaxDNN(loss="sampled-uniform", gravity=5.0, **kw).fit(split.train)
    q = Queries(np.arange(split.train.n_users), split.train.matrix)

    def spectrum_and_term(model):
        V = model.item_embeddings()
        Q = model.query_embeddings(q)
        term = float(gravity_term(torch.from_numpy(Q), torch.from_numpy(V)))
        return np.linalg.eigvalsh(V.T @ V), term

    ev_plain, g_plain = spectrum_and_term(plain)
    ev_grav, g_grav = spectrum_and_term(grav)
    assert g_grav < 0.5 * g_plain
    assert not np.allclose(ev_plain, ev_grav, rtol=0.1)


def test_save_load_with_tower_and_hashing(split, tmp_path):
    model = SoftmaxDNN(loss="hard-negatives", item_tower="replace", hash_buckets=10, item_bias=True,
                       **SMALL).fit(split.train)
    model.save(tmp_path / "m")
    again = SoftmaxDNN.load(tmp_path / "m")
    q = Queries(np.arange(5), split.train.matrix[:5])
    np.testing.assert_allclose(model.score(q), again.score(q), rtol=1e-6)
    np.testing.assert_allclose(model.item_cold_scores(q, [1, 2]), again.item_cold_scores(q, [1, 2]), rtol=1e-6)
    assert again.get_params() == model.get_params()
    assert again.history == model.history
    assert again.cold_bias == model.cold_bias
    np.testing.assert_array_equal(again.item_biases(), model.item_biases())


def test_adagrad_and_max_history_run(split):
    model = SoftmaxDNN(loss="sampled-popularity", optimizer="adagrad", max_history=3, weight_decay=1e-3,
                       **dict(SMALL, lr=0.05)).fit(split.train, split.valid)
    assert max(h["valid_recall@k"] for h in model.history) > 0.3


def test_unknown_user_index_is_a_clear_error(split):
    model = SoftmaxDNN(loss="full", **dict(SMALL, epochs=1)).fit(split.train)
    with pytest.raises(IndexError, match="user index"):
        model.score(Queries([10_000], split.train.matrix[:1]))


def test_positives_only_folds_more_than_full(data, split):
    users = np.arange(data.n_users)
    q = Queries(users, split.train.matrix)

    def in_group(model):
        ids, _ = model.fit(split.train, split.valid).recommend(q, k=3)
        return (data.item_groups[ids] == data.user_groups[users][:, None]).mean()

    full = in_group(SoftmaxDNN(loss="full", **SMALL))
    pos_only = in_group(SoftmaxDNN(loss="positives-only", weight_decay=1e-4, **SMALL))
    assert full >= 0.9
    assert pos_only < full - 0.2


@pytest.mark.parametrize("kind,fused", [("adam", True), ("adam", False), ("adagrad", False)])
def test_lazy_row_optimizer_matches_torch_when_every_row_is_touched(kind, fused):
    from mfsoftmax.models.softmax.optim import LazyRowOptimizer

    g = torch.Generator().manual_seed(0)
    w0 = torch.randn(5, 3, generator=g, dtype=torch.float64)
    a = torch.nn.Parameter(w0.clone())
    b = torch.nn.Parameter(w0.clone())
    lazy = LazyRowOptimizer([a], kind, lr=0.05, weight_decay=0.01, fused=fused)
    ref = (torch.optim.Adam if kind == "adam" else torch.optim.Adagrad)([b], lr=0.05, weight_decay=0.01)
    for _ in range(4):
        idx = torch.tensor([3, 0, 1, 4, 2, 0])  # every row, one twice (summed)
        x = torch.randn(6, 3, generator=g, dtype=torch.float64)
        for p, sparse in ((a, True), (b, False)):
            p.grad = None
            (torch.nn.functional.embedding(idx, p, sparse=sparse) * x).sum().backward()
        lazy.step()
        ref.step()
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_rowwise_adagrad_matches_hand_computation():
    """state_i += mean_j(g_ij^2); w_i -= lr * g_i / (sqrt(state_i) + eps); untouched rows keep
    their state; duplicate lookups are summed first; L2 is added to the gradient."""
    from mfsoftmax.models.softmax.optim import LazyRowOptimizer

    w0 = np.array([[1.0, -2.0], [0.5, 0.5], [3.0, 1.0]])
    w = torch.nn.Parameter(torch.tensor(w0))
    lr, wd, eps = 0.1, 0.2, 1e-10
    opt = LazyRowOptimizer([w], "rowwise-adagrad", lr=lr, weight_decay=wd)
    steps = [(torch.tensor([0, 2, 0]), np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])),
             (torch.tensor([2]), np.array([[-1.0, 3.0]]))]
    ref, acc = w0.copy(), np.zeros(3)
    for idx, x in steps:
        w.grad = None
        (torch.nn.functional.embedding(idx, w, sparse=True) * torch.tensor(x)).sum().backward()
        opt.step()
        grad = np.zeros_like(ref)
        np.add.at(grad, idx.numpy(), x)
        rows = np.unique(idx.numpy())
        gr = grad[rows] + wd * ref[rows]
        acc[rows] += (gr ** 2).mean(1)
        ref[rows] -= lr * gr / (np.sqrt(acc[rows])[:, None] + eps)
    np.testing.assert_allclose(w.detach().numpy(), ref, rtol=1e-12)
    np.testing.assert_allclose(opt.state[0][0].numpy(), acc, rtol=1e-12)
    assert acc[1] == 0 and np.array_equal(ref[1], w0[1])


def test_table_optimizer_applies_to_sparse_tables_only():
    from mfsoftmax.models.softmax.optim import LazyRowOptimizer

    data = checkerboard()
    kinds = {}
    for loss, tab in (("in-batch", "rowwise-adagrad"), ("in-batch", None), ("full", "rowwise-adagrad")):
        m = SoftmaxDNN(loss=loss, table_optimizer=tab, table_lr=0.07, epochs=1, dim=4, hidden=())
        m.fit(data)
        opts = m._optimizers()
        lazy = [o for o in opts if isinstance(o, LazyRowOptimizer)]
        kinds[(loss, tab)] = (lazy[0].kind, lazy[0].lr) if lazy else None
    assert kinds[("in-batch", "rowwise-adagrad")] == ("rowwise-adagrad", 0.07)
    assert kinds[("in-batch", None)] == ("adam", 1e-3)  # None: the dense optimizer and lr
    assert kinds[("full", "rowwise-adagrad")] is None  # full: dense tables, dense optimizer


@pytest.mark.parametrize("kw,word", [({"table_optimizer": "sgd"}, "table_optimizer"),
                                     ({"table_lr": 0.0}, "table_lr")])
def test_table_optimizer_params_are_checked(kw, word):
    with pytest.raises(ValueError, match=word):
        SoftmaxDNN(**kw)


def test_lazy_row_optimizer_leaves_untouched_rows():
    from mfsoftmax.models.softmax.optim import LazyRowOptimizer

    w = torch.nn.Parameter(torch.ones(4, 2))
    opt = LazyRowOptimizer([w], "adam", lr=0.1, weight_decay=0.5)
    torch.nn.functional.embedding(torch.tensor([1]), w, sparse=True).sum().backward()
    opt.step()
    assert torch.equal(w.detach()[[0, 2, 3]], torch.ones(3, 2))
    assert (w.detach()[1] < 1).all()


def zipf_data(n_users=150, n_items=30, per_user=8, seed=0):
    """Items drawn with probability ~ 1 / (rank + 1), no features: popularity is the only signal."""
    from mfsoftmax.datasets import from_coo

    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False, p=p / p.sum()) for _ in range(n_users)])
    users = np.repeat(np.arange(n_users), per_user)
    return from_coo("zipf", users, items, n_users, n_items)


@pytest.mark.parametrize("loss", ["full", "in-batch", "sampled-uniform"])
def test_item_bias_learns_popularity(loss):
    from scipy.stats import spearmanr

    data = zipf_data()
    model = SoftmaxDNN(loss=loss, item_bias=True, **dict(SMALL, epochs=6)).fit(data)
    b = model.item_biases()
    assert spearmanr(b, data.item_popularity()).statistic > 0.6  # bias starts at 0
    q = Queries(np.arange(4), data.matrix[:4])
    want = model.query_embeddings(q) @ model.item_embeddings().T + b[None, :]
    np.testing.assert_allclose(model.score(q), want, rtol=1e-4, atol=1e-5)
    off = SoftmaxDNN(loss=loss, item_bias=False, **dict(SMALL, epochs=1)).fit(data)
    assert not off.item_biases().any()
    assert off.net.item.bias is None and "item.bias.weight" in model.net.state_dict()


@pytest.mark.parametrize("buckets", [None, 7])
def test_log_popularity_bias_init(buckets):
    """b starts at centred log(1 + count) (mean over the items sharing a hashed row)."""
    data = zipf_data()
    model = SoftmaxDNN(loss="in-batch", item_bias=True, bias_init="log-popularity",
                       hash_buckets=buckets, **dict(SMALL, epochs=1))
    model._build(data.n_users, data.n_items, [], [])
    pop = data.item_popularity().astype(np.float64)
    model._init_bias(pop)
    want = np.log1p(pop) - np.log1p(pop).mean()
    got = model.net.item.bias.weight.detach().numpy()[:, 0]
    if buckets is None:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    else:
        rows = ((np.arange(data.n_items) * 2654435761 + 3) % buckets)
        for r in range(buckets):
            if (rows == r).any():
                assert got[r] == pytest.approx(want[rows == r].mean(), abs=1e-5)
    with pytest.raises(ValueError, match="bias_init"):
        SoftmaxDNN(bias_init="ones")


def test_dense_bags_match_bag_pooling(split):
    from mfsoftmax.models.softmax.bags import dense_bags as _dense_bags
    from mfsoftmax.models.softmax.towers import pool_dense

    m = split.train.matrix
    lens = np.diff(m.indptr).astype(np.int64)
    rows = np.repeat(np.arange(m.shape[0]), lens)
    A = torch.as_tensor(m.toarray() > 0, dtype=torch.float32)
    inv_len = torch.as_tensor(1.0 / np.maximum(lens - 1, 1), dtype=torch.float32)
    ex = np.array([0, 5, 17, 40, m.nnz - 1, 3])  # examples 0, 3, 5: the same user
    u, pos = rows[ex], m.indices[ex].astype(np.int64)
    keep = np.array([True, True, False, True, True, True])
    flat, offsets, weights = _bags(m.indices.astype(np.int64), m.indptr[:-1][u].astype(np.int64),
                                   np.where(keep, lens[u], 0), ex - m.indptr[u], None)
    W = torch.randn(m.shape[1], 4, generator=torch.Generator().manual_seed(0))
    bag = torch.nn.functional.embedding_bag(torch.as_tensor(flat), W, torch.as_tensor(offsets), mode="sum",
                                            per_sample_weights=torch.as_tensor(weights))
    bags = _dense_bags(A, inv_len, torch.as_tensor(u), torch.as_tensor(pos), keep)
    assert bags.rows.shape == (len(np.unique(u)), m.shape[1])  # one row per distinct user
    dense = pool_dense(bags, W)
    np.testing.assert_allclose(dense.numpy(), bag.numpy(), rtol=1e-5, atol=1e-6)
    assert not dense[2].any()


@pytest.mark.parametrize("loss", ["full", "sampled-uniform"])
def test_history_dropout_is_seeded_and_serves_new_users(data, split, loss):
    kw = dict(SMALL, epochs=8)
    a = SoftmaxDNN(loss=loss, history_dropout=0.3, **kw).fit(split.train)
    b = SoftmaxDNN(loss=loss, history_dropout=0.3, **kw).fit(split.train)
    c = SoftmaxDNN(loss=loss, history_dropout=0.0, **kw).fit(split.train)
    np.testing.assert_array_equal(a.item_embeddings(), b.item_embeddings())
    assert not np.allclose(a.item_embeddings(), c.item_embeddings())
    users = np.arange(data.n_users)
    empty = sp.csr_matrix((len(users), data.n_items), dtype=np.float32)
    ids, _ = a.recommend(Queries(users, empty, known=False), k=3)
    assert (data.item_groups[ids] == data.user_groups[users][:, None]).mean() >= 0.9


def test_history_dropout_range():
    with pytest.raises(ValueError, match="history_dropout"):
        SoftmaxDNN(history_dropout=1.0)


def test_cold_items_get_mean_bias(data):
    cold = np.r_[0:3, 12:15]
    train = data.select(~np.isin(data.matrix.indices, cold))
    model = SoftmaxDNN(loss="full", item_tower="replace", item_bias=True, **dict(SMALL, epochs=3)).fit(train)
    q = Queries(np.arange(4), train.matrix[:4], known=True)
    with torch.inference_mode():
        t = model.net.item.tower({k: v[torch.as_tensor(cold)] for k, v in model._if.items()}).numpy()
    warm = np.setdiff1d(np.arange(data.n_items), cold)
    want = model.query_embeddings(q) @ t.T + model.item_biases()[warm].mean()
    np.testing.assert_allclose(model.item_cold_scores(q, cold), want, rtol=1e-4, atol=1e-5)


def test_pool_unique_matches_sparse_embedding_bag():
    """The training pool (distinct rows gathered once, bagged with a dense backward) gives the
    same bags as ``EmbeddingBag(sparse=True)`` and the same gradient, summed per distinct row:
    one gradient row per distinct table row, sorted, which the optimizer reads as it is."""
    from mfsoftmax.models.softmax.optim import rows_of
    from mfsoftmax.models.softmax.towers import pool_unique

    g = torch.Generator().manual_seed(0)
    W0 = torch.randn(50, 4, generator=g, dtype=torch.float64)
    rows = torch.tensor([7, 3, 7, 49, 0, 3, 3, 12])  # repeats within and across bags
    offsets = torch.tensor([0, 3, 3, 6])  # an empty bag too
    weights = torch.rand(8, generator=g, dtype=torch.float64)
    G = torch.randn(4, 4, generator=g, dtype=torch.float64)
    ref_w, new_w = torch.nn.Parameter(W0.clone()), torch.nn.Parameter(W0.clone())
    ref = torch.nn.functional.embedding_bag(rows, ref_w, offsets, mode="sum",
                                            per_sample_weights=weights, sparse=True)
    new = pool_unique(new_w, rows, offsets, weights)
    np.testing.assert_allclose(new.detach().numpy(), ref.detach().numpy(), rtol=1e-12)
    ref.backward(G)
    new.backward(G)
    assert new_w.grad.is_sparse and new_w.grad._nnz() == 5  # distinct rows 0, 3, 7, 12, 49
    idx, vals = rows_of(new_w.grad)
    assert idx.tolist() == [0, 3, 7, 12, 49]
    want = ref_w.grad.coalesce()
    assert torch.equal(idx, want.indices()[0])
    np.testing.assert_allclose(vals.numpy(), want.values().numpy(), rtol=1e-12)
    # a gradient with repeated or unsorted rows is still coalesced
    idx2, vals2 = rows_of(ref_w.grad)
    assert torch.equal(idx2, want.indices()[0])
    np.testing.assert_allclose(vals2.numpy(), want.values().numpy(), rtol=1e-12)


@pytest.mark.parametrize("wide", [False, True])
def test_pool_unique_only_from_its_min_cells(wide, monkeypatch):
    """Training pools through ``pool_unique`` (one gradient row per distinct table row) only
    when the bag's per-entry gradient would reach ``POOL_UNIQUE_MIN_CELLS`` floats; smaller
    batches keep the plain sparse bag (one row per bag entry), where the extra unique pass
    costs more than it saves. Either way the optimizer reads the same summed gradient."""
    from mfsoftmax.models.softmax import towers
    from mfsoftmax.models.softmax.optim import rows_of

    dim = 4
    rows = torch.tensor([7, 3, 7, 49, 0, 3, 3, 12])
    monkeypatch.setattr(towers, "POOL_UNIQUE_MIN_CELLS", len(rows) * dim + (0 if wide else 1))
    torch.manual_seed(0)
    tower = towers.QueryTower(50, dim, (), False, [], True, None)
    offsets, weights = torch.tensor([0, 3, 3, 6]), torch.rand(8)
    pooled = tower.pool((rows, offsets, weights))
    G = torch.randn(4, dim)
    pooled.backward(G)
    grad = tower.history.weight.grad
    assert grad._nnz() == (5 if wide else 8)  # distinct rows 0, 3, 7, 12, 49 vs bag entries
    W = tower.history.weight.detach().clone().requires_grad_()
    ref = torch.nn.functional.embedding_bag(rows, W, offsets, mode="sum", per_sample_weights=weights)
    np.testing.assert_allclose(pooled.detach().numpy(), ref.detach().numpy(), rtol=1e-6)
    ref.backward(G)
    idx, vals = rows_of(grad)
    assert idx.tolist() == [0, 3, 7, 12, 49]
    np.testing.assert_allclose(vals.numpy(), W.grad[idx].numpy(), rtol=1e-5, atol=1e-6)


def test_pool_serves_through_the_embedding_bag_without_grad():
    """At serving (no autograd) the tower pools with the plain bag: same bags as training."""
    model = SoftmaxDNN(loss="in-batch", epochs=1, dim=4, hidden=(), seed=0).fit(checkerboard())
    tower = model.net.query
    rows, offsets = torch.tensor([1, 2, 2, 5]), torch.tensor([0, 1])
    weights = torch.tensor([1.0, 0.5, 0.25, 0.25])
    with torch.no_grad():
        served = tower.pool((rows, offsets, weights))
    trained = tower.pool((rows, offsets, weights))
    assert trained.requires_grad and not served.requires_grad
    np.testing.assert_allclose(served.numpy(), trained.detach().numpy(), rtol=1e-6)


def test_bag_inputs_cut_long_rows_before_expanding_gives_the_same_bags():
    """bag_inputs cuts rows to max_len + 1 positions before expanding them; the bags (ids,
    offsets, weights) equal those of expanding every whole row and then truncating."""
    from mfsoftmax.models.softmax.bags import bag_inputs

    def whole_rows(items, starts, lens, skip, max_len):
        B = len(starts)
        seg = np.repeat(np.arange(B), lens)
        local = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
        flat = items[np.repeat(starts, lens) + local]
        keep, rank = np.ones(len(flat), dtype=bool), local
        if skip is not None:
            keep = local != skip[seg]
            rank = local - (local > skip[seg])
        if max_len is not None:
            keep &= rank < max_len
        flat, seg = flat[keep], seg[keep]
        counts = np.bincount(seg, minlength=B)
        offsets = np.concatenate([[0], np.cumsum(counts[:-1])]).astype(np.int64)
        return flat.astype(np.int64), offsets, (1.0 / np.maximum(counts, 1))[seg].astype(np.float32)

    rng = np.random.default_rng(0)
    for t in range(200):
        row_len = rng.integers(0, 80, rng.integers(1, 40))
        starts_all = np.concatenate([[0], np.cumsum(row_len)[:-1]])
        items = rng.integers(0, 1000, row_len.sum() + 1)
        u = rng.integers(0, len(row_len), rng.integers(1, 60))
        lens = np.where(rng.random(len(u)) < 0.2, 0, row_len[u])  # some bags emptied (dropout)
        skip = np.array([rng.integers(0, max(n, 1)) for n in row_len[u]]) if t % 5 else None
        max_len = [None, 1, 5, 30][t % 4]
        got = bag_inputs(items, starts_all[u], lens, skip, max_len)
        want = whole_rows(items, starts_all[u], lens, skip, max_len)
        for g, w in zip(got, want, strict=True):
            assert g.dtype == w.dtype and np.array_equal(g, w), t
