"""SoftmaxDNN ``example_weight``: examples weighted by a function of their interaction count."""

import numpy as np
import pytest
import torch

from mfsoftmax.datasets import from_coo
from mfsoftmax.models import Queries, SoftmaxDNN
from mfsoftmax.models.softmax import losses as L
from mfsoftmax.models.softmax.batches import example_weights
from mfsoftmax.models.wals import WALS
from tests.contract import checkerboard
from tests.test_softmax_dnn import SMALL

HEAVY = np.array([14, 17, 20])  # items of the other group that user 0 played a lot
USER = 0


def counts_data(heavy_count: float = 500.0):
    """The checkerboard with play counts: every interaction 1, except that user 0 (group 0)
    also played three items of group 1 ``heavy_count`` times each."""
    base = checkerboard()
    m = base.matrix.tocoo()
    users = np.r_[m.row, np.full(len(HEAVY), USER)]
    items = np.r_[m.col, HEAVY]
    values = np.r_[m.data, np.full(len(HEAVY), heavy_count, dtype=np.float32)]
    assert base.item_groups[HEAVY].tolist() == [1, 1, 1] and base.user_groups[USER] == 0
    return from_coo("counts", users, items, base.n_users, base.n_items, values=values,
                    user_features=base.user_features, item_features=base.item_features,
                    user_groups=base.user_groups, item_groups=base.item_groups)


def heavy_rank(model, data) -> float:
    """Mean rank (0 = top) of the heavy items in user 0's scores over all items."""
    s = model.score(Queries(np.array([USER]), data.matrix[USER]))[0]
    order = np.argsort(-s, kind="stable")
    return float(np.mean([np.flatnonzero(order == j)[0] for j in HEAVY]))


KW = dict(SMALL, epochs=12, patience=100)


@pytest.fixture(scope="module")
def data():
    return counts_data()


@pytest.mark.parametrize("loss", ["full", "sampled-uniform", "in-batch"])
def test_weighted_model_ranks_heavy_items_higher(data, loss):
    plain = SoftmaxDNN(loss=loss, **KW).fit(data)
    r_plain = heavy_rank(plain, data)
    assert r_plain > 10  # unweighted: three plays among many, out-voted by user 0's group
    # log: weight ratio of 500 plays to 1 is (1 + 50 log 11) / (1 + 50 log 1.02) ~ 61
    # (measured: sampled-uniform needs a ratio well above the ~4 of alpha = eps = 1)
    for kind, alpha, eps in (("linear", 1.0, 1.0), ("log", 50.0, 50.0)):
        weighted = SoftmaxDNN(loss=loss, example_weight=kind, alpha=alpha, eps=eps, **KW).fit(data)
        r_w = heavy_rank(weighted, data)
        assert r_w + 5 < r_plain, (loss, kind, r_w, r_plain)  # measured: <= 3 against >= 13


@pytest.mark.parametrize("loss", ["full", "sampled-popularity", "in-batch", "hard-negatives",
                                  "positives-only"])
def test_none_is_the_unweighted_training_bit_for_bit(data, loss):
    kw = dict(KW, epochs=3, hard_pool=12, item_bias=True)
    absent = SoftmaxDNN(loss=loss, **kw).fit(data)
    none = SoftmaxDNN(loss=loss, example_weight="none", alpha=7.0, eps=3.0, **kw).fit(data)
    np.testing.assert_array_equal(absent.item_embeddings(), none.item_embeddings())
    np.testing.assert_array_equal(absent.item_biases(), none.item_biases())
    assert [h["loss"] for h in absent.history] == [h["loss"] for h in none.history]


def test_constant_weights_are_the_mean(data):
    """Every count equal: the weighted mean is the mean (up to float rounding)."""
    binary = checkerboard()
    a = SoftmaxDNN(loss="sampled-uniform", **dict(KW, epochs=3)).fit(binary)
    b = SoftmaxDNN(loss="sampled-uniform", example_weight="linear", alpha=5.0, **dict(KW, epochs=3)).fit(binary)
    np.testing.assert_allclose(a.item_embeddings(), b.item_embeddings(), rtol=1e-4, atol=1e-5)


def test_weights_match_wals():
    c = np.array([0.0, 1.0, 3.0, 250.0], dtype=np.float32)
    for kind in ("linear", "log"):
        wals = WALS(weight=kind, alpha=0.7, eps=2.0).weights_of(c)
        np.testing.assert_array_equal(example_weights(c, kind, 0.7, 2.0), wals)
    assert example_weights(c, "none", 0.7, 2.0) is None


@pytest.mark.parametrize("name", ["full", "sampled", "in-batch", "hard", "positives-only"])
def test_weighted_losses_are_weighted_sums_of_rows(name):
    """Each loss with ``w`` equals sum_i w_i * (the loss of row i alone), gradients included."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    V = torch.randn(7, 3, generator=g, dtype=torch.float64, requires_grad=True)
    pos = torch.tensor([0, 2, 6, 2, 4])
    neg = torch.tensor([1, 3, 5])
    w = torch.tensor([0.1, 0.4, 0.2, 0.05, 0.25], dtype=torch.float64)
    lmq = torch.zeros(7, dtype=torch.float64)

    def loss(rows, weights):
        if name == "full":
            return L.full_softmax_loss(q[rows], V, pos[rows], w=weights)
        if name == "sampled":
            return L.sampled_softmax_loss(q[rows], V[pos[rows]], V[neg], pos[rows], neg,
                                          lmq[pos[rows]], lmq[neg], w=weights)
        if name == "in-batch":  # rows scored against the whole batch (offset = the row)
            r = rows[0] if len(rows) == 1 else 0
            return L.in_batch_loss(q[rows], V[pos], pos, lmq[pos], w=weights, offset=int(r))
        if name == "hard":
            pool = torch.arange(7)
            return L.hard_negative_loss(q[rows], V[pos[rows]], q[rows] @ V.T, pos[rows], pool, 3, w=weights)
        return L.positives_only_loss(q[rows], V[pos[rows]], w=weights)

    got = loss(list(range(5)), w)
    gq, gV = torch.autograd.grad(got, (q, V))
    want = sum(w[i] * loss([i], None) for i in range(5))
    wq, wV = torch.autograd.grad(want, (q, V))
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    np.testing.assert_allclose(gq.numpy(), wq.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gV.numpy(), wV.numpy(), rtol=1e-10, atol=1e-12)
    mean = loss(list(range(5)), torch.full((5,), 0.2, dtype=torch.float64))
    assert mean.item() == pytest.approx(loss(list(range(5)), None).item(), rel=1e-12)


@pytest.mark.parametrize("kw,word", [({"example_weight": "sqrt"}, "example_weight"),
                                     ({"alpha": -1.0}, "alpha"), ({"eps": 0.0}, "eps")])
def test_weight_params_are_checked(kw, word):
    with pytest.raises(ValueError, match=word):
        SoftmaxDNN(**kw)


def test_weight_params_round_trip(data, tmp_path):
    model = SoftmaxDNN(loss="in-batch", example_weight="log", alpha=2.0, eps=0.5,
                       **dict(KW, epochs=1)).fit(data)
    model.save(tmp_path / "m")
    again = SoftmaxDNN.load(tmp_path / "m")
    assert again.get_params() == model.get_params()
    assert (again.example_weight, again.alpha, again.eps) == ("log", 2.0, 0.5)
