"""The ``file`` loader on input that used to load silently wrong (or crash): column names that
collide, decimal commas, byte-order marks, ids beyond 64 bits, ratings <= 0 under binarisation,
compressed files and non-UTF-8 text. Each case is either read correctly or refused with one
``DatasetError`` line naming the file and the place."""

import bz2
import gzip
import lzma
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from mfsoftmax.datasets import DatasetError, columns, load, tokens
from mfsoftmax.datasets import files as F


def write(tmp_path, data, name="data.csv"):
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return p


def pairs(d):
    """{(raw user, raw item): value} of an Interactions."""
    m = d.matrix.tocoo()
    return {(d.user_ids[r], d.item_ids[c]): float(v) for r, c, v in zip(m.row, m.col, m.data, strict=False)}


# ----------------------------------------------------------------------------- column roles
PRODUCT = "p1,u1,5\np2,u1,4\np1,u2,3\n"
EXPECTED = {("u1", "p1"): 5, ("u1", "p2"): 4, ("u2", "p1"): 3}


@pytest.mark.parametrize("text", [
    "product,user,rating\n" + PRODUCT,
    "\ufeffitem,user,rating\n" + PRODUCT,  # the BOM used to hide the name "item"
    "ProductId,User ID,Rating\n" + PRODUCT,
])
def test_item_named_first_is_not_the_user_column(tmp_path, text):
    d = F.file_loader(path=str(write(tmp_path, text)))
    assert d.meta["columns"] == {"item": 0, "user": 1, "rating": 2}
    assert pairs(d) == EXPECTED  # not a diagonal user == item matrix
    assert d.user_ids.tolist() == ["u1", "u2"] and d.item_ids.tolist() == ["p1", "p2"]


@pytest.mark.parametrize("text,params,expect", [
    ("sku,user,rating\n" + PRODUCT, {},
     "cannot tell which column holds the item ids: no column is named like one (item, itemid, "
     "iid, items, ...) and column 2 ('user') is the user column (columns: sku, user, rating); "
     "pass --param user_col=NAME --param item_col=NAME"),
    ("user,user,rating\nu1,u2,5\n", {}, "columns 'user' and 'user' could each be the user column"),
    ("userId,movieId,itemId\n1,2,3\n", {}, "columns 'movieId' and 'itemId' could each be the item"),
    ("a,b,c\n1,2,3\n", {"user_col": 0, "item_col": "a"},
     "user_col and item_col both name column 1 ('a')"),
    ("1,2,3\n", {"item_col": 0},
     "cannot tell which column holds the user ids: no column is named like one"),
    ("1,2,3\n", {"user_col": False}, "user_col=false: the user column cannot be dropped"),
])
def test_ambiguous_columns_are_refused(tmp_path, text, params, expect):
    p = write(tmp_path, text)
    with pytest.raises(DatasetError) as err:
        F.file_loader(path=str(p), **params)
    assert str(err.value).startswith(str(p)) and expect in str(err.value)


def test_timestamp_named_third_is_not_also_the_rating(tmp_path):
    # used to read column 3 both as the rating (by position) and as the timestamp (by name)
    d = F.file_loader(path=str(write(tmp_path, "item,user,timestamp\np1,u1,100\np2,u1,200\n")))
    assert d.ratings is None and d.timestamps.tolist() == [100, 200]
    assert set(d.matrix.data.tolist()) == {1.0}


# ----------------------------------------------------------------------------- separators
def test_decimal_comma_with_semicolons(tmp_path):
    rows = [f"{u};{i};{r}" for u in range(1, 21) for i, r in ((6, "1,5"), (7, "4"), (8, "3,5"))]
    p = write(tmp_path, "\n".join(rows) + "\n")
    assert columns.detect_sep(p, p.read_bytes()) == b";"
    d = F.file_loader(path=str(p))
    assert (d.n_users, d.n_items, d.n_interactions) == (20, 3, 60)  # not 60 one-item "users"
    assert d.matrix.toarray()[0].tolist() == [1.5, 4, 3.5]
    # only decimal commas (no line without a comma): still the semicolon
    p2 = write(tmp_path, "1;6;1,5\n1;7;2,5\n2;6;4,5\n", "all.csv")
    assert pairs(F.file_loader(path=str(p2))) == {(1, 6): 1.5, (1, 7): 2.5, (2, 6): 4.5}
    # header, explicit sep, tab separator
    p3 = write(tmp_path, "user;item;rating\na;x;2,25\nb;x;3\n", "h.csv")
    assert pairs(F.file_loader(path=str(p3), sep=";")) == {("a", "x"): 2.25, ("b", "x"): 3}
    p4 = write(tmp_path, "1\t6\t1,5\n2\t6\t2,5\n", "t.tsv")
    assert pairs(F.file_loader(path=str(p4))) == {(1, 6): 1.5, (2, 6): 2.5}


def test_decimal_comma_in_a_comma_file_is_not_a_number(tmp_path):
    p = write(tmp_path, 'user,item,rating\na,x,"1,5"\n')
    with pytest.raises(DatasetError, match=r"line 2, field 3: rating '1,5' is not a finite"):
        F.file_loader(path=str(p))


@pytest.mark.parametrize("text,sep", [
    ("1,2,5\n3,4,1\n", b","),
    ("a;b,x,1\nc;d,y,2\n", b","),  # ';' inside string ids of a comma file
    ("1 6 1,5\n2 7 2,5\n", b" "),
    ("1::2::3\n4::5::6\n", b"::"),
])
def test_detect_sep_prefers_consistent_numeric_fields(text, sep):
    assert columns.detect_sep("x", text.encode()) == sep


# ----------------------------------------------------------------------------- text encoding
def test_bom_without_header_keeps_the_first_row(tmp_path):
    d = F.file_loader(path=str(write(tmp_path, b"\xef\xbb\xbf1,2,5\n3,4,1\n")))
    assert pairs(d) == {(1, 2): 5, (3, 4): 1}


def test_latin1_is_a_clean_error_or_read_with_encoding(tmp_path):
    p = write(tmp_path, "user,item\ncaf\xe9,x\nb,y\n".encode("latin-1"))
    with pytest.raises(DatasetError) as err:
        F.file_loader(path=str(p))
    assert str(err.value) == (
        f"{p}, line 2, column 4 (byte 14): byte 0xe9 is not valid UTF-8; the file is probably "
        "Latin-1 or Windows-1252: pass --param encoding=latin-1 (or cp1252), or re-encode it as "
        "UTF-8")
    d = F.file_loader(path=str(p), encoding="latin-1")
    assert d.user_ids.tolist() == ["b", "café"]
    with pytest.raises(DatasetError, match="encoding='klingon' is not a known text encoding"):
        F.file_loader(path=str(p), encoding="klingon")


def test_utf16_with_bom_is_read_and_nul_bytes_refused(tmp_path):
    p = write(tmp_path, "user\titem\nü\tx\n".encode("utf-16"))
    assert F.file_loader(path=str(p)).user_ids.tolist() == ["ü"]
    q = write(tmp_path, "user\titem\nü\tx\n".encode("utf-16-le"), "noBOM.tsv")
    with pytest.raises(DatasetError, match=r"noBOM\.tsv, line 1 \(byte 2\): NUL byte"):
        F.file_loader(path=str(q))


# ----------------------------------------------------------------------------- ids
def test_id_beyond_64_bits_is_refused(tmp_path):
    p = write(tmp_path, "1,99999999999999999999,5\n2,3,4\n")
    with pytest.raises(DatasetError) as err:
        F.file_loader(path=str(p))
    assert str(err.value) == (f"{p}, line 1, column 2: item id 99999999999999999999 does not fit "
                              "in a 64-bit integer")
    q = write(tmp_path, "user,item,rating\n5,x,5\n-99999999999999999999,x,4\n", "s.csv")
    with pytest.raises(DatasetError, match=r"s\.csv, line 3, column 1: user id -9999"):
        F.file_loader(path=str(q))
    # among string ids a long digit string is just another string
    r = write(tmp_path, "user,item\n99999999999999999999,x\nbob,x\n", "str.csv")
    assert F.file_loader(path=str(r)).user_ids.tolist() == ["99999999999999999999", "bob"]


def test_ids_beyond_float_precision_stay_distinct(tmp_path):
    big = 2**53
    p = write(tmp_path, f"1,{big},5\n1,{big + 1},4\n2,{2**63 - 1},3\n")
    d = F.file_loader(path=str(p))
    assert d.item_ids.tolist() == [big, big + 1, 2**63 - 1]  # float64 would merge the first two
    assert pairs(d) == {(1, big): 5, (1, big + 1): 4, (2, 2**63 - 1): 3}


def test_timestamp_beyond_64_bits_is_refused(tmp_path):
    p = write(tmp_path, "1,2,5,100\n2,3,4,1e30\n")
    with pytest.raises(DatasetError, match=r"line 2, column 4: timestamp 1e30 does not fit"):
        F.file_loader(path=str(p))


# ----------------------------------------------------------------------------- ratings <= 0
@pytest.mark.parametrize("bad", ["-1", "0"])
def test_nonpositive_rating_is_not_a_silent_positive(tmp_path, bad):
    p = write(tmp_path, f"user,item,rating\n1,2,5\n1,3,{bad}\n2,3,4\n")
    with pytest.raises(DatasetError) as err:
        load("file", path=str(p))  # binarised, no threshold
    assert str(err.value).startswith(
        f"{p}, line 3: rating {bad} is <= 0 (1 such, lowest {bad}) and binarising without a "
        "threshold would make it a positive: pass --min-rating T")
    pos = load("file", path=str(p), min_rating=1)
    assert pos.n_interactions == 2 and sorted(pos.ratings.tolist()) == [4, 5]
    raw = load("file", path=str(p), binary=False)
    assert sorted(raw.matrix.data.tolist()) == [float(bad), 4, 5]
    every = load("file", path=str(p), min_rating=-1)  # the user says so: all are positives
    assert every.n_interactions == 3 and set(every.matrix.data.tolist()) == {1.0}


def test_positive_ratings_and_pairs_still_binarise(tmp_path):
    assert load("file", path=str(write(tmp_path, "1,2,0.5\n"))).n_interactions == 1
    assert load("file", path=str(write(tmp_path, "1,2\n2,2\n", "p.csv"))).n_interactions == 2


# ----------------------------------------------------------------------------- compression
TEXT = b"user,item,rating\nu1,a,5\nu1,b,3\nu2,a,4\n"


def zipped(data: bytes, names=("inner.csv",)) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for n in names:
            zf.writestr(n, data)
    return buf.getvalue()


@pytest.mark.parametrize("kind,pack", [
    ("gz", gzip.compress), ("bz2", bz2.compress), ("xz", lzma.compress), ("zip", zipped),
    ("gz-in-zip", lambda b: zipped(gzip.compress(b), ("inner.csv.gz",))),
])
@pytest.mark.parametrize("named", [True, False])
def test_compressed_input_is_read_transparently(tmp_path, kind, pack, named):
    name = f"ratings.csv.{kind.split('-')[-1]}" if named else "ratings.csv"  # magic, not name
    d = F.file_loader(path=str(write(tmp_path, pack(TEXT), name)))
    assert pairs(d) == {("u1", "a"): 5, ("u1", "b"): 3, ("u2", "a"): 4}
    assert d.name == "ratings"


def test_bad_compressed_input(tmp_path):
    p = write(tmp_path, gzip.compress(TEXT)[:-12], "cut.csv.gz")
    with pytest.raises(DatasetError, match=r"cut\.csv\.gz: gzip data is corrupt or truncated"):
        F.file_loader(path=str(p))
    p = write(tmp_path, zipped(TEXT, ("a.csv", "b.csv")), "two.zip")
    with pytest.raises(DatasetError, match=r"two\.zip: zip archive holds 2 files \(a\.csv, b\.csv\)"):
        F.file_loader(path=str(p))
    p = write(tmp_path, b"(\xb5/\xfd" + b"\0" * 20, "x.csv.zst")
    with pytest.raises(DatasetError, match=r"x\.csv\.zst: this is a zstd archive"):
        F.file_loader(path=str(p))
    p = write(tmp_path, zipped(b"1,2,3\n1,x\n"), "bad.zip")  # errors name the member
    with pytest.raises(DatasetError, match=r"bad\.zip:inner\.csv, line 2: expected 3"):
        F.file_loader(path=str(p))


def test_text_starting_like_bzip2_is_still_text(tmp_path):
    p = write(tmp_path, "user,item\nBZh9,x\n")
    assert F.file_loader(path=str(p)).user_ids.tolist() == ["BZh9"]


# ----------------------------------------------------------------------------- command line
@pytest.mark.parametrize("data,expect", [
    (b"1,99999999999999999999,5\n", "line 1, column 2: item id 99999999999999999999"),
    ("user,item\ncaf\xe9,x\n".encode("latin-1"), "line 2, column 4 (byte 14): byte 0xe9"),
    (b"sku,user,rating\np,u,5\n", "cannot tell which column holds the item ids"),
    (b"1,2,-1\n", "line 1: rating -1 is <= 0"),
])
def test_cli_one_line_error_exit_2(tmp_path, data, expect):
    p = write(tmp_path, data, "x.csv")
    proc = subprocess.run([sys.executable, "-m", "mfsoftmax", "datasets", "show", "file",
                           "--param", f"path={p}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"mfsoftmax: {p}") and expect in proc.stderr


def test_factorize_of_exact_float_ids_unchanged():
    vals = np.array([3.0, 1.0, 3.0])
    assert tokens._exact_int_column(vals) and not tokens._exact_int_column(np.array([2.0**53]))
