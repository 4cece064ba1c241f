"""The planted-groups generator: determinism, group structure, the realistic properties of the
default data (long-tail popularity, log-normal activity, low-rank tastes inside a group,
cross-group noise, features with partial signal), the default config, memory."""

import inspect
import tracemalloc

import numpy as np
import pytest

from mfsoftmax.datasets import load
from mfsoftmax.datasets.synthetic import synthetic

SMALL = dict(n_users=600, n_items=400, n_groups=8, mean_activity=20)


def rows(d):
    return np.repeat(np.arange(d.n_users), np.diff(d.matrix.indptr))


def cross_share(d):
    return np.mean(d.user_groups[rows(d)] != d.item_groups[d.matrix.indices])


@pytest.fixture(scope="module")
def default():
    return synthetic()


def test_same_seed_identical_different_seed_differs():
    a, b, c = synthetic(**SMALL, seed=3), synthetic(**SMALL, seed=3), synthetic(**SMALL, seed=4)
    for x, y in ((a.matrix.indptr, b.matrix.indptr), (a.matrix.indices, b.matrix.indices),
                 (a.timestamps, b.timestamps), (a.user_groups, b.user_groups),
                 (a.item_groups, b.item_groups),
                 *((a.user_features[k], b.user_features[k]) for k in a.user_features),
                 *((a.item_features[k], b.item_features[k]) for k in a.item_features)):
        assert np.array_equal(x, y)
    assert (a.matrix != c.matrix).nnz > 0


def test_no_noise_means_users_stay_in_their_group():
    d = synthetic(**SMALL, noise=0.0, seed=1)
    assert np.array_equal(d.user_groups[rows(d)], d.item_groups[d.matrix.indices])
    assert len(np.unique(d.user_groups)) == 8
    assert len(np.unique(d.item_groups)) == 8


def test_noise_share_of_cross_group_interactions(default):
    # items are distinct per user, so the share is that of the user's items, not of draws
    d = synthetic(n_users=3000, n_items=10000, n_groups=10, mean_activity=20, noise=0.2, seed=2)
    assert 0.18 < cross_share(d) < 0.22
    assert 0.17 < cross_share(default) < 0.24  # default noise 0.2 (in-group caps nudge it up)
    # the noise items follow global popularity: the head of the catalogue takes most of them
    leak = d.user_groups[rows(d)] != d.item_groups[d.matrix.indices]
    pop = d.item_popularity()
    head = pop >= np.quantile(pop, 0.9)
    assert np.mean(head[d.matrix.indices[leak]]) > 0.3


def test_popularity_has_a_long_tail_across_the_catalogue(default):
    def top_decile_share(d):
        p = np.sort(d.item_popularity())[::-1]
        return p[: len(p) // 10].sum() / p.sum()

    # MovieLens 100k: the top 10% of items hold 43% of the ratings
    assert 0.3 < top_decile_share(default) < 0.6
    assert top_decile_share(synthetic(zipf=0.0, taste=0.0, seed=0)) < 0.18
    # the head is spread over the groups, not packed into one
    p = default.item_popularity()
    head = np.argsort(p)[::-1][: default.n_items // 10]
    assert len(np.unique(default.item_groups[head])) == int(default.item_groups.max()) + 1


def test_activity_is_log_normal_distinct_items(default):
    a = default.user_activity()
    log_a = np.log(a)
    skew = np.mean((log_a - log_a.mean()) ** 3) / log_a.std() ** 3
    assert 0.7 < log_a.std() < 1.1  # activity_sigma 0.9 (MovieLens 100k: 0.88)
    assert abs(skew) < 0.5  # the log is roughly symmetric ...
    assert a.max() > 5 * np.median(a)  # ... so the activity itself has a heavy right tail
    assert a.min() >= 3
    # mean_activity counts distinct items (drawn without replacement), when groups are large
    big = synthetic(n_users=3000, n_items=20000, n_groups=4, mean_activity=20, seed=3)
    assert 18 < big.user_activity().mean() < 21


def test_within_group_preferences_are_skewed_and_low_rank(default):
    def block(d, g=0):
        x = d.matrix[d.user_groups == g][:, d.item_groups == g].toarray()
        return x[x.sum(1) > 0]

    def top_share(x):
        p = np.sort(x.sum(0))[::-1]
        return p[: len(p) // 10].sum() / p.sum()

    def taste_energy(x):  # share of the centred block's energy in singular values 2..6
        s = np.linalg.svd(x - x.mean(0), compute_uv=False)
        return (s[1:6] ** 2).sum() / (s**2).sum()

    x = block(default)
    assert top_share(x) > 0.25  # non-uniform inside the group
    flat = synthetic(taste=0.0, seed=0)  # same popularity, no tastes: i.i.d. users in a group
    assert taste_energy(x) > 1.5 * taste_energy(block(flat))


def test_features_carry_partial_signal(default):
    n_groups = int(default.user_groups.max()) + 1
    for got, want in ((default.user_features["segment"], default.user_groups),
                      (default.item_features["category"], default.item_groups)):
        acc = np.mean(got == want)
        assert 3.0 / n_groups < acc < 0.8  # well above chance, far from giving it away
    exact = synthetic(**SMALL, feature_noise=0.0, seed=6)
    assert np.array_equal(exact.user_features["segment"], exact.user_groups)
    noisy = synthetic(**SMALL, feature_noise=1.0, seed=6)
    assert np.mean(noisy.user_features["segment"] == noisy.user_groups) < 0.3
    for feats in (default.user_features, default.item_features):
        for v in feats.values():
            assert v.dtype == np.int64 and v.min() >= 0

    # age_bucket is a bucket of the user's main taste: inside a group, users of one bucket share
    # more items than users of different buckets (and not at all without tastes)
    def same_bucket_overlap(d, g=0):
        u = np.flatnonzero(d.user_groups == g)
        x = d.matrix[u].toarray()
        x /= np.maximum(1.0, np.linalg.norm(x, axis=1, keepdims=True))
        sim = x @ x.T
        age = d.user_features["age_bucket"][u]
        same = age[:, None] == age[None, :]
        np.fill_diagonal(same, False)
        other = age[:, None] != age[None, :]
        return sim[same].mean() / sim[other].mean()

    assert same_bucket_overlap(synthetic(feature_noise=0.0, seed=0)) > 1.1
    assert abs(same_bucket_overlap(synthetic(feature_noise=0.0, taste=0.0, seed=0)) - 1) < 0.05


def test_defaults_are_the_default_config_dataset():
    """`datasets show synthetic`, `run` and the default config describe one dataset; `--quick`
    a smaller one."""
    from mfsoftmax.bench.config import QUICK_DATASET, load_config, shrink

    defaults = {k: p.default for k, p in inspect.signature(synthetic).parameters.items()}
    cfg = load_config("default")
    ds = cfg["dataset"]
    assert ds["name"] == "synthetic"
    for key, val in ds["params"].items():
        assert key in defaults and val == defaults[key], f"default.toml overrides {key}"
    assert load("synthetic").matrix.shape == (defaults["n_users"], defaults["n_items"])
    quick = shrink(cfg)["dataset"]["params"]
    assert quick == {**ds["params"], **QUICK_DATASET["synthetic"]}
    for key in ("n_users", "n_items", "n_groups"):
        assert quick[key] <= defaults[key]
    assert quick["n_users"] < defaults["n_users"] and quick["n_items"] < defaults["n_items"]


def test_bad_parameters():
    with pytest.raises(ValueError):
        synthetic(n_users=5, n_items=100, n_groups=10)
    with pytest.raises(ValueError):
        synthetic(noise=1.5)
    with pytest.raises(ValueError):
        synthetic(n_groups=1, noise=0.1)
    with pytest.raises(ValueError):
        synthetic(feature_noise=-0.1)
    with pytest.raises(ValueError):
        synthetic(latent_dim=0)
    with pytest.raises(ValueError):
        synthetic(taste=-1.0)


def test_one_group_and_tiny_sizes():
    d = synthetic(n_users=50, n_items=30, n_groups=1, mean_activity=5, noise=0.0, seed=0)
    assert d.n_interactions > 0 and np.all(d.item_groups == 0)
    d = synthetic(n_users=40, n_items=8, n_groups=4, mean_activity=50, seed=0)
    assert d.user_activity().max() <= 8  # distinct items, however many were asked for


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


def test_ml20m_shape_preset():
    """``synthetic-20m``: ML-20M's dimensions and activity floor by default; a smaller run of the
    same shape by overriding n_users; the name says which preset made it."""
    import inspect as _inspect

    from mfsoftmax.datasets import REGISTRY
    from mfsoftmax.datasets.synthetic import ML20M_SHAPE, synthetic_20m

    sig = _inspect.signature(synthetic_20m).parameters
    assert (sig["n_users"].default, sig["n_items"].default) == (138_493, 26_744)
    assert sig["min_activity"].default == 20 and sig["n_groups"].default == ML20M_SHAPE["n_groups"]
    assert set(sig) == set(_inspect.signature(synthetic).parameters)  # every knob overridable
    assert "synthetic-20m" in REGISTRY and "20M" in REGISTRY["synthetic-20m"].description
    data = load("synthetic-20m", n_users=3000, seed=1)
    assert data.name == "synthetic-20m" and data.meta["preset"] == "ml-20m-shape"
    assert data.matrix.shape == (3000, 26_744)
    act = data.user_activity()
    # ml-20m: every user has >= 20 ratings; here a few draws of the most skewed tastes may stop
    # short of the floor (the top-up rounds are bounded)
    assert np.mean(act >= 20) > 0.99 and act.min() >= 15
    assert 100 < act.mean() < 160 and np.median(act) < act.mean()  # a right tail
    assert int(data.user_groups.max()) + 1 == ML20M_SHAPE["n_groups"]
    same = synthetic(n_users=3000, n_items=26_744, seed=1, in_group="keys", **{
        k: v for k, v in ML20M_SHAPE.items() if k not in ("n_users", "n_items")})
    assert (same.matrix != data.matrix).nnz == 0  # the preset is the generator's parameters


def test_in_group_keys_matches_draws_in_distribution():
    """``in_group="keys"`` (exponential keys) draws the same successive-sampling distribution as
    the default rounds of draws: the same counts per user (exactly k_in, where the rounds may
    stop short) and item frequencies that agree up to sampling noise; unknown modes refused."""
    kw = dict(n_users=3000, n_items=600, n_groups=6, mean_activity=40, noise=0.2)
    a = synthetic(**kw, seed=0)
    b = synthetic(**kw, seed=0, in_group="keys")
    assert b.meta["in_group"] == "keys" and "in_group" not in a.meta
    assert (a.matrix != b.matrix).nnz > 0  # another draw for the same seed
    np.testing.assert_array_equal(a.user_groups, b.user_groups)
    act_a, act_b = a.user_activity(), b.user_activity()
    assert (act_b >= act_a).all() and act_b.sum() - act_a.sum() < 0.05 * act_a.sum()
    pa, pb = a.item_popularity() / act_a.sum(), b.item_popularity() / act_b.sum()
    assert np.corrcoef(pa, pb)[0, 1] > 0.97
    assert np.abs(pa - pb).sum() < 0.1  # total variation of the item marginals

    def inside(d):  # share of a dataset's interactions inside the user's group
        m = d.matrix
        return np.mean(d.user_groups[np.repeat(np.arange(d.n_users), np.diff(m.indptr))]
                       == d.item_groups[m.indices])

    assert abs(inside(b) - inside(a)) < 0.03
    with pytest.raises(ValueError, match="in_group"):
        synthetic(**kw, in_group="sorted")


@pytest.mark.parametrize("in_group, digest", [("draws", "ebd3dd91dcab5b38"),
                                              ("keys", "faa04d5394757c75")])
def test_the_draw_for_a_seed_is_pinned(in_group, digest):
    # the generator split into its steps (issue 28) draws exactly what it drew as one function:
    # any change in the order of the random draws changes this digest
    import hashlib

    d = synthetic(**SMALL, seed=5, in_group=in_group)
    h = hashlib.sha256()
    for a in (d.matrix.indptr, d.matrix.indices, d.timestamps, d.user_groups, d.item_groups,
              *(d.user_features[k] for k in sorted(d.user_features)),
              *(d.item_features[k] for k in sorted(d.item_features))):
        h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
    assert h.hexdigest()[:16] == digest
