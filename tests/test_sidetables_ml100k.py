"""MovieLens 100K exported to three plain files loads through ``file`` as the built-in loader."""

import numpy as np
import polars as pl
import pytest

from mfsoftmax.datasets import load
from mfsoftmax.datasets.movielens import age_bucket, year_bucket

from .ml100k_export import export_ml100k


@pytest.fixture(scope="module")
def both(shared_datasets, tmp_path_factory):
    paths = export_ml100k(shared_datasets / "ml-100k", tmp_path_factory.mktemp("ml100k-files"))
    ref = load("ml-100k", data_dir=shared_datasets, binary=False)
    got = load("file", path=str(paths["ratings"]), item_features=str(paths["items"]),
               user_features=str(paths["users"]), binary=False)
    return paths, ref, got


def _same_partition(a, b) -> bool:
    """Codes a and b define the same grouping (equal up to renaming the codes)."""
    a, b = np.unique(a, return_inverse=True)[1], np.unique(np.asarray(b, str), return_inverse=True)[1]
    pairs = np.unique(np.stack([a.ravel(), b.ravel()], axis=1), axis=0)
    return len(pairs) == a.max() + 1 == b.max() + 1


@pytest.mark.ml100k
def test_export_has_the_builtin_users_items_and_interactions(both):
    _, ref, got = both
    assert (got.n_users, got.n_items, got.n_interactions) == (943, 1682, 100000)
    assert np.array_equal(got.user_ids, ref.user_ids) and np.array_equal(got.item_ids, ref.item_ids)
    assert (got.matrix != ref.matrix).nnz == 0
    assert np.array_equal(got.timestamps, ref.timestamps)
    assert np.array_equal(got.ratings, ref.ratings)
    for side in ("user", "item"):
        info = got.meta["side_tables"][side]
        assert (info["unmatched_ids"], info["missing_ids"], info["duplicate_rows"]) == (0, 0, 0)
    assert "new_items" not in got.meta


@pytest.mark.ml100k
def test_export_has_the_builtin_feature_values(both):
    paths, ref, got = both
    info = got.meta["side_tables"]
    kinds = {s: {c: v["kind"] for c, v in info[s]["columns"].items()} for s in info}
    assert kinds == {"user": {"age": "numeric", "gender": "categorical",
                              "occupation": "categorical", "zip": "categorical"},
                     "item": {"year": "numeric", "genres": "multi", "title": "text"}}
    uf, itf = got.user_features, got.item_features
    # categorical values in sorted order: gender F=0/M=1 and u.occupation's (sorted) order
    assert np.array_equal(uf["gender"], ref.user_features["gender"])
    assert np.array_equal(uf["occupation"], ref.user_features["occupation"])
    users = pl.read_csv(paths["users"], infer_schema_length=0)
    ages = users["age"].cast(pl.Int64).to_numpy()
    assert np.array_equal(age_bucket(ages), ref.user_features["age_bucket"])  # same raw ages
    order = np.argsort(ages, kind="stable")
    assert np.all(np.diff(uf["age"][order]) >= 0)  # quantile buckets follow the age
    assert _same_partition(uf["zip"], users["zip"].to_numpy())
    # genres: the same set of names per movie
    labels = info["item"]["columns"]["genres"]["labels"]
    names = ref.meta["genres"]
    for row_got, row_ref in zip(itf["genres"], ref.item_features["genres"], strict=True):
        assert {labels[k] for k in np.flatnonzero(row_got)} == {names[k] for k in np.flatnonzero(row_ref)}
    items = pl.read_csv(paths["items"], infer_schema_length=0)
    years = items["year"].cast(pl.Int64).fill_null(0).to_numpy()
    assert np.array_equal(year_bucket(years), ref.item_features["year_bucket"])
    known = years > 0
    order = np.argsort(years[known], kind="stable")
    assert np.all(np.diff(itf["year"][known][order]) >= 0)
    assert len(set(itf["year"][~known])) == 1 and itf["year"][~known][0] == itf["year"].max()
    assert itf["title"].sum(axis=1).min() >= 1  # every title hashed into its bag


@pytest.mark.ml100k
@pytest.mark.slow
def test_export_quality_matches_the_builtin_run(both, shared_datasets, tmp_path):
    """The default config (--quick, three models) on the export and on the built-in loader:
    the feature-free models give the same figures on the same split, the DNN (other feature
    encodings) agrees within two standard errors."""
    import json

    from mfsoftmax.cli import main

    paths = both[0]
    common = ["--quick", "--models", "popularity", "wals", "softmax-in-batch", "--stages",
              "quality", "--no-report", "--no-progress"]
    assert main(["run", "--dataset", "ml-100k", "--data-dir", str(shared_datasets), *common,
                 "--out", str(tmp_path / "builtin")]) == 0
    assert main(["run", "--dataset", "file", "--param", f"path={paths['ratings']}",
                 "--param", f"item_features={paths['items']}",
                 "--param", f"user_features={paths['users']}", *common,
                 "--out", str(tmp_path / "file")]) == 0
    ref, got = (json.loads((tmp_path / k / "results.json").read_text())["models"]
                for k in ("builtin", "file"))
    for name in ("popularity", "wals"):
        assert got[name]["quality"] == ref[name]["quality"]
    a, b = got["softmax-in-batch"], ref["softmax-in-batch"]
    se = (a["quality_se"]["recall@20"] ** 2 + b["quality_se"]["recall@20"] ** 2) ** 0.5
    assert abs(a["quality"]["recall@20"] - b["quality"]["recall@20"]) <= 2 * se
