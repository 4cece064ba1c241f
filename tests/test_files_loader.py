"""The generic ``file`` loader and the fast numeric parser."""

import numpy as np
import pytest

from mfsoftmax.datasets import DatasetError, load, textparse
from mfsoftmax.datasets import files as F


def write(tmp_path, text, name="data.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_header_string_ids_sorted_and_latest_duplicate(tmp_path):
    p = write(tmp_path, "user,item,rating,timestamp\nbob,x,4,20\nalice,y,2.5,10\nbob,x,1,5\n"
                        "alice,x,3,30\n")
    d = F.file_loader(path=str(p))
    assert d.user_ids.tolist() == ["alice", "bob"] and d.item_ids.tolist() == ["x", "y"]
    assert d.matrix.toarray().tolist() == [[3, 2.5], [4, 0]]  # bob,x: ts 20 beats ts 5
    assert d.timestamps.tolist() == [30, 10, 20]
    assert d.name == "data"


def test_tsv_no_header_numeric_ids_detected(tmp_path):
    p = write(tmp_path, "10\t7\t5\n2\t7\t3\n10\t3\t1\n", "x.tsv")
    d = F.file_loader(path=str(p))
    assert d.user_ids.tolist() == [2, 10] and d.item_ids.tolist() == [3, 7]  # numeric order
    assert d.matrix.toarray().tolist() == [[0, 3], [1, 5]]
    assert d.timestamps is None


def test_pairs_only_values_are_one(tmp_path):
    p = write(tmp_path, "u1 i1\nu2   i1\n  u2 i2\n", "pairs.txt")
    d = F.file_loader(path=str(p))
    assert d.matrix.toarray().tolist() == [[1, 0], [1, 1]] and d.ratings is None


@pytest.mark.parametrize("sep", ["::", ";", "|"])
def test_other_separators(tmp_path, sep):
    p = write(tmp_path, f"1{sep}5{sep}4{sep}100\n2{sep}5{sep}2{sep}200\n")
    d = F.file_loader(path=str(p))
    assert d.matrix.toarray().tolist() == [[4], [2]] and d.timestamps.tolist() == [100, 200]


def test_explicit_columns_by_name_and_position(tmp_path):
    p = write(tmp_path, "ts,score,movie,who\n100,4,m1,u1\n200,5,m2,u1\n")
    d = F.file_loader(path=str(p), user_col="who", item_col="movie", rating_col="score",
                      timestamp_col=0)
    assert d.user_ids.tolist() == ["u1"] and d.item_ids.tolist() == ["m1", "m2"]
    assert d.ratings.tolist() == [4, 5] and d.timestamps.tolist() == [100, 200]
    d2 = F.file_loader(path=str(p), user_col=3, item_col=2, rating_col=False, timestamp_col=False)
    assert d2.ratings is None and d2.timestamps is None and d2.n_interactions == 2
    with pytest.raises(DatasetError, match="user_col='nobody' is not a column name"):
        F.file_loader(path=str(p), user_col="nobody")
    with pytest.raises(DatasetError, match="item_col=9 is outside"):
        F.file_loader(path=str(p), item_col=9)


def test_quoted_fields(tmp_path):
    p = write(tmp_path, 'user,item,rating\n"a, b",x,1\nc,"y ""z""",2\n')
    d = F.file_loader(path=str(p))
    assert d.user_ids.tolist() == ["a, b", "c"] and d.item_ids.tolist() == ["x", 'y "z"']


def test_registry_relative_path(tmp_path):
    write(tmp_path, "1,2,5\n1,3,1\n2,3,4\n")
    d = load("file", data_dir=tmp_path, path="data.csv", min_rating=4)
    assert d.n_interactions == 2 and set(d.matrix.data.tolist()) == {1.0}


@pytest.mark.parametrize("text,expect", [
    ("user,item,rating\n1,2,5\n1,2\n", "line 3: expected 3 comma-separated fields, found 2"),
    ("1,2,5\n1,3,NaN\n", "line 2, field 3: rating 'NaN' is not a finite number"),
    ("u,i,rating\na,b,5\nc,d,lots\n", "line 3, field 3: rating 'lots' is not a finite number"),
    ("u,i,rating\na,b,5\n,d,1\n", "line 3: empty user id"),
    ("   \n\n", "empty file"),
    ("user,item,rating\n", "no data lines after the header"),
])
def test_bad_input(tmp_path, text, expect):
    p = write(tmp_path, text)
    with pytest.raises(DatasetError) as err:
        F.file_loader(path=str(p))
    assert str(p) in str(err.value) and expect in str(err.value)


def test_missing_file_and_path(tmp_path):
    with pytest.raises(DatasetError, match="file not found"):
        F.file_loader(path=str(tmp_path / "nope.csv"))
    with pytest.raises(DatasetError, match="needs a path"):
        F.file_loader()


def test_parquet(tmp_path):
    import polars as pl  # Parquet is read by polars, a core dependency (no pyarrow needed)

    pl.DataFrame({"user": ["a", "b"], "item": [1, 2], "rating": [3.0, 4.0]}).write_parquet(
        tmp_path / "x.parquet")
    d = F.file_loader(path=str(tmp_path / "x.parquet"))
    assert d.matrix.toarray().tolist() == [[3, 0], [0, 4]]
    with pytest.raises(DatasetError, match="file not found"):
        F.file_loader(path=str(tmp_path / "y.parquet"))


# ----------------------------------------------------------------------------- numeric parser
def test_parse_numeric_fast_path_matches_float_parser():
    rng = np.random.default_rng(0)
    vals = rng.normal(0, 1000, 4000) * rng.choice([1, 1e-3, 1e6], 4000)
    for dec in (0, 1, 3, 6):
        text = "\n".join(",".join(f"{v:.{dec}f}" for v in row) for row in vals.reshape(-1, 4))
        text += "\n"
        fast = textparse._parse_plain(text.encode(), b",", 4000)
        ref = np.array([float(t) for t in text.replace("\n", ",").split(",")[:-1]])
        assert fast is not None and np.array_equal(fast, ref)
    assert textparse._parse_plain(b"1e5,2\n", b",", 2) is None  # exponent: left to the general parser
    assert textparse._parse_plain(b".5,2\n", b",", 2) is None
    got, first = textparse.parse_numeric("x", b"1e5 ,  -2.25\r\n3,4\n", b",", 2)
    assert got.tolist() == [[1e5, -2.25], [3, 4]] and first == 1


def test_line_numbers_across_chunks(monkeypatch):
    monkeypatch.setattr(textparse, "CHUNK_BYTES", 64)
    lines = [f"{k}\t{k + 1}\t3\t{1000 + k}" for k in range(200)]
    lines[150] = "150\t151\tx\t1150"
    buf = ("\n".join(lines) + "\n").encode()
    with pytest.raises(DatasetError, match=r"f\.txt, line 151, field 3: 'x'"):
        textparse.parse_numeric("f.txt", buf, b"\t", 4)
    lines[150] = "150\t151\t3"
    with pytest.raises(DatasetError, match=r"f\.txt, line 151: expected 4"):
        textparse.parse_numeric("f.txt", ("\n".join(lines) + "\n").encode(), b"\t", 4)
    lines[150] = "150\t151\t3\t1150"
    got, _ = textparse.parse_numeric("f.txt", ("h\n" + "\n".join(lines)).encode(), b"\t", 4, header=True)
    assert got.shape == (200, 4) and got[199].tolist() == [199, 200, 3, 1199]


def test_factorize_ints_matches_unique():
    rng = np.random.default_rng(1)
    for values in (rng.integers(-5, 50, 300), rng.integers(0, 10**12, 300), np.array([7])):
        uniq, inv = textparse.factorize_ints(values)
        ref_u, ref_i = np.unique(values, return_inverse=True)
        assert np.array_equal(uniq, ref_u) and np.array_equal(inv, ref_i.ravel())
