"""The evaluation harness: hand-computed cases, properties, and agreement with a slow reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfsoftmax.datasets import EvalSet
from mfsoftmax.evaluation import evaluate, full_rank_mrr, rank_metrics
from mfsoftmax.ranking import mask_history, topk
from tests.reference_metrics import reference_metrics

L3 = 1 / math.log2(3)  # discount of rank 2
L6 = 1 / math.log2(6)  # discount of rank 5


class ScoreModel:
    """Scores are a fixed users x items matrix, looked up by user index."""

    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=np.float32)

    def score(self, queries):
        return self.scores[queries.users]


def csr_rows(rows, n_items) -> sp.csr_matrix:
    """CSR (len(rows) x n_items) with ones at each row's item list."""
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sp.csr_matrix((np.ones(len(c), np.float32), (r, c)), shape=(len(rows), n_items))


def make_evalset(n_items, histories, targets, candidates=None) -> EvalSet:
    n = len(targets)
    return EvalSet(np.arange(n), csr_rows(histories, n_items), csr_rows(targets, n_items),
                   known_users=True, candidates=candidates)


def run(scores, histories, targets, ks, candidates=None, popularity=None, **kw):
    scores = np.asarray(scores, dtype=np.float32)
    ev = make_evalset(scores.shape[1], histories, targets, candidates)
    return evaluate(ScoreModel(scores), ev, ks=ks, item_popularity=popularity, **kw)


DESC6 = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]  # item i ranked i-th
POP6 = np.array([10, 20, 30, 40, 50, 60], dtype=np.float64)


# ----------------------------------------------------------------------- hand-computed cases
def test_single_user_with_history_exclusion():
    # history {0} is excluded: ranking 1, 2, 3, 4, 5; targets {2, 5} at ranks 2 and 5
    m = run([DESC6], [[0]], [[2, 5]], ks=(1, 2, 5, 10), popularity=POP6)
    assert m["n_users"] == 1
    expect = {
        "recall@1": 0, "precision@1": 0, "ndcg@1": 0, "hr@1": 0, "map@1": 0,
        "recall@2": 1 / 2, "precision@2": 1 / 2, "ndcg@2": L3 / (1 + L3), "hr@2": 1,
        "map@2": (1 / 2) / 2,
        "recall@5": 1, "precision@5": 2 / 5, "ndcg@5": (L3 + L6) / (1 + L3), "hr@5": 1,
        "map@5": (1 / 2 + 2 / 5) / 2,
        # k = 10 > 5 rankable items: same hits, precision still divides by k
        "recall@10": 1, "precision@10": 2 / 10, "ndcg@10": (L3 + L6) / (1 + L3), "hr@10": 1,
        "map@10": (1 / 2 + 2 / 5) / 2,
        "mrr": 1 / 2,  # only item 1 outranks the best target (item 0 is history)
        "coverage@1": 1 / 6, "coverage@2": 2 / 6, "coverage@5": 5 / 6, "coverage@10": 5 / 6,
        "avg_pop@1": 20, "avg_pop@2": 25, "avg_pop@5": 40, "avg_pop@10": 40,
    }
    for key, val in expect.items():
        assert m[key] == pytest.approx(val, abs=1e-12), key


def test_recall_normalised_by_min_k_and_target_size():
    # |T| = 3, k = 2, both top items are targets: recall 1 (not 2/3), ndcg 1, map 1
    m = run([DESC6], [[]], [[0, 1, 4]], ks=(2, 6))
    assert m["recall@2"] == pytest.approx(1.0)
    assert m["precision@2"] == pytest.approx(1.0)
    assert m["ndcg@2"] == pytest.approx(1.0)
    assert m["map@2"] == pytest.approx(1.0)
    # k = 6: hits at ranks 1, 2, 5; IDCG over min(6, 3) = 3 positions
    assert m["recall@6"] == pytest.approx(1.0)
    assert m["precision@6"] == pytest.approx(3 / 6)
    assert m["ndcg@6"] == pytest.approx((1 + L3 + L6) / (1 + L3 + 0.5))
    assert m["map@6"] == pytest.approx((1 + 1 + 3 / 5) / 3)
    assert m["mrr"] == pytest.approx(1.0)


def test_users_with_empty_targets_are_ignored():
    rev = DESC6[::-1]  # item 5 first
    scores = [DESC6, rev, [0.1, 0.2, 0.3, 0.9, 0.5, 0.6]]  # user 2: no target, would pick item 3
    m = run(scores, [[0], [], []], [[2, 5], [5], []], ks=(1,), popularity=POP6)
    assert m["n_users"] == 2
    assert m["recall@1"] == pytest.approx((0 + 1) / 2)
    assert m["precision@1"] == pytest.approx(1 / 2)
    assert m["ndcg@1"] == pytest.approx(1 / 2)
    assert m["map@1"] == pytest.approx(1 / 2)
    assert m["mrr"] == pytest.approx((1 / 2 + 1) / 2)
    assert m["coverage@1"] == pytest.approx(2 / 6)  # items 1 and 5; user 2's item 3 not counted
    assert m["avg_pop@1"] == pytest.approx((20 + 60) / 2)
    _, per = run(scores, [[0], [], []], [[2, 5], [5], []], ks=(1,), per_user=True)
    np.testing.assert_allclose(per["recall@1"], [0, 1])


def test_mrr_ties_count_in_the_targets_favour():
    # target item 2 ties with items 1 and 3; only item 0 is strictly higher: rank 2
    m = run([[0.9, 0.5, 0.5, 0.5, 0.1]], [[]], [[2]], ks=(1,))
    assert m["mrr"] == pytest.approx(1 / 2)
    rr = full_rank_mrr(np.array([[0.9, 0.5, 0.5, 0.5, 0.1]], np.float32), csr_rows([[2]], 5))
    assert rr[0] == pytest.approx(1 / 2)


def test_candidates_restrict_ranking_and_coverage():
    # candidates {1, 3, 5}: ranking 1, 3, 5; target 3 at rank 2
    m = run([DESC6], [[]], [[3]], ks=(1, 2, 5), candidates=np.array([5, 1, 3]), popularity=POP6)
    assert m["hr@1"] == 0 and m["hr@2"] == 1
    assert m["ndcg@2"] == pytest.approx(L3)
    assert m["precision@5"] == pytest.approx(1 / 5)
    assert m["mrr"] == pytest.approx(1 / 2)  # items 0 and 2 score higher but are not candidates
    assert m["coverage@1"] == pytest.approx(1 / 3)  # share of the candidates, not the catalogue
    assert m["coverage@5"] == pytest.approx(3 / 3)
    assert m["avg_pop@5"] == pytest.approx((20 + 40 + 60) / 3)
    # a candidate in the history is excluded too: ranking 3, 5
    m = run([DESC6], [[1]], [[3]], ks=(1,), candidates=np.array([1, 3, 5]))
    assert m["recall@1"] == 1 and m["mrr"] == 1
    # a target outside the candidates can never be found but still counts in |T|
    m = run([DESC6], [[]], [[0, 3]], ks=(2,), candidates=np.array([1, 3, 5]))
    assert m["recall@2"] == pytest.approx(1 / 2)
    assert m["ndcg@2"] == pytest.approx(L3 / (1 + L3))
    assert m["mrr"] == pytest.approx(1 / 2)
    # k = 5 > 2 candidates, |T| = 3: hit at rank 2; recall and IDCG still over min(k, |T|) = 3
    m = run([DESC6], [[]], [[0, 3, 5]], ks=(5,), candidates=np.array([1, 3]))
    assert m["recall@5"] == pytest.approx(1 / 3)
    assert m["ndcg@5"] == pytest.approx(L3 / (1 + L3 + 0.5))
    assert m["map@5"] == pytest.approx((1 / 2) / 3)


def test_targets_all_excluded_score_zero():
    m = run([DESC6], [[2]], [[2]], ks=(3,))
    assert m["n_users"] == 1
    assert m["recall@3"] == 0 and m["ndcg@3"] == 0 and m["mrr"] == 0


def test_k_larger_than_catalogue():
    m = run([[0.3, 0.2, 0.1]], [[]], [[2]], ks=(1, 10))
    assert m["recall@10"] == 1 and m["hr@10"] == 1
    assert m["precision@10"] == pytest.approx(1 / 10)
    assert m["ndcg@10"] == pytest.approx(0.5)  # rank 3: 1 / log2(4)
    assert m["map@10"] == pytest.approx(1 / 3)
    assert m["coverage@10"] == 1


def test_infinite_scores():
    # +inf is simply the best score; -inf is unrankable, like a history item
    m = run([[np.inf, 0.5, 0.1]], [[]], [[0]], ks=(1,))
    assert m["hr@1"] == 1 and m["mrr"] == 1
    m = run([[-np.inf, 0.5, 0.1]], [[]], [[0]], ks=(3,))
    assert m["hr@3"] == 0 and m["mrr"] == 0
    assert m["coverage@3"] == pytest.approx(2 / 3)


def test_no_user_with_targets_gives_nan():
    m = run([DESC6, DESC6], [[], []], [[], []], ks=(5,))
    assert m["n_users"] == 0
    assert math.isnan(m["recall@5"]) and math.isnan(m["mrr"])
    assert m["coverage@5"] == 0
    empty = EvalSet(np.zeros(0, np.int64), sp.csr_matrix((0, 6), dtype=np.float32),
                    sp.csr_matrix((0, 6), dtype=np.float32), known_users=True)
    m = evaluate(ScoreModel(np.zeros((0, 6))), empty, ks=(5,))
    assert m["n_users"] == 0 and math.isnan(m["ndcg@5"]) and math.isnan(m["mrr"])


def test_bad_input_raises():
    with pytest.raises(ValueError, match="ks"):
        run([DESC6], [[]], [[1]], ks=(0,))
    with pytest.raises(ValueError, match="NaN"):
        run([[0.1, np.nan, 0.3, 0.0, 0.0, 0.0]], [[]], [[1]], ks=(2,))
    with pytest.raises(ValueError, match="item_popularity"):
        run([DESC6], [[]], [[1]], ks=(2,), popularity=np.ones(5))
    ev = make_evalset(6, [[]], [[1]])
    with pytest.raises(ValueError, match="shape"):
        evaluate(ScoreModel(np.zeros((1, 5))), ev, ks=(2,))


def test_rank_metrics_empty_slots_never_hit():
    # item -1 marks an empty slot; id n-1 of the previous row must not be mistaken for a hit
    top = np.array([[3, -1], [0, 1]])
    target = csr_rows([[0], [3]], 4)
    out = rank_metrics(top, target, ks=(2,))
    np.testing.assert_allclose(out["recall@2"], [0, 0])
    out = rank_metrics(np.array([[2, -1]]), csr_rows([[2]], 4), ks=(1, 2))
    np.testing.assert_allclose(out["hr@1"], [1])
    np.testing.assert_allclose(out["precision@2"], [1 / 2])


# --------------------------------------------------------------------------- topk / masking
def _reference_topk(s, k):
    k = min(k, s.shape[1])
    return np.array([sorted(range(s.shape[1]), key=lambda j: (-row[j], j))[:k] for row in s],
                    dtype=np.int64).reshape(len(s), k)


@pytest.mark.parametrize("kind", ["distinct", "ties", "float64", "neginf", "int"])
def test_topk_matches_full_sort(kind):
    rng = np.random.default_rng(hash(kind) % 2**32)
    for _ in range(40):
        B, n, k = int(rng.integers(1, 5)), int(rng.integers(1, 400)), int(rng.integers(1, 70))
        if kind == "distinct":
            s = rng.standard_normal((B, n)).astype(np.float32)
        elif kind == "ties":
            s = rng.integers(0, 4, (B, n)).astype(np.float32)
        elif kind == "float64":
            s = rng.standard_normal((B, n))
        elif kind == "int":
            s = rng.integers(0, 3, (B, n))
        else:
            s = rng.standard_normal((B, n)).astype(np.float32)
            s[rng.random((B, n)) < rng.random()] = -np.inf
        ids, vals = topk(s, k)
        assert ids.dtype == np.int64 and ids.shape == (B, min(k, n))
        np.testing.assert_array_equal(ids, _reference_topk(s, k))
        np.testing.assert_array_equal(vals, np.take_along_axis(s, ids, axis=1))


def test_topk_edge_cases():
    s = np.zeros((3, 1000), np.float32)  # all ties: the exact fallback, lowest ids first
    ids, _ = topk(s, 5)
    np.testing.assert_array_equal(ids, np.tile(np.arange(5), (3, 1)))
    ids, vals = topk(np.ones((2, 4), np.float32), 0)
    assert ids.shape == (2, 0) and vals.shape == (2, 0)
    with pytest.raises(ValueError, match="NaN"):
        topk(np.full((2, 500), np.nan, np.float32), 3)


def test_topk_memory_layouts():
    rng = np.random.default_rng(3)
    s = rng.standard_normal((20, 3000)).astype(np.float32)
    expect = np.argsort(-s, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(topk(np.asfortranarray(s), 10)[0], expect)
    np.testing.assert_array_equal(topk(s[:, ::2], 7)[0],
                                  np.argsort(-s[:, ::2], axis=1, kind="stable")[:, :7])
    row = np.broadcast_to(s[0], (4, 3000))  # read-only, stride 0, as Popularity.score returns
    np.testing.assert_array_equal(topk(row, 10)[0], np.tile(expect[0], (4, 1)))


def test_mask_history_in_place():
    s = np.ones((2, 4), np.float32)
    out = mask_history(s, csr_rows([[1, 3], []], 4))
    assert out is s
    np.testing.assert_array_equal(np.isneginf(s), [[0, 1, 0, 1], [0, 0, 0, 0]])


# ------------------------------------------------------------------- random data, reference
case_args = st.tuples(st.integers(0, 2**31 - 1), st.integers(1, 12), st.integers(1, 25))


def random_case(seed, n_users, n_items, with_candidates=False, neg_inf=False):
    """Scores without ties (a random permutation of distinct values), random histories and
    targets (disjoint), some users without history or target."""
    rng = np.random.default_rng(seed)
    scores = rng.permutation(n_users * n_items).reshape(n_users, n_items).astype(np.float32)
    scores = scores / (n_users * n_items) - 0.5
    if neg_inf:
        scores[rng.random(scores.shape) < 0.1] = -np.inf
    hists, targs = [], []
    for _ in range(n_users):
        perm = rng.permutation(n_items)
        nh = int(rng.integers(0, n_items // 2 + 1))
        nt = int(rng.integers(0, min(6, n_items - nh) + 1))
        hists.append(sorted(perm[:nh].tolist()))
        targs.append(sorted(perm[nh:nh + nt].tolist()))
    cand = None
    if with_candidates:
        cand = rng.choice(n_items, size=int(rng.integers(1, n_items + 1)), replace=False)
    pop = rng.integers(0, 100, n_items).astype(np.float64)
    return scores, hists, targs, cand, pop


def assert_matches_reference(got, ref):
    assert got["n_users"] == ref["n_users"]
    for key, val in ref.items():
        if isinstance(val, float) and math.isnan(val):
            assert math.isnan(got[key]), key
        else:
            assert got[key] == pytest.approx(val, abs=1e-9, rel=0), key


@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_reference(seed):
    ks = (1, 3, 10, 40)
    n_users, n_items = 25 + seed, 30 + 3 * seed
    scores, hists, targs, cand, pop = random_case(seed, n_users, n_items,
                                                  with_candidates=seed % 2 == 1, neg_inf=seed >= 4)
    got = run(scores, hists, targs, ks, candidates=cand, popularity=pop, max_batch_elems=7 * n_items)
    ref = reference_metrics(scores.astype(np.float64).tolist(), [set(h) for h in hists],
                            [set(t) for t in targs], ks, candidates=cand, popularity=pop.tolist())
    assert_matches_reference(got, ref)


@settings(max_examples=30, deadline=None)
@given(case=case_args, ks=st.lists(st.integers(1, 30), min_size=1, max_size=3),
       cand=st.booleans(), neg_inf=st.booleans())
def test_agrees_with_reference_property(case, ks, cand, neg_inf):
    scores, hists, targs, c, pop = random_case(*case, with_candidates=cand, neg_inf=neg_inf)
    got = run(scores, hists, targs, ks, candidates=c, popularity=pop)
    ref = reference_metrics(scores.astype(np.float64).tolist(), [set(h) for h in hists],
                            [set(t) for t in targs], ks, candidates=c, popularity=pop.tolist())
    assert_matches_reference(got, ref)


def test_agrees_with_implicit():
    """implicit's ranking_metrics_at_k is an independent implementation of ndcg@K and map@K
    (same definitions); its 'precision' is sum(hits) / sum(min(K, |T|))."""
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.evaluation import ranking_metrics_at_k
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(7)
    n_users, n_items, d, K = 80, 300, 8, 10
    U = rng.standard_normal((n_users, d)).astype(np.float32)
    V = rng.standard_normal((n_items, d)).astype(np.float32)
    _, hists, targs, _, _ = random_case(7, n_users, n_items)
    ev = make_evalset(n_items, hists, targs)
    with threadpool_limits(1):
        ours, per = evaluate(ScoreModel(U @ V.T), ev, ks=(K,), per_user=True)
        model = AlternatingLeastSquares(factors=d, num_threads=1, random_state=0)
        model.user_factors, model.item_factors = U, V
        theirs = ranking_metrics_at_k(model, ev.history, ev.target, K=K, show_progress=False)
    assert ours["ndcg@10"] == pytest.approx(theirs["ndcg"], abs=1e-9)
    assert ours["map@10"] == pytest.approx(theirs["map"], abs=1e-9)
    tsize = np.diff(ev.target.indptr)
    denom = np.minimum(K, tsize[tsize > 0])
    assert (per["recall@10"] * denom).sum() / denom.sum() == pytest.approx(theirs["precision"])


# -------------------------------------------------------------------------------- properties
ks_strategy = st.lists(st.integers(1, 30), min_size=1, max_size=3)
hyp = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

UNIT_KEYS = ("recall", "precision", "ndcg", "hr", "map", "coverage")


@hyp
@given(case=case_args, ks=ks_strategy, cand=st.booleans())
def test_metrics_within_unit_interval(case, ks, cand):
    scores, hists, targs, c, pop = random_case(*case, with_candidates=cand, neg_inf=True)
    m = run(scores, hists, targs, ks, candidates=c, popularity=pop)
    for key, val in m.items():
        if key.split("@")[0] in UNIT_KEYS + ("mrr",) and not math.isnan(val):
            assert 0.0 <= val <= 1.0 + 1e-12, key


@hyp
@given(case=case_args, ks=ks_strategy)
def test_perfect_ranking(case, ks):
    seed, n_users, n_items = case
    rng = np.random.default_rng(seed)
    targs = [sorted(rng.choice(n_items, int(rng.integers(1, n_items + 1)), replace=False).tolist())
             for _ in range(n_users)]
    scores = rng.random((n_users, n_items)).astype(np.float32)  # below 1
    for u, t in enumerate(targs):  # targets on top, in distinct order
        scores[u, t] = 2 + rng.permutation(len(t))
    m = run(scores, [[]] * n_users, targs, ks)
    tsize = np.array([len(t) for t in targs])
    assert m["mrr"] == pytest.approx(1.0)
    for k in set(ks):
        for name in ("recall", "ndcg", "hr", "map"):
            assert m[f"{name}@{k}"] == pytest.approx(1.0), (name, k)
        assert m[f"precision@{k}"] == pytest.approx(np.mean(np.minimum(k, tsize) / k))


@hyp
@given(case=case_args, ks=ks_strategy, cand=st.booleans(), perm_seed=st.integers(0, 2**31 - 1))
def test_permutation_invariance(case, ks, cand, perm_seed):
    scores, hists, targs, c, pop = random_case(*case, with_candidates=cand)
    base = run(scores, hists, targs, ks, candidates=c, popularity=pop)
    rng = np.random.default_rng(perm_seed)
    n_users, n_items = scores.shape
    # items: new id of old item j is p[j]
    p = rng.permutation(n_items)
    s2 = np.empty_like(scores)
    s2[:, p] = scores
    pop2 = np.empty_like(pop)
    pop2[p] = pop
    relabel = [[int(p[j]) for j in row] for row in hists], [[int(p[j]) for j in row] for row in targs]
    m = run(s2, *relabel, ks, candidates=None if c is None else p[c], popularity=pop2)
    for key in base:
        assert m[key] == pytest.approx(base[key], abs=1e-12, nan_ok=True), key
    # users: reorder rows
    order = rng.permutation(n_users)
    m = run(scores[order], [hists[u] for u in order], [targs[u] for u in order], ks,
            candidates=c, popularity=pop)
    for key in base:
        assert m[key] == pytest.approx(base[key], abs=1e-12, nan_ok=True), key


@hyp
@given(case=case_args, ks=ks_strategy, elems=st.integers(1, 400), cand=st.booleans())
def test_batch_size_does_not_change_results(case, ks, elems, cand):
    scores, hists, targs, c, pop = random_case(*case, with_candidates=cand, neg_inf=True)
    whole, per_whole = run(scores, hists, targs, ks, candidates=c, popularity=pop, per_user=True)
    small, per_small = run(scores, hists, targs, ks, candidates=c, popularity=pop, per_user=True,
                           max_batch_elems=elems)
    assert small.keys() == whole.keys()
    for key in whole:
        assert small[key] == pytest.approx(whole[key], abs=1e-12, nan_ok=True), key
    for key in per_whole:
        np.testing.assert_array_equal(per_small[key], per_whole[key])


def test_pca2_projects_on_the_two_main_axes():
    from mfsoftmax.folding import pca2

    rng = np.random.default_rng(0)
    pts = rng.standard_normal((200, 5)) * np.array([10.0, 3.0, 0.1, 0.1, 0.1])
    xy, var = pca2(pts)
    assert xy.shape == (200, 2)
    assert var[0] > var[1] > 0.0 and var.sum() <= 1.0
    # the projection keeps the spread of the two big axes (up to sign)
    assert abs(abs(np.corrcoef(xy[:, 0], pts[:, 0])[0, 1]) - 1.0) < 1e-3
    flat, _ = pca2(pts[:, :1])
    assert np.all(flat[:, 1] == 0.0)


def test_paired_standard_errors_hand_computed():
    from mfsoftmax.evaluation import paired_standard_errors, standard_errors

    a = {"recall@10": np.array([1.0, 0.0, 1.0, 1.0]), "mrr": np.array([1.0, 0.5, 0.5, 1.0])}
    b = {"recall@10": np.array([0.0, 0.0, 1.0, 0.0]), "mrr": np.array([1.0, 0.5, 0.5, 1.0])}
    se = paired_standard_errors(a, b)
    # differences 1, 0, 0, 1: sd (ddof 1) = sqrt(1/3), se = sqrt(1/3) / 2
    assert se["recall@10"] == pytest.approx(np.sqrt(1 / 3) / 2)
    assert se["mrr"] == 0.0  # identical per-user values: the gap is known exactly
    # positively correlated users: the paired error is below the unpaired hypot(se_a, se_b)
    c = {"recall@10": a["recall@10"] * 0.9}
    unpaired = np.hypot(*(standard_errors(x)["recall@10"] for x in (a, c)))
    assert paired_standard_errors(a, c)["recall@10"] == pytest.approx(0.1 * standard_errors(a)["recall@10"])
    assert paired_standard_errors(a, c)["recall@10"] < unpaired
    with pytest.raises(ValueError, match="same evaluation users"):
        paired_standard_errors(a, {"recall@10": np.zeros(3)})


@pytest.mark.parametrize("with_candidates", [False, True])
def test_evaluate_targets_equals_evaluate_once_per_target(with_candidates):
    """One scoring pass against several target matrices gives, for each, exactly what
    ``evaluate`` gives on the evalset with that target (metrics, coverage, avg_pop, per user),
    with batches smaller than the users and with a candidate set."""
    from mfsoftmax.evaluation import evaluate_targets, restrict_targets

    rng = np.random.default_rng(4)
    n_users, n_items = 40, 30
    hist = [list(rng.choice(n_items, rng.integers(0, 5), replace=False)) for _ in range(n_users)]
    tgt = [[i for i in rng.choice(n_items, rng.integers(1, 6), replace=False) if i not in h]
           for h in hist]
    cand = np.sort(rng.choice(n_items, 20, replace=False)) if with_candidates else None
    ev = make_evalset(n_items, hist, tgt, cand)
    model = ScoreModel(rng.random((n_users, n_items)))
    pop = rng.integers(1, 50, n_items)
    masks = [np.arange(n_items) < 10, np.arange(n_items) >= 10, np.ones(n_items, bool)]
    targets = [restrict_targets(ev, m).target for m in masks]
    got = evaluate_targets(model, ev, targets, ks=(1, 5), item_popularity=pop, per_user=True,
                           max_batch_elems=7 * n_items)
    for m, (res, per) in zip(masks, got, strict=True):
        want, want_per = evaluate(model, restrict_targets(ev, m), ks=(1, 5), item_popularity=pop,
                                  per_user=True)
        assert res.keys() == want.keys()
        for k in want:
            assert res[k] == want[k] or (math.isnan(res[k]) and math.isnan(want[k])), k
        for k in want_per:
            assert np.array_equal(per[k], want_per[k]), k
    assert got[0][0]["recall@5"] != got[1][0]["recall@5"]  # the targets did differ
    with pytest.raises(ValueError, match="target has shape"):
        evaluate_targets(model, ev, [targets[0][:5]], ks=(5,))
