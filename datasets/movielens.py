"""MovieLens loaders: ``ml-100k``, ``ml-1m``, ``ml-20m`` and ``ml-latest-small``.

Each builder reads an unpacked copy (``data_dir``) or a verified cached download
(:mod:`mfsoftmax.datasets.download`; ``verify=True`` re-hashes every cached file, which loads of
datasets over ``HASH_ON_LOAD_BYTES`` otherwise skip). Conventions shared by all four:

* Interaction values are the raw ratings (``load`` binarises by default); ``ratings`` and
  ``timestamps`` (seconds) are aligned with the matrix; ``user_ids``/``item_ids`` hold raw ids.
* Users and items are the ones that have at least one rating, indexed in increasing raw id.
  Items listed in the item file without any rating are **dropped** (ml-100k: all 1682 are rated;
  ml-1m keeps 3706 of the 3883 movies). A rated item or user missing from its side file is an error.
* Item features: ``genres`` (n_items x n_genres multi-hot, uint8) over one shared vocabulary
  (:data:`GENRES`, plus any unknown genre names appended) and ``year_bucket`` (:data:`YEAR_BUCKETS`:
  0 = unknown year, 1 = before 1920, then one code per decade up to 2020s and later).
* User features (100K/1M only): ``age_bucket`` (1M buckets 1, 18, 25, 35, 45, 50, 56 -> 0..6; 100K
  ages are bucketed the same way), ``gender`` (F=0, M=1), ``occupation`` (100K: index in
  ``u.occupation`` or sorted names; 1M: the dataset's own 0..20 code). Codes are int64.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np

from . import parsecache
from .core import DatasetError, Interactions, concurrently, from_coo
from .decode import read_bytes
from .download import dataset_folder, read_marker
from .fastread import numpy_column
from .registry import register
from .textparse import factorize_ints, integer_column, parse_numeric

GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
          "Romance", "Sci-Fi", "Thriller", "War", "Western", "IMAX")
_GENRE_ALIAS = {"Children": "Children's", "(no genres listed)": "unknown"}
AGE_BUCKETS = (1, 18, 25, 35, 45, 50, 56)
YEAR_BUCKETS = ("unknown", "<1920") + tuple(f"{d}s" for d in range(1920, 2020, 10)) + ("2020s+",)
GENDERS = {"F": 0, "M": 1}
_YEAR_IN_TITLE = re.compile(r"\((\d{4})(?:[-\u2013]\d{0,4})?\)\s*$")


# ----------------------------------------------------------------------------- feature helpers
def age_bucket(age: np.ndarray) -> np.ndarray:
    """Ages -> MovieLens 1M bucket codes 0..6 (under 18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+)."""
    return np.clip(np.searchsorted(AGE_BUCKETS, age, side="right") - 1, 0, None).astype(np.int64)


def year_bucket(years: np.ndarray) -> np.ndarray:
    """Release years (0 = unknown) -> :data:`YEAR_BUCKETS` codes."""
    years = np.asarray(years, dtype=np.int64)
    code = np.clip((years - 1920) // 10 + 2, 1, len(YEAR_BUCKETS) - 1)
    return np.where(years > 0, code, 0).astype(np.int64)


def genre_matrix(lists: list[list[str]]) -> tuple[np.ndarray, list[str]]:
    """Multi-hot (len(lists) x n_genres, uint8) over :data:`GENRES` plus unseen names."""
    vocab = list(GENRES)
    names = [[_GENRE_ALIAS.get(g, g) for g in gs if g] for gs in lists]
    extra = sorted({g for gs in names for g in gs} - set(vocab))
    vocab += extra
    index = {g: k for k, g in enumerate(vocab)}
    out = np.zeros((len(lists), len(vocab)), dtype=np.uint8)
    counts = np.fromiter(map(len, names), dtype=np.int64, count=len(names))
    cols = np.fromiter((index[g] for gs in names for g in gs), dtype=np.int64,
                       count=int(counts.sum()))
    out[np.repeat(np.arange(len(names)), counts), cols] = 1  # one assignment, not one per item
    return out, vocab


def _title_year(title: str) -> int:
    m = _YEAR_IN_TITLE.search(title.strip())
    return int(m.group(1)) if m else 0


def _flag(value, what: str) -> bool:
    """A boolean builder parameter (``--param verify=true`` arrives as True; "yes"/"1" too)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, str)) and str(value).strip().lower() in ("0", "1", "true", "false",
                                                                        "yes", "no"):
        return str(value).strip().lower() in ("1", "true", "yes")
    raise DatasetError(f"{what}={value!r}: expected true or false")


def _lines(path: Path, encoding: str = "latin-1") -> list[str]:
    lines = read_bytes(path).decode(encoding).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _fields(path, n: int, line: str, sep: str, expected: int) -> list[str]:
    f = line.split(sep)
    if len(f) != expected:
        raise DatasetError(f"{path}, line {n}: expected {expected} {sep!r}-separated fields, found "
                           f"{len(f)}: {line[:80]!r}")
    return f


def _int(path, n: int, value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DatasetError(f"{path}, line {n}: {what} {value.strip()!r} is not an integer") from None


def _lookup(path, raw_ids: np.ndarray, table_ids: np.ndarray, what: str) -> np.ndarray:
    """Row of ``table_ids`` for each raw id; every raw id must be present."""
    order = np.argsort(table_ids, kind="stable")
    pos = np.searchsorted(table_ids[order], raw_ids)
    pos = np.minimum(pos, len(order) - 1)
    found = table_ids[order][pos] == raw_ids
    if not found.all():
        missing = raw_ids[~found][:5].tolist()
        raise DatasetError(f"{path}: {what} ids {missing} have ratings but are not listed")
    return order[pos]


# ----------------------------------------------------------------------------- ratings
_COLS = ("user", "item", "rating", "timestamp")


def _polars():
    """The polars module, or None when it is not installed (then the numpy parser is used)."""
    try:
        import polars  # optional: polars, probed (the numpy parser is the fallback)
    except ImportError:  # pragma: no cover - polars is a dependency; kept for bare installs
        return None
    return polars


def _read_ratings_numpy(path: Path, sep: bytes, header: bool, buf: bytes | None = None) -> dict:
    """The hand-written numpy parser (:mod:`textparse`): the reference semantics, the fallback
    when polars is missing, and the error path that names the bad line."""
    buf = read_bytes(path) if buf is None else buf
    vals, first = parse_numeric(path, buf, sep, 4, header=header)
    return {
        "user": integer_column(path, vals[:, 0], first, "user id", 1),
        "item": integer_column(path, vals[:, 1], first, "item id", 2),
        "rating": vals[:, 2].astype(np.float32),
        "timestamp": integer_column(path, vals[:, 3], first, "timestamp", 4),
    }


def _read_ratings_polars(pl, source, sep: bytes, header: bool) -> dict | None:
    """Strictly typed polars read of a 4-column ratings file; None when anything is off (a
    parse error, a short or empty line, a non-finite rating, no rows), left to the numpy
    parser, which either names the line or accepts the unusual-but-valid input as before.
    Ids and timestamps are read as 32-bit integers (half the work of 64-bit), and again as
    64-bit when a value does not fit."""
    names = list(_COLS)
    sep_char = sep.decode()
    if sep == b"::":  # single-byte separators only: split on ':' with empty spacer columns
        names = ["user", "_1", "item", "_2", "rating", "_3", "timestamp"]
        sep_char = ":"
    df = None
    for ints, floats in ((pl.Int32, pl.Float32), (pl.Int64, pl.Float64)):
        types = {"user": ints, "item": ints, "rating": floats, "timestamp": ints}
        schema = {n: types.get(n, pl.String) for n in names}
        try:
            df = pl.read_csv(source, has_header=False, skip_rows=1 if header else 0,
                             schema=schema, separator=sep_char, quote_char=None)
            break
        except (pl.exceptions.PolarsError, OSError, ValueError):
            if isinstance(source, io.BytesIO):
                source.seek(0)
    if df is None or df.height == 0:
        return None
    nulls = df.null_count().row(0, named=True)
    if any(nulls[c] for c in _COLS) or any(nulls[n] != df.height for n in names if n[0] == "_"):
        return None
    out = {c: numpy_column(df.get_column(c), np.int64 if c == "timestamp" else None)
           for c in _COLS}  # chunk by chunk: no rechunk copy; timestamps widened once
    out["rating"] = out["rating"].astype(np.float32, copy=False)
    if not np.isfinite(out["rating"]).all():
        return None
    return out


def read_ratings(path: Path, sep: bytes, header: bool, buf: bytes | None = None) -> dict:
    """user, item, rating, timestamp columns of a ratings file (4 numeric fields per line;
    ``sep`` is ``b","``, ``b"\\t"`` or ``b"::"``).

    Parsed by polars with strict types (the fast path); when that fails the file is parsed again
    by the numpy parser, which raises :class:`DatasetError` naming the file and the 1-based line
    of the first malformed row (or parses input polars is stricter about, e.g. ``1.0`` ids).
    """
    pl = _polars()
    if pl is not None and sep in (b",", b"\t", b"::"):
        if buf is None and not Path(path).is_file():
            read_bytes(path)  # raises the usual "file not found" / "not a regular file"
        got = _read_ratings_polars(pl, io.BytesIO(buf) if buf is not None else Path(path), sep,
                                   header)
        if got is not None:
            return got
    return _read_ratings_numpy(path, sep, header, buf)


def _cached_ratings(path: Path, owned: bool, cache, parse) -> dict:
    """``parse()``'s columns through the parsed-array cache (:mod:`parsecache`). ``owned``: the
    folder is a download-cache folder, so the entry goes next to the file and the manifest's
    SHA-256 keys it; otherwise (``--data-dir``) the entry goes to the cache root."""
    sha = None
    if owned:
        rec = ((read_marker(path.parent) or {}).get("files") or {}).get(path.name)
        sha = rec[1] if isinstance(rec, list) and len(rec) == 3 else None
        if sha is None:  # no manifest entry: keep the entry out of the folder
            owned = False
    return parsecache.load_or_parse(path, parse, parsecache.entry_path(path, owned, cache), sha)


def _cached_build(name: str, files: list[Path], owned: bool, cache, build, rebuild=None) -> Interactions:
    """``build()``'s Interactions through the finished-Interactions cache
    (:func:`parsecache.load_or_build`): keyed by every file it reads, placed next to
    ``files[0]`` in a download-cache folder, else in the cache root. ``rebuild(columns)``
    re-assembles from the cached entry's columns when only the other files changed."""
    sha = {}
    if owned:
        recs = (read_marker(files[0].parent) or {}).get("files") or {}
        for f in files:
            rec = recs.get(f.name)
            if isinstance(rec, list) and len(rec) == 3:
                sha[f.name] = rec[1]
        if files[0].name not in sha:
            owned = False
    entry = parsecache.entry_path(files[0], owned, cache, suffix=parsecache.BUILT_SUFFIX)
    return parsecache.load_or_build(files, build, entry, sha, loader=name, rebuild=rebuild)


def _assemble(name: str, folder: Path, r: dict, items: dict, users: dict | None,
              item_file: Path, user_file: Path | None) -> Interactions:
    # the column work in threads; the matrix values take the parsed ratings (``r`` is not
    # used again: from_coo copies them if they are read-only), the ratings a copy
    (uids, u), (iids, i), times, values, ratings = concurrently(
        lambda: factorize_ints(r["user"]), lambda: factorize_ints(r["item"]),
        lambda: np.asarray(r["timestamp"], dtype=np.int64),
        lambda: np.asarray(r["rating"], dtype=np.float32), lambda: np.array(r["rating"],
                                                                            dtype=np.float32))
    rows = _lookup(item_file, iids, items["ids"], "item")
    genres, vocab = genre_matrix([items["genres"][k] for k in rows])
    item_features = {"genres": genres, "year_bucket": year_bucket(items["year"][rows])}
    user_features = {}
    meta = {"source": str(folder), "genres": vocab, "year_buckets": list(YEAR_BUCKETS),
            "items_without_ratings_dropped": int(len(items["ids"]) - len(iids))}
    if users is not None:
        urows = _lookup(user_file, uids, users["ids"], "user")
        user_features = {
            "age_bucket": age_bucket(users["age"][urows]),
            "gender": users["gender"][urows],
            "occupation": users["occupation"][urows],
        }
        meta["age_buckets"] = list(AGE_BUCKETS)
        meta["occupations"] = users["occupations"]
    return from_coo(
        name, u, i, len(uids), len(iids),
        values=values, ratings=ratings, timestamps=times,
        user_features=user_features, item_features=item_features,
        user_ids=uids, item_ids=iids, meta=meta, owned=True,
    )


# ----------------------------------------------------------------------------- ml-100k
def read_items_100k(path: Path) -> dict:
    """``u.item``: id|title|release date|video date|url|19 genre flags (latin-1)."""
    ids, years, genres = [], [], []
    for n, line in enumerate(_lines(path), 1):
        f = _fields(path, n, line, "|", 24)
        ids.append(_int(path, n, f[0], "item id"))
        date = f[2].strip()
        years.append(_int(path, n, date[-4:], "release year") if date else 0)
        flags = f[5:]
        if any(x not in ("0", "1") for x in flags):
            raise DatasetError(f"{path}, line {n}: genre flags must be 0 or 1")
        genres.append([GENRES[k] for k, x in enumerate(flags) if x == "1"])
    return {"ids": np.array(ids, np.int64), "year": np.array(years, np.int64), "genres": genres}


def read_users_100k(path: Path) -> dict:
    """``u.user``: id|age|gender|occupation|zip."""
    occ_file = path.parent / "u.occupation"
    vocab = [s.strip() for s in _lines(occ_file) if s.strip()] if occ_file.exists() else None
    ids, ages, genders, occs = [], [], [], []
    for n, line in enumerate(_lines(path), 1):
        f = _fields(path, n, line, "|", 5)
        ids.append(_int(path, n, f[0], "user id"))
        ages.append(_int(path, n, f[1], "age"))
        if f[2] not in GENDERS:
            raise DatasetError(f"{path}, line {n}: gender {f[2]!r} is not M or F")
        genders.append(GENDERS[f[2]])
        occs.append(f[3].strip())
    if vocab is None or not set(occs) <= set(vocab):
        vocab = sorted(set(occs))
    index = {o: k for k, o in enumerate(vocab)}
    return {"ids": np.array(ids, np.int64), "age": np.array(ages, np.int64),
            "gender": np.array(genders, np.int64),
            "occupation": np.array([index[o] for o in occs], np.int64), "occupations": vocab}


@register("ml-100k", "MovieLens 100K: 943 users, 1682 movies, 100k ratings, user+item features",
          downloads=True)
def ml_100k(data_dir=None, cache=None, verify=False) -> Interactions:
    """MovieLens 100K (``u.data``, ``u.item``, ``u.user``); files checked against MD5SUMS if present."""
    folder = dataset_folder("ml-100k", data_dir, cache, verify=_flag(verify, "verify"))
    r = read_ratings(folder / "u.data", b"\t", header=False)
    return _assemble("ml-100k", folder, r, read_items_100k(folder / "u.item"),
                     read_users_100k(folder / "u.user"), folder / "u.item", folder / "u.user")


# ----------------------------------------------------------------------------- ml-1m
def read_items_dat(path: Path) -> dict:
    """``movies.dat``: id::title (year)::Genre|Genre (latin-1)."""
    ids, years, genres = [], [], []
    for n, line in enumerate(_lines(path), 1):
        f = _fields(path, n, line, "::", 3)
        ids.append(_int(path, n, f[0], "movie id"))
        years.append(_title_year(f[1]))
        genres.append(f[2].strip().split("|"))
    return {"ids": np.array(ids, np.int64), "year": np.array(years, np.int64), "genres": genres}


def read_users_dat(path: Path) -> dict:
    """``users.dat``: id::gender::age::occupation::zip."""
    ids, ages, genders, occs = [], [], [], []
    for n, line in enumerate(_lines(path), 1):
        f = _fields(path, n, line, "::", 5)
        ids.append(_int(path, n, f[0], "user id"))
        if f[1] not in GENDERS:
            raise DatasetError(f"{path}, line {n}: gender {f[1]!r} is not M or F")
        genders.append(GENDERS[f[1]])
        ages.append(_int(path, n, f[2], "age"))
        occs.append(_int(path, n, f[3], "occupation"))
    occ = np.array(occs, np.int64)
    if occ.size and occ.min() < 0:
        raise DatasetError(f"{path}: negative occupation code")
    return {"ids": np.array(ids, np.int64), "age": np.array(ages, np.int64),
            "gender": np.array(genders, np.int64), "occupation": occ,
            "occupations": "ml-1m codes 0..20 (see the dataset README)"}


@register("ml-1m", "MovieLens 1M: 6040 users, 3706 rated movies, 1M ratings, user+item features",
          downloads=True)
def ml_1m(data_dir=None, cache=None, verify=False) -> Interactions:
    """MovieLens 1M (``ratings.dat``, ``movies.dat``, ``users.dat``; ``::`` separated)."""
    folder = dataset_folder("ml-1m", data_dir, cache, verify=_flag(verify, "verify"))
    path = folder / "ratings.dat"
    r = _cached_ratings(path, data_dir is None, cache, lambda: read_ratings(path, b"::", False))
    return _assemble("ml-1m", folder, r, read_items_dat(folder / "movies.dat"),
                     read_users_dat(folder / "users.dat"), folder / "movies.dat", folder / "users.dat")


# ----------------------------------------------------------------------------- csv releases
def read_items_csv(path: Path) -> dict:
    """``movies.csv``: movieId,title,genres with a header; titles may be quoted (utf-8)."""
    text = read_bytes(path).decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text))
    head = next(reader)
    if [h.strip() for h in head[:3]] != ["movieId", "title", "genres"]:
        raise DatasetError(f"{path}, line 1: expected header movieId,title,genres, found {head}")
    ids, years, genres = [], [], []
    for row in reader:
        n = reader.line_num
        if not row:
            continue
        if len(row) != 3:
            raise DatasetError(f"{path}, line {n}: expected 3 comma-separated fields, found {len(row)}")
        ids.append(_int(path, n, row[0], "movie id"))
        years.append(_title_year(row[1]))
        genres.append(row[2].strip().split("|"))
    return {"ids": np.array(ids, np.int64), "year": np.array(years, np.int64), "genres": genres}


def _check_ratings_header(path: Path) -> None:
    """The header line of ``ratings.csv`` (read from the first 64 KiB only)."""
    if not path.is_file():
        read_bytes(path)  # raises "file not found" / "not a regular file"
    with open(path, "rb") as f:
        buf = f.read(1 << 16)
    if buf.startswith(b"\xef\xbb\xbf"):
        buf = buf[3:]
    if not buf.strip():
        read_bytes(path)  # raises "empty file"
    end = buf.find(b"\n")
    head = buf[: end if end >= 0 else len(buf)].decode("utf-8", "replace").strip()
    if head.split(",")[:4] != ["userId", "movieId", "rating", "timestamp"]:
        raise DatasetError(f"{path}, line 1: expected header userId,movieId,rating,timestamp, "
                           f"found {head[:80]!r}")


def _csv_release(name: str, data_dir, cache, verify=False) -> Interactions:
    """``ratings.csv`` + ``movies.csv``, through the finished-Interactions cache only: its entry
    (about 7 bytes a rating against 27 a line of ``ratings.csv``) also serves as the parsed columns when only
    ``movies.csv`` changed, so no second entry of parsed columns is written."""
    folder = dataset_folder(name, data_dir, cache, verify=_flag(verify, "verify"))
    ratings = folder / "ratings.csv"

    def parse() -> dict:
        _check_ratings_header(ratings)
        return read_ratings(ratings, b",", header=True)

    def build(r: dict | None = None) -> Interactions:
        # movies.csv (Python's csv reader) is read while polars parses the ratings
        r, items = concurrently(parse if r is None else lambda: r,
                                lambda: read_items_csv(folder / "movies.csv"))
        return _assemble(name, folder, r, items, None, folder / "movies.csv", None)

    return _cached_build(name, [ratings, folder / "movies.csv"], data_dir is None, cache, build,
                         rebuild=build)


@register("ml-20m", "MovieLens 20M: 138k users, 27k movies, 20M ratings, item features",
          downloads=True)
def ml_20m(data_dir=None, cache=None, verify=False) -> Interactions:
    """MovieLens 20M (``ratings.csv``, ``movies.csv``); no user features."""
    return _csv_release("ml-20m", data_dir, cache, verify)


@register("ml-latest-small", "MovieLens latest-small: 610 users, 9.7k movies, 100k ratings",
          downloads=True)
def ml_latest_small(data_dir=None, cache=None, verify=False) -> Interactions:
    """MovieLens latest-small (``ratings.csv``, ``movies.csv``); no user features."""
    return _csv_release("ml-latest-small", data_dir, cache, verify)
