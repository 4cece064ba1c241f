"""FeaturePopularity on multi-hot user features (a side table's multi-valued or text column)."""

import numpy as np
import pytest
import scipy.sparse as sp

from mfsoftmax.datasets import Interactions
from mfsoftmax.models import FeaturePopularity
from mfsoftmax.ranking import Queries


def data():
    # items 0-1 liked by users tagged "a", items 2-3 by users tagged "b"; user 4 has both tags,
    # user 5 none
    dense = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 1], [0, 0, 0, 1], [1, 0, 1, 0],
                      [0, 1, 0, 0]], dtype=np.float32)
    tags = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [1, 1], [0, 0]], dtype=np.uint8)
    return Interactions(name="t", matrix=sp.csr_matrix(dense), user_features={"tags": tags})


def test_multi_hot_feature_is_a_mean_over_the_users_values():
    d = data()
    model = FeaturePopularity(shrinkage=0.0).fit(d)  # default: every feature, multi-hot too
    assert list(model.tables) == ["tags"]
    s = np.exp(model.score(Queries(np.arange(6), d.matrix, known=True)))
    table = model.tables["tags"]
    assert np.allclose(s[0], table[0]) and np.allclose(s[2], table[1])
    assert np.allclose(s[4], (table[0] + table[1]) / 2)
    assert np.allclose(s[5], model.global_p)  # no value: global popularity
    assert s[0, 0] > s[0, 3] and s[2, 3] > s[2, 1]  # each tag ranks its own items first


def test_save_load_keeps_multi_hot(tmp_path):
    d = data()
    model = FeaturePopularity(shrinkage=1.0).fit(d)
    model.save(tmp_path)
    back = FeaturePopularity.load(tmp_path)
    q = Queries(np.arange(6), d.matrix, known=True)
    assert np.array_equal(back.score(q), model.score(q))


def test_non_binary_matrix_is_refused():
    d = data()
    d.user_features["tags"] = d.user_features["tags"] * 2
    with pytest.raises(ValueError, match="multi-hot"):
        FeaturePopularity().fit(d)
