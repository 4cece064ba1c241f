"""True new items (only in the item side table): how each family scores them at n_known = 0."""

import numpy as np
import pytest

from mfsoftmax.bench.coldstart import new_item_path, true_new_item_ranks
from mfsoftmax.datasets import make_split
from mfsoftmax.models import WALS, Popularity, SoftmaxDNN
from mfsoftmax.models.wals.features import new_row_embeddings
from mfsoftmax.ranking import Queries
from tests.contract import checkerboard

# two new items, one per planted group (the feature "category" is the group)
NEW = {"ids": np.array([1000, 1001]), "features": {"category": np.array([0, 1])}}


@pytest.fixture(scope="module")
def fitted():
    data = checkerboard(n_users=80, n_items=40)
    split = make_split(data, "new-items", seed=0, item_frac=0.1)
    models = {"popularity": Popularity().fit(split.train),
              "wals": WALS(dim=8, iterations=8, seed=0).fit(split.train),
              "dnn": SoftmaxDNN(loss="full", item_tower="add", use_history=False, dim=8,
                                hidden=(16,), batch_size=32, epochs=40, patience=4, lr=0.01,
                                eval_k=3, seed=0).fit(split.train)}
    return data, split, models


def _in_group_wins(scores, users, data) -> float:
    """Share of users scoring the new item of their own group above the other one."""
    own = data.user_groups[users]
    return float(np.mean(scores[np.arange(len(users)), own] > scores[np.arange(len(users)), 1 - own]))


@pytest.mark.parametrize("name,path", [("wals", "feature average"), ("dnn", "item tower")])
def test_families_score_new_items_from_their_features(fitted, name, path):
    data, split, models = fitted
    got, score = new_item_path(models[name], split.train, NEW["features"])
    assert got == path
    users = split.test.users
    q = Queries(users, split.train.binary()[users], True)
    assert _in_group_wins(score(q), users, data) >= 0.9


def test_dnn_feature_scores_match_its_cold_item_scores(fitted):
    data, split, models = fitted
    dnn, items = models["dnn"], np.array([0, 39])
    q = Queries(split.test.users, split.train.binary()[split.test.users], True)
    feats = {"category": data.item_features["category"][items]}
    assert np.allclose(dnn.feature_item_scores(q, feats), dnn.item_cold_scores(q, items), atol=1e-5)


def test_new_row_embeddings_average_the_trained_rows_sharing_features():
    feats = {"c": np.array([0, 0, 1, 1])}
    emb = np.array([[1.0, 0], [3, 0], [0, 2], [0, 4]], dtype=np.float32)
    trained = np.array([True, True, True, False])
    out = new_row_embeddings(feats, trained, emb, {"c": np.array([1, 0, 7])})
    assert np.allclose(out, [[0, 2], [2, 0], [4 / 3, 2 / 3]])  # unseen code 7: the global mean


def test_true_new_item_ranks_report(fitted):
    data, split, models = fitted
    rep = true_new_item_ranks(models, split, NEW, k=5)
    assert (rep["n_new_items"], rep["k"], rep["n_users"]) == (2, 5, len(split.test.users))
    pop, wals = rep["models"]["popularity"], rep["models"]["wals"]
    assert pop["path"] is None and pop["share@5"] == 0.0 and pop["mean_percentile"] > 0.9
    # every user's own-group new item is among its few unseen in-group candidates: top-5
    assert wals["users_with_new"] >= 0.9 and wals["share@5"] > rep["chance_share"]
    assert 0.0 <= wals["mean_percentile"] <= 1.0
