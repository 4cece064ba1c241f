"""A cache of parsed ratings arrays, so the second load of a big ratings file skips the parse.

The arrays a ratings reader returns (``user``, ``item``, ``rating``, ``timestamp``) are stored
uncompressed in an ``.npz`` together with a key describing the source file (size, mtime and
SHA-256). Where it lives:

* a download-cache folder (``<root>/<name>/``, see :mod:`mfsoftmax.datasets.download`): next to
  the file, ``<stem>.parsed.npz`` (e.g. ``ratings.parsed.npz``); the SHA-256 comes from the
  folder's verified manifest, so nothing is re-hashed. A rebuilt folder takes its cache with it.
* a ``--data-dir`` copy the user owns: nothing is written there; the cache goes to
  ``<cache root>/parsed/<stem>-<hash of the resolved path>.npz`` instead (the cache root is the
  builder's ``cache`` argument, else ``$MFSOFTMAX_DATA`` / ``~/.cache/mfsoftmax``), keyed by the
  file's SHA-256, computed once when the entry is written.

An entry is used when the size matches and either the mtime matches too or the SHA-256 does
(files up to :data:`~mfsoftmax.datasets.download.HASH_ON_LOAD_BYTES` are always re-hashed, as
the download cache does). For a bigger file keyed by size and mtime, the SHA-256 of its first and
last :data:`EDGE_BYTES` (``edges``) must match too: a cheap check that catches a same-size file
put in place with its mtime kept. Anything else (stale key, unreadable or truncated entry, other format)
means a re-parse and a rewrite; an entry that cannot be read at all (corrupt, truncated) is
reported on stderr before the re-parse. Entries are written to a temporary file and renamed into place;
a cache that cannot be written is skipped silently (the load still works). Only files of at
least :data:`MIN_BYTES` are cached; ``MFSOFTMAX_PARSE_CACHE=0`` turns the cache off.

A second entry, ``<stem>.interactions.npz`` beside the first (:func:`load_or_build`), holds the
finished :class:`~mfsoftmax.datasets.core.Interactions` the loader assembles from the columns
(the CSR arrays, timestamps, ratings, raw ids, features, meta), keyed by every source file the
loader reads (ratings and movies) and :data:`BUILT_FORMAT`: a second load of ml-20m reads arrays
instead of factorising ids, de-duplicating and sorting 20M rows again. The ``file`` loader
uses the same entries (``<stem>-<hash>.file.npz`` in the cache root), with its options
(separator, columns, encoding...) in the key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .core import Interactions, concurrently, small_pages
from .download import HASH_ON_LOAD_BYTES, cache_root, file_digest

FORMAT = 1
#: version of the finished-Interactions entries: bump it when a loader's assembly changes what it
#: builds from the same files (an older entry is then rebuilt)
BUILT_FORMAT = 2
BUILT_SUFFIX = ".interactions.npz"
MIN_BYTES = 8 << 20  # smaller files parse in well under a second: not worth a cache entry
SUFFIX = ".parsed.npz"
COLUMNS = ("user", "item", "rating", "timestamp")
EDGE_BYTES = 1 << 16  # head and tail hashed for big files keyed by size and mtime


def enabled() -> bool:
    """False when ``MFSOFTMAX_PARSE_CACHE`` is 0/false/no/off."""
    return os.environ.get("MFSOFTMAX_PARSE_CACHE", "1").strip().lower() not in (
        "0", "false", "no", "off")


def entry_path(source: Path, owned_folder: bool, cache: str | Path | None = None,
               suffix: str = SUFFIX) -> Path:
    """Where the entry for ``source`` lives: next to it in a download-cache folder
    (``owned_folder``), else under ``<cache root>/parsed/``. ``suffix``: :data:`SUFFIX` (the
    parsed columns) or :data:`BUILT_SUFFIX` (the finished :class:`Interactions`)."""
    source = Path(source)
    if owned_folder:
        return source.with_name(source.stem + suffix)
    root = Path(cache).expanduser() if cache is not None else cache_root()
    tag = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:16]
    return root / "parsed" / f"{source.stem}-{tag}{suffix}"


def _unreadable(entry: Path, source: Path, exc: Exception) -> None:
    """Say on stderr that ``entry`` cannot be read and ``source`` is parsed again."""
    why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    print(f"mfsoftmax: cache entry {entry} is unreadable ({why}): reading {source} again",
          file=sys.stderr)


def _read(entry: Path, source: Path) -> tuple[dict, dict] | None:
    """(key, arrays) of an entry, or None when absent or unreadable (reported)."""
    try:
        with np.load(entry, allow_pickle=False) as z:
            key = json.loads(str(z["key"]))
            if not isinstance(key, dict) or key.get("format") != FORMAT:
                return None
            arrays = {c: z[c] for c in COLUMNS}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        _unreadable(entry, source, exc)
        return None
    return key, arrays


def edge_digest(path: Path, size: int) -> str:
    """SHA-256 of the first and last :data:`EDGE_BYTES` of a file (a big file's cheap content
    check: two small reads instead of hashing it all)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(EDGE_BYTES))
        f.seek(max(size - EDGE_BYTES, 0))
        h.update(f.read(EDGE_BYTES))
    return h.hexdigest()


def _fresh(key: dict, source: Path, st: os.stat_result, sha256: str | None) -> bool:
    if key.get("size") != st.st_size:
        return False
    if sha256 is not None:  # verified by the download cache's manifest
        return key.get("sha256") == sha256
    if key.get("mtime_ns") == st.st_mtime_ns and st.st_size > HASH_ON_LOAD_BYTES:
        return key.get("edges") in (None, edge_digest(source, st.st_size))
    if key.get("sha256") is None:  # a big file keyed by size and mtime only: changed
        return False
    return key.get("sha256") == file_digest(source)


def _edges_for_key(source: Path, st: os.stat_result, sha256: str | None) -> str | None:
    """The head-and-tail digest an entry's key records for a big file without a known
    SHA-256 (:func:`edge_digest`), else None."""
    if sha256 is None and st.st_size > HASH_ON_LOAD_BYTES:
        return edge_digest(source, st.st_size)
    return None


def _digest_for_key(source: Path, st: os.stat_result, sha256: str | None) -> str | None:
    """The SHA-256 an entry's key records: the known one, else the file's own when it is small
    enough to be re-hashed on load anyway (<= HASH_ON_LOAD_BYTES). A bigger file is keyed by
    size and mtime alone, so its first load does not read it twice to hash it (a touched but
    unchanged big file is parsed again)."""
    if sha256 is not None:
        return sha256
    return file_digest(source) if st.st_size <= HASH_ON_LOAD_BYTES else None


def _narrow(a: np.ndarray) -> np.ndarray:
    """int64 columns stored as int32 when their values fit (restored on load)."""
    if a.dtype == np.int64 and a.size and -(2**31) <= a.min() and a.max() < 2**31:
        return a.astype(np.int32)
    return a


def _write(entry: Path, key: dict, arrays: dict) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{entry.name}.", suffix=".part", dir=entry.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, key=np.array(json.dumps(key)),
                     **{c: _narrow(np.asarray(arrays[c])) for c in COLUMNS})
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        os.replace(tmp, entry)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def load_or_parse(source: Path, parse: Callable[[], dict], entry: Path,
                  sha256: str | None = None) -> dict:
    """The parsed columns of ``source``: from ``entry`` when its key matches the file, else
    ``parse()`` (then stored in ``entry``). ``sha256`` is the file's checksum when a verified
    manifest already knows it (the download cache); otherwise it is computed as needed."""
    source = Path(source)
    try:
        st = source.stat()
    except OSError:
        return parse()  # the parser names the problem
    if not enabled() or st.st_size < MIN_BYTES:
        return parse()
    got = _read(entry, source) if entry.is_file() else None
    if got is not None and _fresh(got[0], source, st, sha256):
        arrays = got[1]
        return {"user": arrays["user"].astype(np.int64, copy=False),
                "item": arrays["item"].astype(np.int64, copy=False),
                "rating": arrays["rating"].astype(np.float32, copy=False),
                "timestamp": arrays["timestamp"].astype(np.int64, copy=False)}
    result = parse()
    try:
        key = {"format": FORMAT, "source": source.name, "size": st.st_size,
               "mtime_ns": st.st_mtime_ns, "sha256": _digest_for_key(source, st, sha256),
               "edges": _edges_for_key(source, st, sha256)}
        if source.stat().st_mtime_ns == st.st_mtime_ns:  # not changed while we parsed it
            _write(entry, key, result)
    except OSError:
        pass  # read-only or full cache: the load works without it
    return result


# ------------------------------------------------------------------ finished Interactions
def _source_key(path: Path, st: os.stat_result, sha256: str | None) -> dict:
    return {"source": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "sha256": _digest_for_key(path, st, sha256), "edges": _edges_for_key(path, st, sha256)}


_BLOCK = 1 << 20  # elements per block when compacting: temporaries stay in cache


def _compact(a: np.ndarray) -> tuple[np.ndarray, list | None]:
    """(stored array, [dtype, scale] to restore it, or None): integers in the narrowest type
    that holds them (item indices under 65,536: 2 bytes), floats that are whole or half steps
    in 0..127.5 (star ratings) as uint8 twice the value. Done block by block, so that 20M
    values need no 20M-value temporaries."""
    if a.size == 0 or a.dtype.kind not in "iuf":
        return a, None
    if a.dtype.kind == "f":
        out = np.empty(a.size, dtype=np.uint8)
        for start in range(0, a.size, _BLOCK):
            twice = a[start:start + _BLOCK] * 2
            if not (twice.min() >= 0 and twice.max() <= 255
                    and np.array_equal(twice, np.rint(twice))):
                return a, None
            out[start:start + _BLOCK] = twice
        return out, [a.dtype.str, 2]
    lo, hi = int(a.min()), int(a.max())
    for small in (np.uint8, np.uint16, np.int32):
        info = np.iinfo(small)
        if info.min <= lo and hi <= info.max and np.dtype(small).itemsize < a.dtype.itemsize:
            return a.astype(small), [a.dtype.str, 1]
    return a, None


def _pack(data) -> tuple[dict, dict]:
    """(arrays by npz name, how to restore the compacted ones): None entries left out, the
    matrix's values left out when they equal the ratings, and big arrays stored compactly
    (:func:`_compact`): about 7 bytes a rating for ml-20m, against 27 bytes a line of its
    ``ratings.csv``."""
    m = data.matrix
    out = {"indptr": m.indptr, "indices": m.indices, "shape": np.asarray(m.shape, dtype=np.int64)}
    if data.ratings is None or not np.array_equal(m.data, data.ratings):
        out["data"] = m.data
    for name in ("timestamps", "ratings", "user_groups", "item_groups", "user_ids", "item_ids"):
        val = getattr(data, name)
        if val is not None:
            out[name] = np.asarray(val)
    for prefix, feats in (("uf__", data.user_features), ("if__", data.item_features)):
        for k, v in feats.items():
            out[prefix + k] = np.asarray(v)
    restore = {}
    names = [n for n in ("indices", "data", "timestamps", "ratings") if n in out]
    for name, (small, how) in zip(names, concurrently(
            *(lambda n=n: _compact(out[n]) for n in names)), strict=True):
        out[name] = small
        if how is not None:
            restore[name] = how
    return out, restore


def _restored(z, name: str, restore: dict) -> np.ndarray:
    a = z[name]
    if name in restore:
        dtype, scale = restore[name]
        a = a.astype(dtype)
        if scale != 1:
            a /= scale
    return a


def _unpack(z, name: str, meta: dict, restore: dict | None = None):
    restore = restore or {}
    shape = tuple(int(x) for x in z["shape"])
    opt = {k: _restored(z, k, restore) for k in ("timestamps", "ratings", "user_groups",
                                                 "item_groups", "user_ids", "item_ids")
           if k in z.files}
    values = (_restored(z, "data", restore) if "data" in z.files
              else opt["ratings"].astype(np.float32, copy=True))
    mat = sp.csr_matrix((values, _restored(z, "indices", restore), z["indptr"]), shape=shape)
    mat.has_sorted_indices = True  # stored from a canonical matrix: no re-check of 20M indices
    uf = {k[4:]: z[k] for k in z.files if k.startswith("uf__")}
    itf = {k[4:]: z[k] for k in z.files if k.startswith("if__")}
    return Interactions(name=name, matrix=mat, user_features=uf, item_features=itf, meta=meta,
                        **opt)


def columns_of(data) -> dict:
    """The parsed columns (user and item raw ids, rating, timestamp) that an Interactions built
    from one ratings file without duplicates holds, in its order: what a re-assembly needs when
    only a side file (``movies.csv``) changed, without parsing the ratings again."""
    rows = np.repeat(np.arange(data.n_users), np.diff(data.matrix.indptr))
    return {"user": data.user_ids[rows], "item": data.item_ids[data.matrix.indices],
            "rating": np.asarray(data.ratings, np.float32), "timestamp": data.timestamps}


def _built_entry(entry: Path, sources: list[Path], stats: list, sha256: dict, loader: str,
                 rebuild: Callable[[dict], object] | None,
                 options: dict | None = None) -> tuple[object, bool]:
    """(Interactions, True) from a fresh entry; (``rebuild(columns)``, False) from a stale one
    whose first source (the ratings) is still fresh; (None, False) otherwise (unreadable,
    another layout or other options, stale ratings). An unreadable entry is reported on
    stderr."""
    try:
        with np.load(entry, allow_pickle=False) as z:
            key = json.loads(str(z["key"]))
            if not (isinstance(key, dict) and key.get("format") == BUILT_FORMAT
                    and key.get("loader") == loader and key.get("options") == options
                    and len(key.get("sources", [])) == len(sources)
                    and all(k.get("source") == p.name
                            for k, p in zip(key["sources"], sources, strict=True))):
                return None, False
            fresh = [_fresh(k, p, st, sha256.get(p.name))
                     for k, p, st in zip(key["sources"], sources, stats, strict=True)]
            if all(fresh):
                return _unpack(z, key["name"], key["meta"], key.get("restore")), True
            if fresh[0] and rebuild is not None:
                old = _unpack(z, key["name"], key["meta"], key.get("restore"))
            else:
                return None, False
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        _unreadable(entry, sources[0], exc)
        return None, False  # rebuilt and rewritten
    return rebuild(columns_of(old)), False


def load_or_build(sources: list[Path], build: Callable[[], object], entry: Path,
                  sha256: dict | None = None, loader: str = "",
                  rebuild: Callable[[dict], object] | None = None, options: dict | None = None):
    """The :class:`Interactions` ``build()`` makes from ``sources`` (the files it reads): from
    ``entry`` when its key matches every source (same freshness rule as :func:`load_or_parse`),
    else ``build()``, then stored in ``entry``. When only the other sources changed (a new
    ``movies.csv``), ``rebuild(columns)`` re-assembles from the entry's own columns
    (:func:`columns_of`) instead of parsing the first source again. ``sha256``: known checksums
    by file name (a verified manifest). ``options``: the loader's options that change what it
    builds (JSON values), part of the key: an entry written with other options is rebuilt. Off
    with the parse cache, and for a first source under :data:`MIN_BYTES`."""
    with small_pages():  # each big array is allocated once: see small_pages
        return _load_or_build(sources, build, entry, sha256, loader, rebuild, options)


def _load_or_build(sources, build, entry, sha256, loader, rebuild, options):
    sources = [Path(p) for p in sources]
    sha256 = sha256 or {}
    try:
        stats = [p.stat() for p in sources]
    except OSError:
        return build()  # the builder names the problem
    if not enabled() or stats[0].st_size < MIN_BYTES:
        return build()
    options = None if options is None else json.loads(json.dumps(options))
    data, hit = _built_entry(entry, sources, stats, sha256, loader, rebuild, options) \
        if entry.is_file() else (None, False)
    if hit:
        return data
    if data is None:
        data = build()
    try:
        meta = json.loads(json.dumps(data.meta))  # only JSON-able meta is cached
        arrays, restore = _pack(data)
        key = {"format": BUILT_FORMAT, "loader": loader, "options": options, "name": data.name,
               "meta": meta, "restore": restore,
               "sources": [_source_key(p, st, sha256.get(p.name))
                           for p, st in zip(sources, stats, strict=True)]}
        if all(p.stat().st_mtime_ns == st.st_mtime_ns for p, st in zip(sources, stats, strict=True)):
            entry.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{entry.name}.", suffix=".part", dir=entry.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    np.savez(f, key=np.array(json.dumps(key)), **arrays)
                os.chmod(tmp, 0o644)
                os.replace(tmp, entry)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
    except (OSError, TypeError, ValueError):
        pass  # read-only or full cache, or meta that is not JSON: the load works without it
    return data
