"""New-user curves (bench.coldstart) and the ablation's paired lift errors."""

import numpy as np
import pytest

from mfsoftmax.bench.coldstart import new_user_curve
from mfsoftmax.bench.stages.paired import add_lift_se
from mfsoftmax.datasets import make_split
from mfsoftmax.models import FeaturePopularity, Popularity
from tests.contract import checkerboard


@pytest.fixture(scope="module")
def fitted():
    split = make_split(checkerboard(n_users=80), "strong", seed=0)
    models = {"popularity": Popularity().fit(split.train),
              "feature-popularity": FeaturePopularity(shrinkage=0.0).fit(split.train)}
    return split, models


def test_per_user_arrays_line_up_with_the_curve(fitted):
    split, models = fitted
    curve, per = new_user_curve(models, split.test, n_known=(0, 2, 5), ks=(10,), seed=3, per_user=True)
    assert curve == new_user_curve(models, split.test, n_known=(0, 2, 5), ks=(10,), seed=3)
    for name, rows in curve.items():
        assert sorted(per[name]) == [0, 2, 5]
        for row in rows:
            arr = per[name][row["n_known"]]["recall@10"]
            assert len(arr) == row["n_users"] == len(per["popularity"][row["n_known"]]["recall@10"])
            assert arr.mean() == pytest.approx(row["recall@10"])
    # the features are the planted groups: at 0 items the lookup beats popularity for every user
    d = per["feature-popularity"][0]["recall@10"] - per["popularity"][0]["recall@10"]
    assert (d >= 0).all() and d.mean() > 0.2


def test_lift_se_pairs_rows_of_the_same_model_and_history():
    rows = [{"model": "dnn", "history": True, "user_features": False},
            {"model": "dnn", "history": False, "user_features": True},
            {"model": "dnn", "history": True, "user_features": True},
            {"model": "lookup", "history": None, "user_features": True}]
    pers = [{"recall@20": np.array([0.0, 0.5, 0.5, 1.0])},
            {"recall@20": np.zeros(4)},
            {"recall@20": np.array([1.0, 0.5, 0.5, 1.0])},
            {"recall@20": np.ones(4)}]
    add_lift_se(rows, pers)
    # with - without features: 1, 0, 0, 0 -> sd 0.5, se 0.25
    assert rows[2]["lift_se"] == {"recall@20": pytest.approx(0.25)}
    assert all("lift_se" not in r for i, r in enumerate(rows) if i != 2)
