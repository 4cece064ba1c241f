"""Preprocessing (threshold, iterated k-core, binarise) and the folding probes (twin, union)."""

import numpy as np
import pytest

from mfsoftmax.datasets import DatasetError, disjoint_union, from_coo, load, twin
from mfsoftmax.datasets.preprocess import binarize, k_core, preprocess, threshold


def random_data(seed, m=40, n=30, nnz=300):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, m, nnz)
    i = (rng.zipf(1.5, nnz) - 1) % n  # skewed so the k-core bites
    r = rng.integers(1, 6, nnz).astype(np.float32)
    return from_coo("rand", u, i, m, n, values=r, ratings=r, timestamps=rng.integers(0, 1000, nnz),
                    user_ids=np.arange(m) + 100, item_ids=np.arange(n) + 500)


def pairs(d):
    rows = np.repeat(np.arange(d.n_users), np.diff(d.matrix.indptr))
    return {(d.user_ids[r], d.item_ids[c]) for r, c in zip(rows, d.matrix.indices, strict=True)}


def naive_k_core(edges, min_user, min_item):
    edges = set(edges)
    while True:
        du, di = {}, {}
        for u, i in edges:
            du[u] = du.get(u, 0) + 1
            di[i] = di.get(i, 0) + 1
        keep = {(u, i) for u, i in edges if du[u] >= min_user and di[i] >= min_item}
        if keep == edges:
            return edges
        edges = keep


def test_threshold_keeps_ratings_at_or_above():
    d = random_data(0)
    t = threshold(d, 4)
    assert t.n_interactions == int((d.ratings >= 4).sum())
    assert t.ratings.min() >= 4 and t.matrix.shape == d.matrix.shape
    assert threshold(d, None) is d


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ku,ki", [(3, 3), (5, 2), (2, 6)])
def test_k_core_matches_naive_loop(seed, ku, ki):
    d = random_data(seed)
    expect = naive_k_core(pairs(d), ku, ki)
    if not expect:
        with pytest.raises(DatasetError):
            k_core(d, ku, ki)
        return
    core = k_core(d, ku, ki)
    assert pairs(core) == expect
    assert core.user_activity().min() >= ku and core.item_popularity().min() >= ki
    assert set(core.user_ids) == {u for u, _ in expect}
    # aligned arrays follow the surviving interactions
    lookup = {}
    rows = np.repeat(np.arange(d.n_users), np.diff(d.matrix.indptr))
    for r, c, rt in zip(rows, d.matrix.indices, d.ratings, strict=True):
        lookup[(d.user_ids[r], d.item_ids[c])] = rt
    crow = np.repeat(np.arange(core.n_users), np.diff(core.matrix.indptr))
    for r, c, rt in zip(crow, core.matrix.indices, core.ratings, strict=True):
        assert lookup[(core.user_ids[r], core.item_ids[c])] == rt


def test_binarize_keeps_ratings():
    d = random_data(1)
    b = binarize(d)
    assert set(b.matrix.data.tolist()) == {1.0}
    assert np.array_equal(b.ratings, d.ratings) and np.array_equal(b.matrix.indices, d.matrix.indices)
    # the pattern is shared, not copied: only the values are new
    assert np.shares_memory(b.matrix.indices, d.matrix.indices)
    assert np.shares_memory(b.matrix.indptr, d.matrix.indptr)
    assert not np.shares_memory(b.matrix.data, d.matrix.data)
    assert b.matrix.data.dtype == np.float32 and b.matrix.has_sorted_indices


def test_preprocess_threshold_then_core_then_binary():
    d = random_data(2)
    p = preprocess(d, min_rating=3, min_user=2, min_item=2)
    expect = naive_k_core({k for k in pairs(d) if k in pairs(threshold(d, 3))}, 2, 2)
    assert pairs(p) == expect
    assert set(p.matrix.data.tolist()) == {1.0} and p.ratings.min() >= 3
    raw = preprocess(d, binary=False)
    assert np.array_equal(raw.matrix.data, d.matrix.data)
    with pytest.raises(DatasetError):
        preprocess(d, min_rating=99)


def test_twin_block_structure():
    d = random_data(3)
    t = twin(d)
    m, n = d.n_users, d.n_items
    assert t.matrix.shape == (2 * m, 2 * n)
    a = t.matrix.toarray()
    assert np.array_equal(a[:m, :n], d.matrix.toarray())
    assert np.array_equal(a[m:, n:], d.matrix.toarray())
    assert not a[:m, n:].any() and not a[m:, :n].any()
    assert t.user_groups.tolist() == [0] * m + [1] * m
    assert t.item_groups.tolist() == [0] * n + [1] * n
    assert np.array_equal(t.ratings, np.concatenate([d.ratings, d.ratings]))
    assert t.user_ids[0] == f"a:{d.user_ids[0]}" and t.user_ids[m] == f"b:{d.user_ids[0]}"


def test_disjoint_union_of_different_datasets_keeps_common_features():
    a = random_data(4)
    b = random_data(5, m=10, n=7, nnz=40)
    a.item_features = {"genre": np.ones((a.n_items, 3), np.uint8), "cat": np.zeros(a.n_items, np.int64)}
    b.item_features = {"genre": np.ones((b.n_items, 4), np.uint8), "cat": np.ones(b.n_items, np.int64)}
    u = disjoint_union(a, b)
    assert u.matrix.shape == (a.n_users + b.n_users, a.n_items + b.n_items)
    assert u.n_interactions == a.n_interactions + b.n_interactions
    dense = u.matrix.toarray()
    assert not dense[: a.n_users, a.n_items:].any() and not dense[a.n_users:, : a.n_items].any()
    assert set(u.item_features) == {"cat"}  # multi-hot widths differ: dropped
    assert u.item_features["cat"].tolist() == [0] * a.n_items + [1] * b.n_items


def test_registry_specs():
    t = load("twin(synthetic)", n_users=60, n_items=40, n_groups=4, mean_activity=8)
    s = load("synthetic", n_users=60, n_items=40, n_groups=4, mean_activity=8)
    assert t.matrix.shape == (120, 80) and t.n_interactions == 2 * s.n_interactions
    with pytest.raises(DatasetError, match="unknown dataset"):
        load("no-such-dataset")
    with pytest.raises(DatasetError, match="expected twin"):
        load("triple(synthetic)")


@pytest.mark.parametrize("with_ts", [True, False])
def test_from_coo_keeps_latest_duplicate(with_ts):
    rng = np.random.default_rng(7)
    u, i = rng.integers(0, 5, 400), rng.integers(0, 4, 400)
    ts = rng.integers(0, 20, 400) if with_ts else None  # many timestamp ties too
    vals = np.arange(400, dtype=np.float32)
    d = from_coo("dup", u, i, 5, 4, values=vals, timestamps=ts)
    tkey = ts if with_ts else np.zeros(400)
    for r in range(5):
        for c in range(4):
            hits = np.flatnonzero((u == r) & (i == c))
            if hits.size:  # the latest timestamp; among ties the last position
                best = max(hits, key=lambda k: (tkey[k], k))
                assert d.matrix[r, c] == vals[best]
    with pytest.raises(ValueError, match="outside"):
        from_coo("bad", [0, 5], [0, 1], 5, 4)


def test_from_coo_in_order_input_keeps_every_event_in_its_own_arrays():
    """Events already in (user, item) order without duplicates are kept in place (no gather),
    and the result still owns its arrays: changing the inputs afterwards changes nothing."""
    users = np.array([0, 0, 1, 2, 2], dtype=np.int64)
    items = np.array([1, 3, 0, 2, 3], dtype=np.int64)
    ratings = np.array([4.0, 5.0, 3.0, 4.5, 1.0], dtype=np.float32)
    ts = np.array([10, 11, 12, 13, 14], dtype=np.int64)
    d = from_coo("t", users, items, 3, 4, values=ratings, ratings=ratings, timestamps=ts)
    np.testing.assert_array_equal(d.matrix.indices, items)
    np.testing.assert_array_equal(d.matrix.data, ratings)
    ratings[:] = 0
    ts[:] = 0
    assert d.matrix.data.tolist() == [4.0, 5.0, 3.0, 4.5, 1.0]
    assert d.ratings.tolist() == [4.0, 5.0, 3.0, 4.5, 1.0] and d.timestamps.tolist() == [10, 11, 12, 13, 14]
    d.matrix.data[:] = 1  # binarising the matrix leaves the ratings alone
    assert d.ratings.tolist() == [4.0, 5.0, 3.0, 4.5, 1.0]
    # out of order with a duplicate pair: the latest event of the pair, rows in order
    d2 = from_coo("t", np.array([1, 0, 1]), np.array([0, 2, 0]), 2, 3,
                  ratings=np.array([1.0, 2.0, 3.0]), timestamps=np.array([5, 6, 7]))
    assert d2.matrix.toarray().tolist() == [[0, 0, 1], [1, 0, 0]] and d2.ratings.tolist() == [2.0, 3.0]
