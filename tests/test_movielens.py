"""MovieLens loaders on small hand-written files of each format, bad input, and the real ml-100k."""

import hashlib
import shutil

import numpy as np
import pytest

from mfsoftmax.datasets import DatasetError, load
from mfsoftmax.datasets.movielens import (
    GENRES,
    YEAR_BUCKETS,
    age_bucket,
    ml_1m,
    ml_20m,
    ml_100k,
    ml_latest_small,
    year_bucket,
)

G = {g: k for k, g in enumerate(GENRES)}


def flags(*names):
    row = ["0"] * 19
    for n in names:
        row[G[n]] = "1"
    return "|".join(row)


def write_100k(root, data=None, items=None, users=None, occupations=True):
    d = root / "ml-100k"
    d.mkdir(parents=True, exist_ok=True)
    (d / "u.data").write_text(data if data is not None else (
        "10\t20\t4\t881250949\n"
        "10\t5\t3\t881250950\n"
        "3\t20\t5\t881250000\n"
        "7\t5\t1\t881250001\n"
    ))
    (d / "u.item").write_bytes((items if items is not None else (
        f"5|Caf\xe9 Story (1995)|01-Jan-1995||http://x|{flags('Action', 'Comedy')}\n"
        f"20|Old One (1931)|12-Mar-1931||http://y|{flags('Drama')}\n"
        f"99|Unrated (1990)|01-Jan-1990||http://z|{flags('War')}\n"
        f"21|unknown||||{flags('unknown')}\n"
    )).encode("latin-1"))
    (d / "u.user").write_text(users if users is not None else (
        "3|17|F|writer|11111\n"
        "7|56|M|artist|22222\n"
        "10|24|M|writer|33333\n"
    ))
    if occupations:
        (d / "u.occupation").write_text("artist\nwriter\n")
    return d


def test_ml100k_small_values_and_features(tmp_path):
    write_100k(tmp_path)
    d = ml_100k(data_dir=tmp_path)
    assert (d.n_users, d.n_items, d.n_interactions) == (3, 2, 4)  # unrated items 21, 99 dropped
    assert d.user_ids.tolist() == [3, 7, 10]
    assert d.item_ids.tolist() == [5, 20]
    dense = d.matrix.toarray()
    assert dense.tolist() == [[0, 5], [1, 0], [3, 4]]  # raw ratings as values
    # ratings and timestamps aligned with matrix.data
    assert d.ratings.tolist() == [5, 1, 3, 4]
    assert d.timestamps.tolist() == [881250000, 881250001, 881250950, 881250949]
    assert d.user_features["age_bucket"].tolist() == [0, 6, 1]  # 17 -> <18, 56 -> 56+, 24 -> 18-24
    assert d.user_features["gender"].tolist() == [0, 1, 1]
    assert d.user_features["occupation"].tolist() == [1, 0, 1]  # index in u.occupation
    genres = d.item_features["genres"]
    assert genres.shape == (2, len(GENRES))
    assert np.flatnonzero(genres[0]).tolist() == [G["Action"], G["Comedy"]]
    assert np.flatnonzero(genres[1]).tolist() == [G["Drama"]]
    yb = d.item_features["year_bucket"]
    assert [YEAR_BUCKETS[c] for c in yb] == ["1990s", "1930s"]
    assert d.meta["items_without_ratings_dropped"] == 2


def test_ml100k_without_occupation_file_uses_sorted_names(tmp_path):
    write_100k(tmp_path, occupations=False)
    d = ml_100k(data_dir=tmp_path / "ml-100k")  # the dataset folder itself is accepted too
    assert d.meta["occupations"] == ["artist", "writer"]
    assert d.user_features["occupation"].tolist() == [1, 0, 1]


def test_registry_load_binarises_and_thresholds(tmp_path):
    write_100k(tmp_path)
    d = load("ml-100k", data_dir=tmp_path)
    assert set(d.matrix.data.tolist()) == {1.0}
    assert d.ratings.tolist() == [5, 1, 3, 4]
    pos = load("ml-100k", data_dir=tmp_path, min_rating=4)
    assert pos.n_interactions == 2 and sorted(pos.ratings.tolist()) == [4, 5]


def test_feature_helpers():
    assert age_bucket(np.array([1, 17, 18, 24, 25, 34, 35, 44, 45, 49, 50, 55, 56, 90])).tolist() == [
        0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]
    codes = year_bucket(np.array([0, 1900, 1919, 1920, 1995, 2019, 2024]))
    assert [YEAR_BUCKETS[c] for c in codes] == ["unknown", "<1920", "<1920", "1920s", "1990s",
                                                "2010s", "2020s+"]


@pytest.mark.parametrize("line,expect", [
    ("10\t20\t4\n", "line 2: expected 4 tab-separated fields, found 3"),
    ("10,20,4,881250949\n", "line 2: expected 4 tab-separated fields, found 1"),
    ("abc\t20\t4\t881250949\n", "line 2, field 1: 'abc' is not a finite number"),
    ("10.5\t20\t4\t881250949\n", "line 2, field 1: user id 10.5 is not an integer"),
    ("10\t20\tnan\t881250949\n", "line 2, field 3: 'nan' is not a finite number"),
    ("10\t20\tfour\t881250949\n", "line 2, field 3: 'four' is not a finite number"),
    ("\n", "line 2: empty line"),
])
def test_ml100k_bad_ratings_lines(tmp_path, line, expect):
    write_100k(tmp_path, data="3\t20\t5\t881250000\n" + line + "7\t5\t1\t881250001\n")
    with pytest.raises(DatasetError) as err:
        ml_100k(data_dir=tmp_path)
    assert "u.data" in str(err.value) and expect in str(err.value)


def test_ml100k_bad_side_files(tmp_path):
    write_100k(tmp_path, items=f"5|A (1995)|01-Jan-1995||u|{flags('Drama')}\n20|B|x\n")
    with pytest.raises(DatasetError, match=r"u\.item, line 2: expected 24"):
        ml_100k(data_dir=tmp_path)
    write_100k(tmp_path, users="3|17|F|writer|1\nseven|56|M|artist|2\n10|24|M|writer|3\n")
    with pytest.raises(DatasetError, match=r"u\.user, line 2: user id 'seven' is not an integer"):
        ml_100k(data_dir=tmp_path)
    write_100k(tmp_path, users="3|17|F|writer|1\n10|24|M|writer|3\n")
    with pytest.raises(DatasetError, match=r"u\.user: user ids \[7\] have ratings"):
        ml_100k(data_dir=tmp_path)


def test_ml100k_empty_and_missing_files(tmp_path):
    write_100k(tmp_path, data="")
    with pytest.raises(DatasetError, match=r"u\.data: empty file"):
        ml_100k(data_dir=tmp_path)
    (tmp_path / "ml-100k" / "u.user").unlink()
    with pytest.raises(DatasetError, match="u.user"):
        ml_100k(data_dir=tmp_path)
    with pytest.raises(DatasetError, match="holds neither"):
        ml_100k(data_dir=tmp_path / "nowhere")


def test_md5sums_checked_when_present(tmp_path):
    d = write_100k(tmp_path)
    digest = hashlib.md5((d / "u.data").read_bytes()).hexdigest()
    (d / "MD5SUMS").write_text(f"{digest}  u.data\n")
    assert ml_100k(data_dir=tmp_path).n_interactions == 4
    (d / "u.data").write_text("3\t20\t5\t881250000\n")
    with pytest.raises(DatasetError, match=r"u\.data: MD5 .* does not match"):
        ml_100k(data_dir=tmp_path)


def write_1m(root, ratings=None):
    d = root / "ml-1m"
    d.mkdir(parents=True, exist_ok=True)
    (d / "ratings.dat").write_text(ratings if ratings is not None else (
        "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n"))
    (d / "movies.dat").write_bytes(
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "2000::Am\xe9lie (2001)::Comedy|Romance\n".encode("latin-1"))
    (d / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    return d


def test_ml1m_small(tmp_path):
    write_1m(tmp_path)
    d = ml_1m(data_dir=tmp_path)
    assert (d.n_users, d.n_items, d.n_interactions) == (2, 2, 3)
    assert d.item_ids.tolist() == [661, 1193]
    assert d.matrix.toarray().tolist() == [[3, 5], [0, 4]]
    assert d.timestamps.tolist() == [978302109, 978300760, 978298413]
    assert d.user_features["age_bucket"].tolist() == [0, 6]
    assert d.user_features["gender"].tolist() == [0, 1]
    assert d.user_features["occupation"].tolist() == [10, 16]
    g = d.item_features["genres"]
    assert np.flatnonzero(g[0]).tolist() == [G["Animation"], G["Children's"], G["Musical"]]
    assert [YEAR_BUCKETS[c] for c in d.item_features["year_bucket"]] == ["1990s", "1970s"]


def test_ml1m_errors(tmp_path):
    write_1m(tmp_path, ratings="1::1193::5::978300760\n1\t661\t3\t978302109\n")
    with pytest.raises(DatasetError, match=r"ratings\.dat, line 2: expected 4 '::'-separated"):
        ml_1m(data_dir=tmp_path)
    write_1m(tmp_path, ratings="1::1193::5::978300760\n1::x661::3::978302109\n")
    with pytest.raises(DatasetError, match=r"ratings\.dat, line 2, field 2: 'x661'"):
        ml_1m(data_dir=tmp_path)


def write_csv_release(root, name, ratings=None):
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "ratings.csv").write_text(ratings if ratings is not None else (
        "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,3.0,1260759179\n"
        "7,31,4.5,1260759000\n"))
    (d / "movies.csv").write_text(
        "movieId,title,genres\n"
        '31,"Dangerous Minds, The (1995)",Drama\n'
        "1029,Dumbo (1941),Animation|Children|IMAX\n"
        "5000,Nothing (2015),(no genres listed)\n")
    return d


@pytest.mark.parametrize("name,builder", [("ml-20m", ml_20m), ("ml-latest-small", ml_latest_small)])
def test_csv_releases(tmp_path, name, builder):
    write_csv_release(tmp_path, name)
    d = builder(data_dir=tmp_path)
    assert (d.n_users, d.n_items, d.n_interactions) == (2, 2, 3)
    assert d.matrix.toarray().tolist() == [[2.5, 3.0], [4.5, 0]]
    assert d.user_features == {}
    g = d.item_features["genres"]
    assert np.flatnonzero(g[1]).tolist() == [G["Animation"], G["Children's"], G["IMAX"]]
    assert [YEAR_BUCKETS[c] for c in d.item_features["year_bucket"]] == ["1990s", "1940s"]


def test_csv_release_errors(tmp_path):
    write_csv_release(tmp_path, "ml-20m", ratings="1,31,2.5,1260759144\n")
    with pytest.raises(DatasetError, match=r"ratings\.csv, line 1: expected header"):
        ml_20m(data_dir=tmp_path)
    write_csv_release(tmp_path, "ml-20m",
                      ratings="userId,movieId,rating,timestamp\n1,31,2.5,1\n1,32,NaN,2\n")
    with pytest.raises(DatasetError, match=r"ratings\.csv, line 3, field 3: 'NaN'"):
        ml_20m(data_dir=tmp_path)
    write_csv_release(tmp_path, "ml-20m", ratings="userId,movieId,rating,timestamp\n1,31,2.5\n")
    with pytest.raises(DatasetError, match=r"ratings\.csv, line 2: expected 4 comma-separated"):
        ml_20m(data_dir=tmp_path)


# ----------------------------------------------------------------------------- real data
@pytest.mark.ml100k
def test_real_ml100k(shared_datasets):
    d = ml_100k(data_dir=shared_datasets)
    assert (d.n_users, d.n_items, d.n_interactions) == (943, 1682, 100000)
    assert set(d.user_features) == {"age_bucket", "gender", "occupation"}
    assert set(d.item_features) == {"genres", "year_bucket"}
    assert d.item_features["genres"].shape == (1682, len(GENRES))
    assert d.item_features["genres"].sum(axis=1).min() >= 1  # every movie has a genre flag
    # first line of u.data: 196 242 3 881250949
    u, i = np.searchsorted(d.user_ids, 196), np.searchsorted(d.item_ids, 242)
    assert d.matrix[u, i] == 3
    row = slice(d.matrix.indptr[u], d.matrix.indptr[u + 1])
    assert d.timestamps[row][d.matrix.indices[row] == i].tolist() == [881250949]
    # first line of u.user: 1|24|M|technician|85711
    occ = (shared_datasets / "ml-100k" / "u.occupation").read_text().split()
    assert d.user_features["age_bucket"][0] == 1
    assert d.user_features["gender"][0] == 1
    assert d.user_features["occupation"][0] == occ.index("technician")
    # u.item line 1: Toy Story, 01-Jan-1995, Animation|Children's|Comedy
    assert np.flatnonzero(d.item_features["genres"][0]).tolist() == [
        G["Animation"], G["Children's"], G["Comedy"]]
    assert YEAR_BUCKETS[d.item_features["year_bucket"][0]] == "1990s"
    assert sorted(set(d.ratings.tolist())) == [1, 2, 3, 4, 5]


@pytest.mark.ml100k
def test_real_ml100k_md5_verified(shared_datasets, tmp_path):
    from mfsoftmax.datasets.download import verify_md5sums

    assert verify_md5sums(shared_datasets / "ml-100k")
    copy = tmp_path / "ml-100k"
    shutil.copytree(shared_datasets / "ml-100k", copy)
    for p in copy.iterdir():
        p.chmod(0o644)
    data = bytearray((copy / "u.data").read_bytes())
    data[0:1] = b"2"  # user 196 -> 296: still parses, but the MD5 no longer matches
    (copy / "u.data").write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"u\.data: MD5 .*MD5SUMS"):
        ml_100k(data_dir=tmp_path)
