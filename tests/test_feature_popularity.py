import numpy as np
import pytest
import scipy.sparse as sp

from mfsoftmax.datasets import Interactions, make_split
from mfsoftmax.evaluation import evaluate
from mfsoftmax.models import FeaturePopularity, Popularity, Queries
from tests.contract import RecommenderContract, checkerboard


class TestFeaturePopularity(RecommenderContract):
    def make_model(self):
        return FeaturePopularity(shrinkage=10.0)


def tiny(features=True) -> Interactions:
    """4 users x 3 items; ``sex`` 0 for users 0-1, 1 for users 2-3; ``age`` 0 for users 0 and 2."""
    dense = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 1]], dtype=np.float32)
    feats = {"sex": np.array([0, 0, 1, 1]), "age": np.array([0, 1, 0, 1])} if features else {}
    return Interactions(name="tiny", matrix=sp.csr_matrix(dense), user_features=feats)


def test_scores_are_the_shrunk_mixture_by_hand():
    data = tiny()
    alpha = 2.0
    model = FeaturePopularity(shrinkage=alpha).fit(data)
    g = np.array([2, 2, 2]) / 6  # global item distribution
    # user 0: sex 0 cell = users 0, 1 -> counts [2, 1, 0] (3 events); age 0 cell = users 0, 2 -> [1, 1, 1]
    p_sex = (np.array([2, 1, 0]) + alpha * g) / (3 + alpha)
    p_age = (np.array([1, 1, 1]) + alpha * g) / (3 + alpha)
    want = np.log((p_sex + p_age) / 2)
    got = model.score(Queries(np.array([0]), data.matrix[:1]))
    np.testing.assert_allclose(got[0], want, rtol=1e-6)


def test_single_feature_and_zero_shrinkage_is_the_cell_popularity():
    data = tiny()
    model = FeaturePopularity(features=["sex"], shrinkage=0.0).fit(data)
    s = model.score(Queries(np.array([2, 3]), data.matrix[2:]))
    np.testing.assert_allclose(np.exp(s[0]), [0, 1 / 3, 2 / 3], atol=1e-7)  # sex 1: users 2, 3
    assert np.array_equal(s[0], s[1])  # same cell, same list


def test_without_features_ranks_as_popularity():
    data = tiny(features=False)
    fp = FeaturePopularity().fit(data)
    pop = Popularity().fit(data)
    q = Queries(np.arange(4), data.matrix)
    assert np.array_equal(np.argsort(-fp.score(q), 1, kind="stable"), np.argsort(-pop.score(q), 1, kind="stable"))


def test_large_shrinkage_tends_to_global_popularity():
    data = checkerboard()
    s = FeaturePopularity(shrinkage=1e9).fit(data).score(Queries(np.arange(2), data.matrix[:2]))
    g = data.item_popularity() / data.item_popularity().sum()
    np.testing.assert_allclose(np.exp(s), np.broadcast_to(g, s.shape), rtol=1e-4)


def test_features_beat_popularity_for_new_users_when_they_hold_signal():
    """Checkerboard: the feature is the group, so with no revealed items the lookup wins."""
    data = checkerboard(n_users=120)
    split = make_split(data, "strong", seed=0, n_heldout=20)
    fp = evaluate(FeaturePopularity(shrinkage=10.0).fit(split.train), split.test, ks=(5,))["recall@5"]
    pop = evaluate(Popularity().fit(split.train), split.test, ks=(5,))["recall@5"]
    assert fp > pop + 0.2


def test_bad_parameters_are_named():
    data = tiny()
    with pytest.raises(ValueError, match="'zip'.*have: age, sex"):
        FeaturePopularity(features=["zip"]).fit(data)
    with pytest.raises(ValueError, match="shrinkage=-1"):
        FeaturePopularity(shrinkage=-1)
    with pytest.raises(IndexError, match="out of range"):
        FeaturePopularity().fit(data).score(Queries(np.array([7]), data.matrix[:1]))
