"""The polars fast path of the ``file`` loader: delimited text (plain or gzip) and Parquet read
into id codes and value arrays with polars and numpy, without Python loops.

The text reader is strict: any parse error, empty field, short line or non-finite number makes
it return None, and the caller re-reads the file with the exact parser (:mod:`textparse`,
:mod:`tokens`), which names the bad line or accepts unusual-but-valid input. Parquet has no
lines, so its errors are raised here, naming the row and column.

Integer columns are read as 32-bit first (half the memory and time of 64-bit) and again as
64-bit when a value does not fit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .core import DatasetError, concurrently
from .textparse import factorize_ints
from .tokens import _INT64_MAX

ROLES = ("user", "item", "rating", "timestamp")
TIME_FORMATS = ("integer or decimal seconds since 1970-01-01 UTC, ISO-8601 date-times "
                "(2020-01-02T10:00:00, a space for the T, minutes only, fractions of a second, Z "
                "or +02:00; UTC without an offset) and dates (2020-01-02)")


def _pl():
    import polars as pl  # lazy: polars (~0.3 s), off the registry import and --help

    return pl


def numpy_column(series, dtype=None) -> np.ndarray:
    """A numeric polars column (no nulls) as one numpy array of ``dtype`` (default its own):
    filled chunk by chunk, so a column read in many chunks is neither rechunked first nor
    copied a second time to widen it."""
    chunks = series.get_chunks()
    parts = [c.to_numpy() for c in chunks]
    if len(parts) == 1 and dtype in (None, parts[0].dtype):
        return parts[0]
    out = np.empty(len(series), dtype=dtype or parts[0].dtype)
    pos = 0
    for part in parts:
        out[pos:pos + len(part)] = part
        pos += len(part)
    return out


def _sample_kind(tokens: list[bytes]) -> str:
    """"int", "float" or "text": the narrowest kind every sample token parses as."""
    kind = "int"
    for tok in tokens:
        tok = tok.strip().strip(b'"')
        try:
            int(tok)
            continue
        except ValueError:
            kind = "float"
        try:
            if not np.isfinite(float(tok)):
                return "text"
        except ValueError:
            return "text"
    return kind


_ISO_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M%z",
                "%Y-%m-%dT%H:%M", "%Y-%m-%d")


def _iso_seconds(pl, s):
    """Int64 epoch seconds of ISO-8601 text (null where no format reads it): a space may stand
    for the ``T``, ``Z`` for ``+00:00``; times without an offset are UTC."""
    s = s.str.replace(r"^(\d{4}-\d\d-\d\d) ", "${1}T").str.replace(r"[Zz]$", "+00:00")
    parsed = [s.str.to_datetime(f, strict=False, time_unit="us").dt.epoch("s")
              for f in _ISO_FORMATS]
    return pl.select(pl.coalesce(parsed)).to_series()


def epoch_seconds(series, label: str, where, field: int) -> np.ndarray:
    """int64 seconds of a timestamp column: numbers (floored), ISO-8601 date-times or dates.

    ``where(k)`` is the place of row k for a message (``"line 7"`` or ``"row 6"``); an
    unreadable value raises :class:`DatasetError` naming it and the formats that are read.
    """
    pl = _pl()
    s = series
    if s.dtype.is_integer() and s.dtype != pl.UInt64 and not s.null_count():
        return numpy_column(s, np.int64)
    if s.dtype == pl.String:
        s = s.str.strip_chars()
        as_num = s.cast(pl.Float64, strict=False)
        if as_num.null_count() == s.null_count():
            s = as_num
        else:
            s = _iso_seconds(pl, s)
    elif s.dtype == pl.Date:
        s = s.cast(pl.Datetime("us")).dt.epoch("s")
    elif isinstance(s.dtype, pl.Datetime):
        s = s.dt.epoch("s")
    if s.null_count() > series.null_count():
        k = int((s.is_null() & series.is_not_null()).arg_true()[0])
        raise DatasetError(f"{label}, {where(k)}, field {field}: timestamp "
                           f"{str(series[k]).strip()!r} is not a time; read are {TIME_FORMATS}")
    vals = s.cast(pl.Float64).to_numpy()
    bad = np.flatnonzero(~np.isfinite(vals))
    if bad.size:
        k = int(bad[0])
        raise DatasetError(f"{label}, {where(k)}, field {field}: timestamp "
                           f"{str(series[k]).strip()!r} is not a time; read are {TIME_FORMATS}")
    if np.abs(vals).max(initial=0) >= 2.0**63:
        k = int(np.argmax(np.abs(vals) >= 2.0**63))
        raise DatasetError(f"{label}, {where(k)}, field {field}: timestamp {series[k]} does not "
                           "fit in a 64-bit integer")
    if s.dtype.is_integer():
        return s.to_numpy().astype(np.int64, copy=False)
    return np.floor(vals).astype(np.int64)


def series_ids(series, label: str, where, what: str, field: int) -> tuple[np.ndarray, np.ndarray]:
    """(raw ids sorted, code of each row) of an id column: integer ids stay integers (sorted
    numerically), anything else is text (stripped, sorted as strings). A missing or empty id
    raises :class:`DatasetError` naming its place."""
    pl = _pl()
    s = series
    if s.null_count():
        k = int(s.is_null().arg_true()[0])
        raise DatasetError(f"{label}, {where(k)}, column {field}: missing {what} id (null)")
    if s.dtype == pl.UInt64 and len(s) and s.max() > _INT64_MAX:
        k = int((s > _INT64_MAX).arg_true()[0])
        raise DatasetError(f"{label}, {where(k)}, column {field}: {what} id {s[k]} does not fit "
                           "in a 64-bit integer")
    if s.dtype.is_float():
        vals = s.to_numpy()
        if np.isfinite(vals).all() and (vals == np.floor(vals)).all() and (
                np.abs(vals).max(initial=0) < 2.0**53):
            s = s.cast(pl.Int64)
        else:
            s = s.cast(pl.String)
    elif not s.dtype.is_integer():
        s = s.cast(pl.String).str.strip_chars()
        empty = s.is_null() | (s.str.len_bytes() == 0)
        if empty.any():
            k = int(empty.arg_true()[0])
            raise DatasetError(f"{label}, {where(k)}, column {field}: empty {what} id")
        as_int = s.cast(pl.Int64, strict=False)
        if as_int.null_count() == 0:
            s = as_int
    if s.dtype.is_integer():
        # 64-bit ids that fit are narrowed while copied out: half the memory to factorise
        narrow = s.dtype in (pl.Int64, pl.UInt64, pl.UInt32) and len(s) \
            and -(2**31) <= s.min() < 2**31 and s.max() < 2**31
        return factorize_ints(numpy_column(s, np.int32 if narrow else None))
    uniq = s.unique().sort()
    codes = uniq.search_sorted(s).to_numpy()
    return np.array(uniq.to_list(), dtype=str), codes


def _check_values(t: dict, label: str, where) -> None:
    """Ratings must be finite numbers (named by place when not)."""
    r = t.get("rating")
    if r is not None:
        bad = np.flatnonzero(~np.isfinite(r))
        if bad.size:
            k = int(bad[0])
            raise DatasetError(f"{label}, {where(k)}: rating {r[k]} is not a finite number")


def read_parquet(path: Path, cols: dict, names: list[str]) -> dict:
    """Columns of a Parquet file by role (``cols``: role -> column index or None)."""
    pl = _pl()
    want = [names[cols[w]] for w in ROLES if cols[w] is not None]
    try:
        df = pl.read_parquet(path, columns=want)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DatasetError(f"{path}: not a readable Parquet file ({exc})") from exc
    if df.height == 0:
        raise DatasetError(f"{path}: empty file")

    def where(k):
        return f"row {k + 1}"

    out = {"names": names, "columns": cols, "first_line": 1, "rows": "row"}
    out["user"], out["item"] = concurrently(
        *(lambda w=w: series_ids(df.get_column(names[cols[w]]), path, where, w, cols[w] + 1)
          for w in ("user", "item")))
    if cols["rating"] is not None:
        s = _no_nulls(df.get_column(names[cols["rating"]]), path, where, cols["rating"], "rating")
        try:
            vals = s.cast(pl.Float32 if s.dtype == pl.Float32 else pl.Float64).to_numpy()
        except pl.exceptions.PolarsError:
            vals = s.cast(pl.Float64, strict=False).fill_null(float("nan")).to_numpy()
        out["rating"] = vals
        _check_values(out, str(path), lambda k: f"{where(k)}, column {cols['rating'] + 1}")
    if cols["timestamp"] is not None:
        s = _no_nulls(df.get_column(names[cols["timestamp"]]), path, where, cols["timestamp"],
                      "timestamp")
        out["timestamp"] = epoch_seconds(s, str(path), where, cols["timestamp"] + 1)
    return out


def parquet_names(path: Path) -> list[str]:
    """The column names of a Parquet file (its schema only)."""
    pl = _pl()
    if not Path(path).exists():
        raise DatasetError(f"{path}: file not found")
    try:
        return list(pl.read_parquet_schema(path))
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DatasetError(f"{path}: not a readable Parquet file ({exc})") from exc


def _text_schema(pl, ncols: int, cols: dict, kinds: dict, wide: bool) -> dict:
    ints = pl.Int64 if wide else pl.Int32
    types = {"int": ints, "float": pl.Float64, "text": pl.String}
    role_of = {j: w for w, j in cols.items() if j is not None}
    schema = {}
    for j in range(ncols):
        w = role_of.get(j)
        if w == "rating":
            dtype = pl.Float64 if wide else pl.Float32
        elif w is not None:
            dtype = types[kinds[w]]
        else:
            dtype = pl.String
        schema[f"c{j}"] = dtype
    return schema


def read_text(source, sep: bytes, header: bool, ncols: int, cols: dict,
              samples: dict) -> dict | None:
    """The role columns of a delimited file read by polars (``source``: a path, plain or gzip,
    or bytes), or None when anything is off (the exact parser then names the line).

    ``samples``: role -> the first data lines' tokens of that column, which choose the types
    (integers, decimals or text).
    """
    pl = _pl()
    if len(sep) != 1 or sep == b" ":
        return None
    kinds = {w: _sample_kind(samples.get(w, [])) for w in ROLES}
    use = sorted(cols[w] for w in ROLES if cols[w] is not None)
    df = None
    for wide in (False, True):
        try:
            df = pl.read_csv(source, has_header=False, skip_rows=1 if header else 0,
                             schema=_text_schema(pl, ncols, cols, kinds, wide), columns=use,
                             separator=sep.decode(), quote_char='"')
            break
        except (pl.exceptions.PolarsError, OSError, ValueError):
            continue
    if df is None or df.height == 0 or any(df.null_count().row(0)):
        return None
    out = {}
    first = 2 if header else 1

    def where(k):
        return f"line {first + k}"

    def column(w):
        return df.get_column(f"c{cols[w]}")

    calls = [lambda w=w: series_ids(column(w), "", where, w, cols[w] + 1) for w in ("user", "item")]
    if cols["timestamp"] is not None:
        calls.append(lambda: epoch_seconds(column("timestamp"), "", where, cols["timestamp"] + 1))
    try:
        got = concurrently(*calls)
    except DatasetError:
        return None  # the exact parser names the line
    out["user"], out["item"] = got[0], got[1]
    if cols["timestamp"] is not None:
        out["timestamp"] = got[2]
    if cols["rating"] is not None:
        out["rating"] = numpy_column(column("rating"))
        if not np.isfinite(out["rating"]).all():
            return None
    return out


def _no_nulls(series, path, where, col: int, what: str):
    """``series`` (a Parquet column, 0-based ``col``) when it has no null; else DatasetError
    naming the file, the first null's row and the column."""
    if series.null_count():
        k = int(series.is_null().arg_true()[0])
        raise DatasetError(f"{path}, {where(k)}, column {col + 1}: missing {what} (null)")
    return series
