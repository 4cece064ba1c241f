"""The ``file`` loader's cache (issue 25): a second load reads the finished arrays instead of
parsing again; a changed file or other options miss; a corrupt entry is reported and the file
parsed again (never a wrong result); side tables are read on every load."""

import json
import os

import numpy as np
import pytest

from mfsoftmax.datasets import files as F
from mfsoftmax.datasets import load, parsecache

ROWS = "user,item,rating,timestamp\n" + "".join(
    f"u{u},i{(u * 7 + k) % 13},{1 + (u + k) % 5},{1000 + u * 10 + k}\n"
    for u in range(20) for k in range(4))


@pytest.fixture
def builds(monkeypatch):
    """Count the parses (``files._build`` calls); cache every file whatever its size."""
    monkeypatch.setattr(parsecache, "MIN_BYTES", 0)
    monkeypatch.delenv("MFSOFTMAX_PARSE_CACHE", raising=False)
    calls = []
    real = F._build
    monkeypatch.setattr(F, "_build", lambda *a, **k: calls.append(k) or real(*a, **k))
    return calls


def same(a, b):
    assert a.name == b.name and a.matrix.shape == b.matrix.shape
    for x, y in ((a.matrix.indptr, b.matrix.indptr), (a.matrix.indices, b.matrix.indices),
                 (a.matrix.data, b.matrix.data), (a.ratings, b.ratings),
                 (a.timestamps, b.timestamps)):
        np.testing.assert_array_equal(x, y)
    assert a.user_ids.tolist() == b.user_ids.tolist() and a.item_ids.tolist() == b.item_ids.tolist()
    assert a.meta == b.meta


def entries(cache):
    return sorted((cache / "parsed").glob("*" + F.CACHE_SUFFIX))


def test_second_load_is_a_cache_hit(tmp_path, builds):
    src = tmp_path / "plays.csv"
    src.write_text(ROWS)
    cache = tmp_path / "cache"
    first = load("file", path=str(src), cache=str(cache), binary=False)
    assert len(builds) == 1
    [entry] = entries(cache)
    assert entry.name.startswith("plays-")
    assert not list((cache / "parsed").glob(".*.part"))  # written atomically
    key = json.loads(str(np.load(entry)["key"]))
    assert key["loader"] == "file" and key["options"] == {"format": F.FILE_FORMAT}
    second = load("file", path=str(src), cache=str(cache), binary=False)
    assert len(builds) == 1  # not parsed again
    same(second, first)
    assert second.matrix.has_sorted_indices
    assert not list(src.parent.glob("*.npz"))  # nothing written beside the user's file
    # the same file by another spelling: the same entry, the source as given this time
    (tmp_path / "sub").mkdir()
    third = load("file", path="sub/../plays.csv", data_dir=str(tmp_path), cache=str(cache))
    assert len(builds) == 1 and len(entries(cache)) == 1
    assert third.meta["source"] == str(tmp_path / "sub/../plays.csv")


def test_changed_file_or_options_miss(tmp_path, builds):
    src = tmp_path / "plays.csv"
    src.write_text(ROWS)
    cache = tmp_path / "cache"
    load("file", path=str(src), cache=str(cache))
    # same size, same mtime, other content: the SHA-256 of a small file catches it
    st = src.stat()
    src.write_text(ROWS.replace("u3,", "u4,", 1))
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    changed = load("file", path=str(src), cache=str(cache), binary=False)
    assert len(builds) == 2
    assert changed.matrix[changed.user_ids.tolist().index("u3")].nnz == 3  # one row moved to u4
    load("file", path=str(src), cache=str(cache))
    assert len(builds) == 2  # the rewritten entry is fresh
    # other options: another parse, and the result follows them
    no_rating = load("file", path=str(src), cache=str(cache), rating_col="none", binary=False)
    assert len(builds) == 3 and no_rating.ratings is None
    renamed = load("file", path=str(src), cache=str(cache), name="mine")
    assert len(builds) == 4 and renamed.name == "mine"
    assert len(entries(cache)) == 1  # one entry per file: the latest options


def test_big_file_with_same_size_and_mtime_checks_its_edges(tmp_path, builds, monkeypatch):
    """A file over HASH_ON_LOAD_BYTES is not hashed whole: its head and tail are, so a file of
    the same size put in place with the old mtime is parsed again."""
    monkeypatch.setattr(parsecache, "HASH_ON_LOAD_BYTES", 10)
    src = tmp_path / "plays.csv"
    src.write_text(ROWS)
    cache = tmp_path / "cache"
    load("file", path=str(src), cache=str(cache))
    [entry] = entries(cache)
    key = json.loads(str(np.load(entry)["key"]))
    assert key["sources"][0]["sha256"] is None and key["sources"][0]["edges"]
    st = src.stat()
    src.write_text(ROWS[:-12] + ROWS[-12:].replace("1", "2"))  # the last row's time
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    load("file", path=str(src), cache=str(cache))
    assert len(builds) == 2


@pytest.mark.parametrize("damage", ["not a zip", "truncate", "flip"])
def test_corrupt_entry_is_reported_and_the_file_parsed_again(tmp_path, builds, capsys, damage):
    src = tmp_path / "plays.csv"
    src.write_text(ROWS)
    cache = tmp_path / "cache"
    first = load("file", path=str(src), cache=str(cache), binary=False)
    [entry] = entries(cache)
    raw = bytearray(entry.read_bytes())
    if damage == "not a zip":
        raw = bytearray(b"not a zip")
    elif damage == "truncate":
        raw = raw[: len(raw) // 2]
    else:  # one byte of the stored timestamps changed: the zip's CRC catches it
        start = raw.index(b"timestamps.npy")
        pos = raw.index(b"\n", raw.index(b"NUMPY", start)) + 5
        raw[pos] ^= 0xFF
    entry.write_bytes(bytes(raw))
    capsys.readouterr()
    again = load("file", path=str(src), cache=str(cache), binary=False)
    assert len(builds) == 2
    same(again, first)
    err = capsys.readouterr().err
    assert f"cache entry {entry} is unreadable" in err and f"reading {src} again" in err
    load("file", path=str(src), cache=str(cache))
    assert len(builds) == 2 and capsys.readouterr().err == ""  # rewritten, fresh


def test_cache_off_and_small_files(tmp_path, builds, monkeypatch):
    src = tmp_path / "plays.csv"
    src.write_text(ROWS)
    monkeypatch.setenv("MFSOFTMAX_PARSE_CACHE", "0")
    load("file", path=str(src), cache=str(tmp_path / "cache"))
    assert not (tmp_path / "cache").exists()
    monkeypatch.delenv("MFSOFTMAX_PARSE_CACHE")
    monkeypatch.setattr(parsecache, "MIN_BYTES", 1 << 20)
    load("file", path=str(src), cache=str(tmp_path / "cache"))
    assert not (tmp_path / "cache").exists()
    # MFSOFTMAX_DATA is the default root
    monkeypatch.setattr(parsecache, "MIN_BYTES", 0)
    monkeypatch.setenv("MFSOFTMAX_DATA", str(tmp_path / "root"))
    load("file", path=str(src))
    assert len(entries(tmp_path / "root")) == 1


def test_side_tables_are_read_on_every_load(tmp_path, builds):
    src = tmp_path / "plays.csv"
    src.write_text(ROWS)
    items = tmp_path / "items.csv"
    items.write_text("item,colour\n" + "".join(f"i{k},{'red' if k % 2 else 'blue'}\n"
                                               for k in range(13)))
    cache = tmp_path / "cache"
    first = load("file", path=str(src), cache=str(cache), item_features=str(items))
    items.write_text("item,colour\n" + "".join(f"i{k},green\n" for k in range(13)))
    second = load("file", path=str(src), cache=str(cache), item_features=str(items))
    assert len(builds) == 1  # the interactions came from the cache
    assert first.meta["side_tables"]["item"]["columns"]["colour"]["labels"] == ["blue", "red"]
    assert second.meta["side_tables"]["item"]["columns"]["colour"]["labels"] == ["green"]
    plain = load("file", path=str(src), cache=str(cache))
    assert len(builds) == 1 and "side_tables" not in plain.meta and not plain.item_features


def test_entry_no_larger_than_the_source(tmp_path, builds):
    """String ids, ratings and timestamps of 50k rows: the entry (compact arrays, ids stored
    once) is smaller than the CSV."""
    rng = np.random.default_rng(0)
    n = 50_000
    lines = [f"user{u},item{i},{r / 2},{t}" for u, i, r, t in zip(
        rng.integers(0, 3000, n).tolist(), rng.integers(0, 800, n).tolist(),
        rng.integers(1, 11, n).tolist(), rng.integers(10**9, 2 * 10**9, n).tolist(),
        strict=True)]
    src = tmp_path / "big.csv"
    src.write_text("user,item,rating,timestamp\n" + "\n".join(lines) + "\n")
    cache = tmp_path / "cache"
    first = load("file", path=str(src), cache=str(cache), binary=False)
    [entry] = entries(cache)
    assert entry.stat().st_size < src.stat().st_size
    same(load("file", path=str(src), cache=str(cache), binary=False), first)
    assert len(builds) == 1
