"""The ``file`` loader's polars path (issue 25) and its input (issue 29, items 5 and 21):
Parquet with missing ids is refused naming the row and column, integer ids stay integers, ISO-8601
times and dates are read, a timestamp column can be skipped, and the polars path gives exactly
what the exact parser gives, falling back to it only to name a bad line."""

import gzip

import numpy as np
import polars as pl
import pytest

from mfsoftmax.cli import main as cli_main
from mfsoftmax.datasets import DatasetError, load
from mfsoftmax.datasets import files as F


def write(tmp_path, text, name="d.csv"):
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


def no_exact(monkeypatch):
    """Make the exact parser fail loudly: the load must have taken the polars path."""
    def boom(*a, **k):
        raise AssertionError("the exact parser was used")
    monkeypatch.setattr(F, "read_interactions_table", boom)


def same(a, b):
    assert a.matrix.shape == b.matrix.shape
    assert np.array_equal(a.matrix.indptr, b.matrix.indptr)
    assert np.array_equal(a.matrix.indices, b.matrix.indices)
    assert np.array_equal(a.matrix.data, b.matrix.data)
    assert a.user_ids.tolist() == b.user_ids.tolist() and a.item_ids.tolist() == b.item_ids.tolist()
    for k in ("timestamps", "ratings"):
        x, y = getattr(a, k), getattr(b, k)
        assert (x is None and y is None) or np.array_equal(x, y)


# ----------------------------------------------------------------------------- Parquet (item 5)
@pytest.mark.parametrize("table,expect", [
    ({"user": [1, None, 3], "item": [1, 2, 3], "rating": [1.0, 2, 3]},
     "row 2, column 1: missing user id (null)"),
    ({"user": ["a", "b", "c"], "item": ["x", None, "y"]}, "row 2, column 2: missing item id (null)"),
    ({"user": ["a", " ", "c"], "item": ["x", "y", "z"]}, "row 2, column 1: empty user id"),
    ({"user": [1, 2, 3], "item": [5, 6, 7], "rating": [1.0, None, 3]},
     "row 2, column 3: missing rating (null)"),
    ({"user": [1, 2, 3], "item": [5, 6, 7], "rating": [1.0, float("inf"), 3]},
     "row 2, column 3: rating inf is not a finite number"),
])
def test_parquet_missing_values_are_refused(tmp_path, table, expect):
    p = tmp_path / "x.parquet"
    pl.DataFrame(table).write_parquet(p)
    with pytest.raises(DatasetError) as exc:
        load("file", path=str(p))
    assert str(exc.value) == f"{p}, {expect}"


def test_parquet_ids_stay_integers_and_times_are_read(tmp_path):
    p = tmp_path / "x.parquet"
    pl.DataFrame({"user": [10, 2, 10], "item": [5.0, 6.0, 7.0], "rating": [1.0, 2.0, 3.0],
                  "timestamp": pl.Series(["2020-01-02", "2020-01-03", "2020-01-04"]).str.to_date()}
                 ).write_parquet(p)
    d = load("file", path=str(p), binary=False)
    assert d.user_ids.tolist() == [2, 10] and d.user_ids.dtype.kind == "i"
    assert d.item_ids.tolist() == [5, 6, 7] and d.item_ids.dtype.kind == "i"  # not "5.0"
    assert d.timestamps.tolist() == [1578009600, 1577923200, 1578096000]


def test_cli_parquet_null_id_exit_2(tmp_path, capsys):
    p = tmp_path / "x.parquet"
    pl.DataFrame({"user": [1, None], "item": [1, 2]}).write_parquet(p)
    assert cli_main(["datasets", "show", "file", "--param", f"path={p}"]) == 2
    err = capsys.readouterr().err
    assert err == f"mfsoftmax: {p}, row 2, column 1: missing user id (null)\n"


# ----------------------------------------------------------------------------- times (item 21)
ISO = ("user,item,rating,timestamp\n1,10,4,2020-01-02T10:00:00Z\n1,11,3,2020-01-02T10:00:01+02:00\n"
       "2,10,5,2020-01-03 11:00:00\n2,12,5,2020-01-03T11:00:00.75\n3,10,1,2020-01-04\n")
ISO_SECONDS = [1577959200, 1577952001, 1578049200, 1578049200, 1578096000]


def test_iso_times_and_dates_are_read(tmp_path, monkeypatch):
    p = write(tmp_path, ISO)
    no_exact(monkeypatch)
    d = load("file", path=str(p), binary=False)
    assert d.timestamps.tolist() == ISO_SECONDS


def test_iso_times_on_the_exact_path(tmp_path):
    # quoted string ids with a separator inside go through the token parser
    text = ISO.replace("\n1,", '\n"a,1",').replace("\n2,", '\n"b,2",').replace("\n3,", '\n"c,3",')
    t = F.read_interactions_table(write(tmp_path, text))
    assert t["timestamp"].tolist() == ISO_SECONDS


@pytest.mark.parametrize("spec", ["", "none", "None", False])
def test_timestamp_column_can_be_skipped(tmp_path, spec):
    p = write(tmp_path, "user,item,rating,timestamp\n1,10,4,2020-01-02\n2,11,3,yesterday\n")
    with pytest.raises(DatasetError, match=r"line 3, field 4: timestamp 'yesterday' is not a "
                       r"time; read are integer or decimal seconds .* and dates \(2020-01-02\)"):
        load("file", path=str(p))
    d = load("file", path=str(p), timestamp_col=spec)
    assert d.timestamps is None and d.n_interactions == 2


def test_cli_timestamp_col_none(tmp_path, capsys):
    p = write(tmp_path, "user,item,time\n1,10,soon\n2,11,later\n")
    assert cli_main(["datasets", "show", "file", "--param", f"path={p}",
                     "--param", "timestamp_col=none"]) == 0
    assert "timestamps     no" in capsys.readouterr().out


# ----------------------------------------------------------------------------- polars = exact
def _random_table(rng, n, string_ids=False, dup=False):
    users = rng.integers(1, 60, n)
    items = rng.integers(1, 300, n) if dup else None
    if not dup:  # distinct pairs
        keys = rng.choice(60 * 300, size=n, replace=False)
        users, items = keys // 300 + 1, keys % 300 + 1
    ratings = rng.integers(1, 11, n) / 2
    ts = rng.integers(800_000_000, 1_400_000_000, n)
    u = [f"u{x}" for x in users] if string_ids else users.tolist()
    return "user,item,rating,timestamp\n" + "".join(
        f"{a},{b},{c},{d}\n" for a, b, c, d in zip(u, items.tolist(), ratings.tolist(), ts.tolist(),
                                                   strict=True))


@pytest.mark.parametrize("string_ids", [False, True])
@pytest.mark.parametrize("dup", [False, True])
@pytest.mark.parametrize("pack", ["plain", "gzip"])
def test_polars_path_matches_the_exact_parser(tmp_path, monkeypatch, string_ids, dup, pack):
    text = _random_table(np.random.default_rng(3), 3000, string_ids, dup).encode()
    p = write(tmp_path, gzip.compress(text) if pack == "gzip" else text, "d.csv")
    ref = F.read_interactions_table(write(tmp_path, text, "ref.csv"))
    ref_data = F.file_loader(path=str(p))  # for comparison below, built the normal way
    no_exact(monkeypatch)
    fast = F.file_loader(path=str(p))
    same(fast, ref_data)
    # polars hands out read-only views: what the Interactions holds is its own, writeable
    for arr in (fast.matrix.data, fast.matrix.indices, fast.ratings, fast.timestamps):
        assert arr.flags.writeable
    assert fast.user_ids.tolist() == ref["user"][0].tolist()
    assert fast.n_interactions == len(set(zip(ref["user"][1].tolist(), ref["item"][1].tolist(),
                                              strict=True)))


def test_large_ids_use_64_bits_on_the_polars_path(tmp_path, monkeypatch):
    p = write(tmp_path, "user,item,timestamp\n9007199254740993,1,1700000000000\n"
                        "9007199254740992,2,1700000000001\n")
    no_exact(monkeypatch)
    d = load("file", path=str(p), binary=False)
    assert d.user_ids.tolist() == [9007199254740992, 9007199254740993]
    assert sorted(d.timestamps.tolist()) == [1700000000000, 1700000000001]


@pytest.mark.parametrize("body,expect", [
    ("1,2,3\n4,,6\n", "line 3: empty item id"),
    ("1,2,3\n\n4,5,6\n", "line 3: empty line"),
    ("1,2,3\n4,5\n", "line 3: expected 3"),
    ("1,2,3\n4,5,6,7\n", "line 3: expected 3"),
    ("1,2,3\n4,5,nan\n", "line 3, field 3: rating 'nan' is not a finite number"),
])
def test_bad_lines_fall_back_to_name_the_line(tmp_path, body, expect):
    p = write(tmp_path, "user,item,rating\n" + body)
    with pytest.raises(DatasetError, match=expect):
        load("file", path=str(p))


def test_bad_utf8_past_the_first_64_kib_is_named(tmp_path):
    lines = "".join(f"u{k},i{k % 50},3\n" for k in range(8000))
    p = write(tmp_path, ("user,item,rating\n" + lines).encode() + b"caf\xe9,i1,3\n")
    with pytest.raises(DatasetError, match=r"line 8002, column 4 \(byte 93311\): byte 0xe9 is "
                       "not valid UTF-8"):
        load("file", path=str(p))


# ----------------------------------------------------------------------------- first-load work
def test_factorize_ints_by_blocks_equals_unique(monkeypatch):
    """The presence-table path works block by block (small index temporaries): the same codes
    as np.unique across block edges, offsets, both widths and a sorted column."""
    from mfsoftmax.datasets import textparse

    monkeypatch.setattr(textparse, "_BLOCK", 1000)
    rng = np.random.default_rng(3)
    for dtype in (np.int32, np.int64):
        for lo in (0, 17, -40):
            v = (rng.integers(0, 5000, 10_007) + lo).astype(dtype)
            uniq, codes = textparse.factorize_ints(v)
            expect_u, expect_c = np.unique(v, return_inverse=True)
            assert uniq.tolist() == expect_u.tolist() and codes.tolist() == expect_c.tolist()
    uniq, codes = textparse.factorize_ints(np.sort(v))
    assert codes.tolist() == np.unique(np.sort(v), return_inverse=True)[1].tolist()


def test_numpy_column_of_a_chunked_series():
    from mfsoftmax.datasets.fastread import numpy_column

    s = pl.concat([pl.Series("t", [1, 2], dtype=pl.Int32), pl.Series("t", [3], dtype=pl.Int32)],
                  rechunk=False)
    assert s.n_chunks() == 2
    out = numpy_column(s, np.int64)
    assert out.dtype == np.int64 and out.tolist() == [1, 2, 3]
    assert numpy_column(s).dtype == np.int32


def test_small_pages_switches_numpy_hugepages_off_and_back():
    from numpy._core.multiarray import _set_madvise_hugepage as switch

    from mfsoftmax.datasets.core import small_pages

    before = switch(True)
    try:
        with small_pages():
            assert switch(False) is False  # off inside
        assert switch(True) is True  # restored
    finally:
        switch(before)
