"""The polars fast path of the MovieLens ratings readers and the parsed-array cache."""

import json
import os

import numpy as np
import pytest

from mfsoftmax.datasets import DatasetError, download, movielens, parsecache
from mfsoftmax.datasets.movielens import ml_1m, ml_20m, read_ratings

pl = pytest.importorskip("polars")

HEADER = "userId,movieId,rating,timestamp\n"


def same(a, b):
    assert a.matrix.shape == b.matrix.shape
    assert (a.matrix != b.matrix).nnz == 0
    np.testing.assert_array_equal(a.matrix.indptr, b.matrix.indptr)
    np.testing.assert_array_equal(a.matrix.indices, b.matrix.indices)
    np.testing.assert_array_equal(a.matrix.data, b.matrix.data)
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    np.testing.assert_array_equal(a.ratings, b.ratings)
    np.testing.assert_array_equal(a.user_ids, b.user_ids)
    np.testing.assert_array_equal(a.item_ids, b.item_ids)


def write_release(folder, body, n_items=2000):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_text(HEADER + body)
    (folder / "movies.csv").write_text("movieId,title,genres\n" + "".join(
        f"{m},Movie {m} (199{m % 10}),Drama|Comedy\n" for m in range(1, n_items + 1)))
    return folder


@pytest.fixture
def ml100k_as_20m(shared_datasets, tmp_path):
    """The real ml-100k ratings rewritten in the ml-20m ``ratings.csv`` format."""
    rows = (shared_datasets / "ml-100k" / "u.data").read_text().split()
    u, i, r, t = (np.array(rows[k::4], dtype=np.int64) for k in range(4))
    half = np.where(np.arange(len(r)) % 3 == 0, 0.5, 0.0)  # some x.5 ratings, as in ml-20m
    body = "".join(f"{a},{b},{c:.1f},{d}\n" for a, b, c, d in
                   zip(u.tolist(), i.tolist(), (r - half).tolist(), t.tolist(), strict=True))
    return write_release(tmp_path / "ml-20m", body)


@pytest.mark.ml100k
def test_fast_path_equals_numpy_path_on_real_ml100k(ml100k_as_20m, monkeypatch):
    calls = []
    real = movielens._read_ratings_numpy
    monkeypatch.setattr(movielens, "_read_ratings_numpy",
                        lambda *a, **k: calls.append(a) or real(*a, **k))
    fast = ml_20m(data_dir=ml100k_as_20m)
    assert not calls  # the fast path did the whole parse
    monkeypatch.setattr(movielens, "_polars", lambda: None)
    slow = ml_20m(data_dir=ml100k_as_20m)
    assert calls
    assert fast.n_interactions == 100_000
    same(fast, slow)


@pytest.mark.ml100k
def test_fast_path_equals_numpy_path_tab_and_double_colon(shared_datasets, tmp_path):
    udata = shared_datasets / "ml-100k" / "u.data"
    dat = tmp_path / "ratings.dat"
    dat.write_text(udata.read_text().replace("\t", "::"))
    for path, sep in ((udata, b"\t"), (dat, b"::")):
        fast = read_ratings(path, sep, header=False)
        slow = movielens._read_ratings_numpy(path, sep, header=False)
        for c in ("user", "item", "rating", "timestamp"):
            # the polars path reads 32-bit integers and floats when the values fit
            assert fast[c].dtype.kind == slow[c].dtype.kind
            np.testing.assert_array_equal(fast[c], slow[c])


@pytest.mark.parametrize("line,expect", [
    ("1,2,x,4", r"ratings\.csv, line 5, field 3: 'x' is not a finite number"),
    ("1,2,3", r"ratings\.csv, line 5: expected 4 comma-separated fields, found 3"),
    ("1,2,3,4,5", r"ratings\.csv, line 5: expected 4 comma-separated fields, found 5"),
    ("", r"ratings\.csv, line 5: empty line"),
    ("1,2,nan,4", r"ratings\.csv, line 5, field 3: 'nan' is not a finite number"),
    ('"1",2,3,4', r"ratings\.csv, line 5, field 1"),
    ("1,2.5,3,4", r"ratings\.csv, line 5, field 2: item id 2\.5 is not an integer"),
])
def test_malformed_row_names_file_and_line(tmp_path, line, expect):
    folder = write_release(tmp_path / "ml-20m", "1,1,4.0,10\n2,1,3.5,11\n3,2,1.0,12\n"
                           + line + "\n4,2,5.0,13\n")
    with pytest.raises(DatasetError, match=expect):
        ml_20m(data_dir=folder)


def test_malformed_double_colon_row(tmp_path):
    d = tmp_path / "ml-1m"
    d.mkdir()
    (d / "ratings.dat").write_text("1::10::5::100\n2::10::4::101\n2:10::4::102\n")
    with pytest.raises(DatasetError, match=r"ratings\.dat, line 3: expected 4 '::'-separated"):
        read_ratings(d / "ratings.dat", b"::", header=False)
    (d / "ratings.dat").write_text("1::10::5::100\n2::10::4::1x1\n")
    with pytest.raises(DatasetError, match=r"ratings\.dat, line 2, field 4"):
        read_ratings(d / "ratings.dat", b"::", header=False)


def test_unusual_but_valid_input_still_accepted(tmp_path):
    """What polars rejects but the old parser accepted (integral floats, spaces, trailing blank
    lines, a BOM) still loads, through the fallback."""
    path = tmp_path / "ratings.csv"
    path.write_bytes(("\ufeff" + HEADER + "1.0,2, 3.5 ,1e3\n4,5,1,6\n\n\n").encode())
    r = read_ratings(path, b",", header=True)
    assert r["user"].tolist() == [1, 4] and r["timestamp"].tolist() == [1000, 6]
    assert r["rating"].tolist() == [3.5, 1.0]


def test_missing_and_empty_ratings_file(tmp_path):
    with pytest.raises(DatasetError, match="file not found"):
        read_ratings(tmp_path / "nope.csv", b",", header=True)
    folder = write_release(tmp_path / "ml-20m", "")
    with pytest.raises(DatasetError, match="no data lines after the header"):
        ml_20m(data_dir=folder)
    (folder / "ratings.csv").write_text("")
    with pytest.raises(DatasetError, match="empty file"):
        ml_20m(data_dir=folder)


# ----------------------------------------------------------------------------- cache
BODY = "".join(f"{u},{1 + (u * 7) % 50},{(u % 10 + 1) / 2:.1f},{1000 + u}\n" for u in range(1, 400))


@pytest.fixture
def cached(monkeypatch):
    monkeypatch.setattr(parsecache, "MIN_BYTES", 0)
    monkeypatch.delenv("MFSOFTMAX_PARSE_CACHE", raising=False)
    calls = []
    real = movielens.read_ratings
    monkeypatch.setattr(movielens, "read_ratings",
                        lambda *a, **k: calls.append(a) or real(*a, **k))
    return calls


def test_data_dir_cache_hit_and_invalidation(tmp_path, cached, monkeypatch):
    folder = write_release(tmp_path / "ml-20m", BODY, n_items=50)
    cache = tmp_path / "cache"
    first = ml_20m(data_dir=folder, cache=cache)
    assert len(cached) == 1
    # one entry, the finished Interactions (no second entry of parsed columns)
    assert not list((cache / "parsed").glob("*.parsed.npz"))
    entries = list((cache / "parsed").glob("ratings-*" + parsecache.BUILT_SUFFIX))
    assert len(entries) == 1
    assert not list(folder.glob("*.npz"))  # nothing written into the user's folder
    key = json.loads(str(np.load(entries[0])["key"]))
    assert key["sources"][0]["sha256"] == download.file_digest(folder / "ratings.csv")

    def boom(*a, **k):
        raise AssertionError("parsed again despite a fresh cache entry")

    monkeypatch.setattr(movielens, "read_ratings", boom)
    same(ml_20m(data_dir=folder, cache=cache), first)

    # same size, new content: a stale key means a re-parse
    monkeypatch.setattr(movielens, "read_ratings", lambda *a, **k: cached.append(a)
                        or movielens._read_ratings_numpy(*a, **k))
    text = (folder / "ratings.csv").read_text()
    (folder / "ratings.csv").write_text(text.replace("\n1,8,1.0,1001\n", "\n1,9,1.0,1001\n"))
    changed = ml_20m(data_dir=folder, cache=cache)
    assert len(cached) == 2
    assert changed.matrix[0, changed.item_ids.tolist().index(9)] == 1.0
    ml_20m(data_dir=folder, cache=cache)
    assert len(cached) == 2  # the rewritten entry is fresh again

    # an unreadable entry is replaced
    entries[0].write_bytes(b"not a zip")
    same(ml_20m(data_dir=folder, cache=cache), changed)
    assert len(cached) == 3


def test_cache_off_and_small_files(tmp_path, cached, monkeypatch):
    folder = write_release(tmp_path / "ml-20m", BODY, n_items=50)
    monkeypatch.setenv("MFSOFTMAX_PARSE_CACHE", "0")
    ml_20m(data_dir=folder, cache=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
    monkeypatch.delenv("MFSOFTMAX_PARSE_CACHE")
    monkeypatch.setattr(parsecache, "MIN_BYTES", 1 << 20)
    ml_20m(data_dir=folder, cache=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_download_cache_entry_next_to_file_keyed_by_manifest(tmp_path, cached, monkeypatch):
    root = tmp_path / "root"
    folder = write_release(root / "ml-20m", BODY, n_items=50)
    marker = {"format": download.MARKER_FORMAT, "archive": "ml-20m",
              "sha256": download.ARCHIVES["ml-20m"].sha256, "files": download._manifest(folder)}
    (folder / download.MARKER).write_text(json.dumps(marker))
    first = ml_20m(cache=root)
    entry = folder / ("ratings" + parsecache.BUILT_SUFFIX)
    assert entry.is_file() and len(cached) == 1
    key = json.loads(str(np.load(entry)["key"]))
    assert key["sources"][0]["sha256"] == marker["files"]["ratings.csv"][1]
    assert not list(folder.glob(".*.part"))  # written atomically, no temporaries left
    same(ml_20m(cache=root), first)
    assert len(cached) == 1
    assert download.check_cache(folder, download.ARCHIVES["ml-20m"]) is None  # still intact


def test_ml1m_ratings_cached(tmp_path, cached, monkeypatch, capsys):
    d = tmp_path / "ml-1m"
    d.mkdir()
    (d / "ratings.dat").write_text("1::10::5::100\n2::10::4::101\n2::20::3::102\n")
    (d / "movies.dat").write_text("10::A (1995)::Drama\n20::B (1980)::Comedy|War\n")
    (d / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    first = ml_1m(data_dir=tmp_path, cache=tmp_path / "cache")
    second = ml_1m(data_dir=tmp_path, cache=tmp_path / "cache")
    assert len(cached) == 1
    same(first, second)
    os.utime(d / "ratings.dat", ns=(1, 1))  # mtime changed, content not: still a hit (SHA-256)
    ml_1m(data_dir=tmp_path, cache=tmp_path / "cache")
    assert len(cached) == 1

    # an unreadable entry is reported on stderr and replaced
    [entry] = (tmp_path / "cache" / "parsed").glob("ratings-*" + parsecache.SUFFIX)
    entry.write_bytes(b"not a zip")
    capsys.readouterr()
    same(ml_1m(data_dir=tmp_path, cache=tmp_path / "cache"), first)
    assert len(cached) == 2
    assert f"cache entry {entry} is unreadable" in capsys.readouterr().err


def test_finished_interactions_cached(tmp_path, cached, monkeypatch):
    """The second load reads the finished CSR arrays: no parse, no assembly; a changed
    movies.csv, a corrupt entry or another BUILT_FORMAT rebuilds it."""
    folder = write_release(tmp_path / "ml-20m", BODY, n_items=50)
    cache = tmp_path / "cache"
    first = ml_20m(data_dir=folder, cache=cache)
    built = list((cache / "parsed").glob("ratings-*" + parsecache.BUILT_SUFFIX))
    assert len(built) == 1 and len(cached) == 1
    key = json.loads(str(np.load(built[0])["key"]))
    assert [s["source"] for s in key["sources"]] == ["ratings.csv", "movies.csv"]
    assembled = []
    real = movielens._assemble
    monkeypatch.setattr(movielens, "_assemble", lambda *a, **k: assembled.append(1) or real(*a, **k))
    second = ml_20m(data_dir=folder, cache=cache)
    assert assembled == [] and len(cached) == 1
    same(second, first)
    assert second.name == first.name == "ml-20m"
    np.testing.assert_array_equal(second.item_features["genres"], first.item_features["genres"])
    np.testing.assert_array_equal(second.item_features["year_bucket"],
                                  first.item_features["year_bucket"])
    assert second.meta == first.meta
    assert second.matrix.has_sorted_indices

    # movies.csv changed: assembled again (from the parsed columns: no re-parse)
    text = (folder / "movies.csv").read_text()
    (folder / "movies.csv").write_text(text.replace("Drama|Comedy\n", "Drama\n", 1))
    third = ml_20m(data_dir=folder, cache=cache)
    assert assembled == [1] and len(cached) == 1
    assert third.item_features["genres"].sum() == first.item_features["genres"].sum() - 1
    ml_20m(data_dir=folder, cache=cache)
    assert assembled == [1]  # fresh again

    built[0].write_bytes(b"not a zip")
    same(ml_20m(data_dir=folder, cache=cache), first)
    assert assembled == [1, 1]
    monkeypatch.setattr(parsecache, "BUILT_FORMAT", parsecache.BUILT_FORMAT + 1)
    ml_20m(data_dir=folder, cache=cache)
    assert assembled == [1, 1, 1]


def test_cache_entry_smaller_than_source_and_big_files_not_hashed(tmp_path, cached, monkeypatch):
    """The first load writes one entry, well under the size of ``ratings.csv``; a file over
    HASH_ON_LOAD_BYTES is keyed by size and mtime (not read again to hash it): unchanged it is
    a hit without hashing, touched it is parsed again."""
    rng = np.random.default_rng(0)
    n = 20_000
    users = np.sort(rng.integers(1, 2000, n))
    body = "".join(f"{u},{1 + k % 50},{(k % 10 + 1) / 2:.1f},{1_400_000_000 + k}\n"
                   for k, u in enumerate(users.tolist()))
    folder = write_release(tmp_path / "ml-20m", body, n_items=50)
    cache = tmp_path / "cache"
    monkeypatch.setattr(parsecache, "HASH_ON_LOAD_BYTES", 0)

    def no_hash(*a, **k):
        raise AssertionError("a big file was hashed")

    monkeypatch.setattr(parsecache, "file_digest", no_hash)
    first = ml_20m(data_dir=folder, cache=cache)
    entries = list((cache / "parsed").iterdir())
    assert len(entries) == 1 and len(cached) == 1
    # 2-byte item indices, 1-byte half-star ratings, 4-byte times: ~7 bytes a rating
    assert entries[0].stat().st_size < 0.4 * (folder / "ratings.csv").stat().st_size
    key = json.loads(str(np.load(entries[0])["key"]))
    assert key["sources"][0]["sha256"] is None
    second = ml_20m(data_dir=folder, cache=cache)
    same(second, first)
    assert len(cached) == 1
    assert (second.timestamps.dtype, second.matrix.indices.dtype, second.ratings.dtype,
            second.matrix.data.dtype) == (np.int64, np.int32, np.float32, np.float32)
    assert not np.shares_memory(second.ratings, second.matrix.data)
    for d in (first, second):
        assert d.matrix.data.flags.writeable and d.ratings.flags.writeable
    os.utime(folder / "ratings.csv", ns=(1, 1))
    same(ml_20m(data_dir=folder, cache=cache), first)
    assert len(cached) == 2
