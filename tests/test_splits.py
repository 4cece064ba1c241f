"""Split protocols: determinism, disjointness and each protocol's defining property."""

import numpy as np
import pytest

from mfsoftmax.datasets import DatasetError, make_split
from mfsoftmax.datasets.synthetic import synthetic


@pytest.fixture(scope="module")
def data():
    return synthetic(n_users=400, n_items=300, n_groups=6, mean_activity=15, seed=11)


def same(a, b):
    return (a != b).nnz == 0 and a.shape == b.shape


@pytest.mark.parametrize("protocol", ["holdout", "temporal", "strong", "new-items"])
def test_deterministic_given_seed(data, protocol):
    a, b, c = (make_split(data, protocol, seed=s) for s in (1, 1, 2))
    assert same(a.train.matrix, b.train.matrix)
    for x, y in ((a.valid, b.valid), (a.test, b.test)):
        assert np.array_equal(x.users, y.users) and same(x.target, y.target)
        assert same(x.history, y.history)
    assert not same(a.train.matrix, c.train.matrix) or not np.array_equal(a.test.users, c.test.users)


@pytest.mark.parametrize("protocol", ["holdout", "temporal", "strong", "new-items"])
def test_train_and_targets_disjoint_and_shapes_kept(data, protocol):
    s = make_split(data, protocol, seed=0)
    assert s.train.matrix.shape == data.matrix.shape
    for ev in (s.valid, s.test):
        assert ev.target.shape == (len(ev), data.n_items)
        overlap = s.train.matrix[ev.users].multiply(ev.target)
        assert overlap.nnz == 0
        assert ev.history.multiply(ev.target).nnz == 0
        assert ev.target.nnz > 0


@pytest.mark.parametrize("protocol", ["holdout", "temporal", "strong"])
def test_valid_and_test_users_disjoint(data, protocol):
    s = make_split(data, protocol, seed=0)
    assert not set(s.valid.users) & set(s.test.users)


@pytest.mark.parametrize("protocol", ["holdout", "temporal"])
def test_weak_generalisation_targets(data, protocol):
    s = make_split(data, protocol, seed=3)
    assert s.valid.known_users and s.test.known_users
    # every interaction is either training data or a target of exactly one eval set
    assert s.train.n_interactions + s.valid.target.nnz + s.test.target.nnz == data.n_interactions
    lens = data.user_activity()
    for ev in (s.valid, s.test):
        assert same(ev.history, s.train.matrix[ev.users])
        n_t = np.diff(ev.target.indptr)
        expect = np.clip(np.rint(0.2 * lens[ev.users]), 1, lens[ev.users] - 1)
        assert np.array_equal(n_t, expect)


def test_temporal_targets_are_latest(data):
    s = make_split(data, "temporal", seed=0)
    ts = data.timestamps
    m = data.matrix
    train_keys = set(zip(np.repeat(np.arange(data.n_users), np.diff(s.train.matrix.indptr)),
                         s.train.matrix.indices, strict=True))
    for u in np.concatenate([s.valid.users, s.test.users]):
        row = slice(m.indptr[u], m.indptr[u + 1])
        in_train = np.array([(u, i) in train_keys for i in m.indices[row]])
        assert ts[row][~in_train].min() >= ts[row][in_train].max()


def test_strong_heldout_users_have_no_training_rows(data):
    s = make_split(data, "strong", seed=4, n_heldout=40)
    assert not s.valid.known_users and not s.test.known_users
    assert len(s.valid) == len(s.test) == 40
    act = s.train.user_activity()
    lens = data.user_activity()
    for ev in (s.valid, s.test):
        assert (act[ev.users] == 0).all()
        # fold-in history + target is the user's whole row, split 80/20
        whole = data.matrix[ev.users].copy()
        whole.data[:] = 1
        both = (ev.history + ev.target).copy()
        both.data[:] = 1
        assert same(whole, both)
        n_t = np.diff(ev.target.indptr)
        assert np.array_equal(n_t, np.clip(np.rint(0.2 * lens[ev.users]), 1, lens[ev.users] - 1))
    others = np.setdiff1d(np.arange(data.n_users), np.concatenate([s.valid.users, s.test.users]))
    assert np.array_equal(act[others], lens[others])


def test_new_items_never_in_training(data):
    s = make_split(data, "new-items", seed=5)
    assert s.train.item_popularity()[s.new_items].sum() == 0
    assert not set(s.valid.candidates) & set(s.test.candidates)
    assert np.array_equal(np.sort(np.concatenate([s.valid.candidates, s.test.candidates])),
                          s.new_items)
    for ev in (s.valid, s.test):
        assert set(np.unique(ev.target.indices)) <= set(ev.candidates)
        assert same(ev.history, s.train.matrix[ev.users])


def test_bad_protocols(data):
    with pytest.raises(DatasetError, match="unknown protocol"):
        make_split(data, "random", seed=0)
    no_ts = data.with_matrix(data.matrix, keep=None)
    no_ts.timestamps = None
    with pytest.raises(DatasetError, match="needs timestamps"):
        make_split(no_ts, "temporal", seed=0)
    with pytest.raises(DatasetError, match="strong protocol"):
        make_split(data, "strong", seed=0, n_heldout=1000)
