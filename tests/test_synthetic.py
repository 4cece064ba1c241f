"""The planted-groups generator: determinism, group structure, skew, features, memory."""

import tracemalloc

import numpy as np
import pytest

from mfsoftmax.datasets.synthetic import synthetic

SMALL = dict(n_users=600, n_items=400, n_groups=8, mean_activity=20)


def rows(d):
    return np.repeat(np.arange(d.n_users), np.diff(d.matrix.indptr))


def test_same_seed_identical_different_seed_differs():
    a, b, c = synthetic(**SMALL, seed=3), synthetic(**SMALL, seed=3), synthetic(**SMALL, seed=4)
    for x, y in ((a.matrix.indptr, b.matrix.indptr), (a.matrix.indices, b.matrix.indices),
                 (a.timestamps, b.timestamps), (a.user_groups, b.user_groups),
                 (a.user_features["segment"], b.user_features["segment"]),
                 (a.item_features["category"], b.item_features["category"])):
        assert np.array_equal(x, y)
    assert (a.matrix != c.matrix).nnz > 0


def test_no_noise_means_users_stay_in_their_group():
    d = synthetic(**SMALL, noise=0.0, seed=1)
    assert np.array_equal(d.user_groups[rows(d)], d.item_groups[d.matrix.indices])
    assert set(np.bincount(d.user_groups)) and len(np.unique(d.user_groups)) == 8
    assert len(np.unique(d.item_groups)) == 8


def test_noise_share_of_cross_group_interactions():
    # uniform popularity over large groups: few duplicate pairs, so the share survives dedupe
    d = synthetic(n_users=3000, n_items=10000, n_groups=10, mean_activity=20, noise=0.2, zipf=0.0,
                  seed=2)
    cross = np.mean(d.user_groups[rows(d)] != d.item_groups[d.matrix.indices])
    assert 0.18 < cross < 0.22


def test_zipf_skew_inside_groups():
    def top_to_tenth(zipf):
        d = synthetic(n_users=4000, n_items=800, n_groups=4, mean_activity=20, zipf=zipf, seed=5)
        pop = d.item_popularity()
        ratios = []
        for g in range(4):
            p = np.sort(pop[d.item_groups == g])[::-1]
            ratios.append(p[0] / p[9])
        return np.mean(ratios)

    assert top_to_tenth(1.0) > 3.0
    assert top_to_tenth(0.0) < 1.5


def test_features_correlate_with_group():
    d = synthetic(**SMALL, feature_noise=0.3, seed=6)
    assert np.mean(d.user_features["segment"] == d.user_groups) > 0.6
    assert np.mean(d.item_features["category"] == d.item_groups) > 0.6
    noisy = synthetic(**SMALL, feature_noise=1.0, seed=6)
    assert np.mean(noisy.user_features["segment"] == noisy.user_groups) < 0.3
    for feats in (d.user_features, d.item_features):
        for v in feats.values():
            assert v.dtype == np.int64 and v.min() >= 0


def test_bad_parameters():
    with pytest.raises(ValueError):
        synthetic(n_users=5, n_items=100, n_groups=10)
    with pytest.raises(ValueError):
        synthetic(noise=1.5)
    with pytest.raises(ValueError):
        synthetic(n_groups=1, noise=0.1)


def test_no_users_by_items_allocation():
    m, n = 200_000, 50_000
    tracemalloc.start()
    try:
        d = synthetic(n_users=m, n_items=n, n_groups=50, mean_activity=5, seed=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert d.matrix.shape == (m, n)
    assert peak < m * n * 4 / 50  # a dense float32 matrix would be 40 GB; we stay under 0.8 GB
