"""pytest-benchmark: the evaluation harness against ``implicit.evaluation.ranking_metrics_at_k``.

All 6000 users of a 6000 x 4000 problem at d = 64 (random factors; ~5% of the items as each
user's history, 1-9 targets), K = 10, one thread. Both sides rank the same scores U V^T with the
history excluded: ours through ``evaluate`` on a model whose ``score`` is ``U[users] @ V.T``;
implicit's through an ``implicit.cpu.als.AlternatingLeastSquares`` holding the same factors
(``ranking_metrics_at_k`` calls ``model.recommend(users, train[users], N=K)``, whose default
``filter_already_liked_items=True`` drops the training items). The last case checks the speed
target (ours under 1 s and no slower than implicit, best of the rounds) and stores the ratio in
``extra_info``.

Run: ``pytest bench/test_bench_harness.py --benchmark-enable``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from mfsoftmax.datasets import EvalSet
from mfsoftmax.evaluation import DEFAULT_KS, evaluate
from mfsoftmax.ranking import mask_history, topk

N_USERS, N_ITEMS, DIM, K = 6000, 4000, 64, 10
HISTORY_SHARE = 0.05
BEST: dict[str, float] = {}  # best round per side, for the ratio


class FactorModel:
    """The tiniest MF model: score = U[users] @ V.T."""

    def __init__(self, U, V):
        self.U, self.V = U, V

    def score(self, queries):
        return self.U[queries.users] @ self.V.T


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(0)
    U = rng.standard_normal((N_USERS, DIM)).astype(np.float32) / np.sqrt(DIM)
    V = rng.standard_normal((N_ITEMS, DIM)).astype(np.float32)
    n_hist = int(HISTORY_SHARE * N_ITEMS)
    picks = np.argpartition(rng.random((N_USERS, N_ITEMS)), n_hist + 9, axis=1)[:, :n_hist + 9]
    n_targets = rng.integers(1, 10, N_USERS)
    rows = np.repeat(np.arange(N_USERS), n_hist)
    history = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, picks[:, :n_hist].ravel())),
                            shape=(N_USERS, N_ITEMS))
    keep = np.arange(9)[None, :] < n_targets[:, None]
    trows = np.repeat(np.arange(N_USERS), n_targets)
    target = sp.csr_matrix((np.ones(len(trows), np.float32), (trows, picks[:, n_hist:][keep])),
                           shape=(N_USERS, N_ITEMS))
    evalset = EvalSet(np.arange(N_USERS), history, target, known_users=True)
    return U, V, evalset


@pytest.fixture(scope="module")
def implicit_model(case):
    from implicit.cpu.als import AlternatingLeastSquares

    U, V, _ = case
    model = AlternatingLeastSquares(factors=DIM, num_threads=1, random_state=0)
    model.user_factors, model.item_factors = U, V
    return model


def _best(benchmark):
    return None if benchmark.disabled else float(benchmark.stats.stats.min)


def test_implicit_recommend_excludes_history_and_agrees(case, implicit_model, one_thread):
    """What implicit's evaluation calls: ``recommend`` with the training rows; it must drop
    them and rank like our top-k."""
    U, V, ev = case
    users = np.arange(500)
    ids, _ = implicit_model.recommend(users, ev.history[users], N=K)
    assert not ev.history[users].multiply(_indicator(ids, N_ITEMS)).nnz
    s = U[users] @ V.T
    ours, _ = topk(mask_history(s, ev.history[users]), K)
    assert (ours == ids).mean() > 0.999  # float rounding of near-ties may differ


def _indicator(ids, n):
    rows = np.repeat(np.arange(len(ids)), ids.shape[1])
    return sp.csr_matrix((np.ones(ids.size), (rows, ids.ravel())), shape=(len(ids), n))


def test_harness_ours(benchmark, case, one_thread):
    U, V, ev = case
    benchmark.group = "harness"
    benchmark.extra_info.update(users=N_USERS, items=N_ITEMS, dim=DIM, ks=[K])
    m = benchmark.pedantic(lambda: evaluate(FactorModel(U, V), ev, ks=(K,)),
                           rounds=7, warmup_rounds=1)
    assert m["n_users"] == N_USERS and 0 <= m[f"ndcg@{K}"] <= 1
    BEST["ours"] = _best(benchmark)


def test_harness_ours_all_ks(benchmark, case, one_thread):
    """For information: the default cut-offs (10, 20, 50, 100) and every metric."""
    U, V, ev = case
    benchmark.group = "harness"
    benchmark.extra_info.update(users=N_USERS, items=N_ITEMS, dim=DIM, ks=list(DEFAULT_KS))
    m = benchmark.pedantic(lambda: evaluate(FactorModel(U, V), ev, ks=DEFAULT_KS),
                           rounds=5, warmup_rounds=1)
    assert m["n_users"] == N_USERS


def test_harness_implicit(benchmark, case, implicit_model, one_thread):
    from implicit.evaluation import ranking_metrics_at_k

    U, V, ev = case
    benchmark.group = "harness"
    benchmark.extra_info.update(users=N_USERS, items=N_ITEMS, dim=DIM, ks=[K])
    theirs = benchmark.pedantic(
        lambda: ranking_metrics_at_k(implicit_model, ev.history, ev.target, K=K,
                                     show_progress=False, num_threads=1),
        rounds=7, warmup_rounds=1)
    ours = evaluate(FactorModel(U, V), ev, ks=(K,))
    assert ours[f"ndcg@{K}"] == pytest.approx(theirs["ndcg"], abs=1e-4)
    assert ours[f"map@{K}"] == pytest.approx(theirs["map"], abs=1e-4)
    BEST["implicit"] = _best(benchmark)
    if BEST.get("ours") is not None and BEST["implicit"] is not None:
        ratio = BEST["ours"] / BEST["implicit"]
        benchmark.extra_info["ours_over_implicit"] = round(ratio, 3)
        print(f"\nharness best round: ours {BEST['ours']:.3f} s, implicit "
              f"{BEST['implicit']:.3f} s, ratio ours/implicit {ratio:.2f}")
        assert BEST["ours"] < 1.0
        assert ratio <= 1.0
