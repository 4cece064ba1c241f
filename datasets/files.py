"""Fast delimited-text parsing and the generic ``file`` loader.

The parsers read the whole file as bytes and work on chunks of whole lines with numpy: the number
of fields of every line is checked with vectorised byte counts, then the numbers are parsed by
``np.fromstring``. Only when something is wrong does a Python loop look at the offending chunk, so
every error names the file and the 1-based line number.

The ``file`` loader reads any CSV/TSV (or Parquet, when ``pyarrow`` is importable) of
``user, item[, rating][, timestamp]``. Raw ids may be integers or strings; they are mapped to
indices 0..n-1 in **sorted** order (numerically when every id of the column is an integer,
otherwise as strings). Duplicate (user, item) pairs keep the latest event (see ``from_coo``).
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from pathlib import Path

import numpy as np

from .core import DatasetError, Interactions, from_coo
from .registry import register

CHUNK_BYTES = 1 << 24  # parse ~16 MB of lines at a time
_UNIT = b"\x1f"  # multi-byte separators ("::") are rewritten to this byte
_SEP_NAMES = {b"\t": "tab", b",": "comma", b";": "semicolon", b"|": "pipe", b"::": "'::'", b" ": "space"}
_HEADER_WORDS = {"user", "item", "rating", "timestamp", "time", "ts", "userid", "itemid", "movieid",
                 "user_id", "item_id", "movie_id", "score", "value", "date"}


class NotNumeric(DatasetError):
    """A field that should be a number is not (the message names file, line and field)."""


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes; missing, unreadable or empty files raise :class:`DatasetError`."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: file not found")
    if not path.is_file():
        raise DatasetError(f"{path}: not a regular file")
    try:
        buf = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    if not buf or buf.isspace():
        raise DatasetError(f"{path}: empty file")
    return buf


def _normalise(buf: bytes, sep: bytes) -> tuple[bytes, bytes]:
    """Single-byte separator version of ``buf`` ending with exactly one newline."""
    if not (buf.endswith(b"\n") and not buf[-2:-1].isspace()):  # avoid copying big buffers
        buf = buf.rstrip(b"\r\n\t ") + b"\n"
    if len(sep) > 1:
        buf, sep = buf.replace(sep, _UNIT), _UNIT
    return buf, sep


def _split_header(buf: bytes) -> tuple[bytes, bytes]:
    """(first line, rest)."""
    end = buf.find(b"\n")
    return buf[:end], buf[end + 1:]


def _chunks(buf: bytes, size: int | None = None):
    """Yield (index of first line, chunk) with chunks made of whole lines."""
    size = size or CHUNK_BYTES
    start, line = 0, 0
    while start < len(buf):
        end = buf.find(b"\n", min(start + size, len(buf)) - 1) + 1
        if end == 0:
            end = len(buf)
        chunk = buf[start:end]
        yield line, chunk
        line += chunk.count(b"\n")
        start = end


def check_fields(path, chunk: bytes, sep: bytes, ncols: int, first_line: int,
                 sep_name: str = "") -> int:
    """Assert every line of ``chunk`` (ending with a newline) has ``ncols`` fields; return the
    number of lines. ``first_line`` is the 1-based number of the chunk's first line."""
    a = np.frombuffer(chunk, dtype=np.uint8)
    nl = np.flatnonzero(a == 10)
    counts = np.bincount(np.searchsorted(nl, np.flatnonzero(a == sep[0])), minlength=len(nl)) + 1
    bad = np.flatnonzero(counts != ncols)
    if bad.size:
        k = int(bad[0])
        line = chunk.split(b"\n")[k]
        if not line.strip():
            raise DatasetError(f"{path}, line {first_line + k}: empty line (expected {ncols} fields)")
        name = sep_name or _SEP_NAMES.get(sep, repr(sep.decode("latin-1")))
        raise DatasetError(
            f"{path}, line {first_line + k}: expected {ncols} {name}-separated fields, "
            f"found {counts[k]}: {line[:80].decode('latin-1')!r}"
        )
    return len(nl)


def _locate_bad_number(path, chunk: bytes, sep: bytes, first_line: int, columns=None):
    """Raise :class:`NotNumeric` for the first field of ``chunk`` that is not a finite number."""
    for k, line in enumerate(chunk.split(b"\n")):
        for j, field in enumerate(line.split(sep)):
            if columns is not None and j not in columns:
                continue
            try:
                ok = np.isfinite(float(field))
            except ValueError:
                ok = False
            if not ok:
                raise NotNumeric(
                    f"{path}, line {first_line + k}, field {j + 1}: "
                    f"{field.decode('latin-1').strip()!r} is not a finite number"
                )
    last = first_line + chunk.count(b"\n") - 1
    raise NotNumeric(f"{path}, lines {first_line}-{last}: cannot parse numbers")


_PLAIN = np.zeros(256, dtype=bool)
_PLAIN[list(b"0123456789-.\n")] = True


def _is_digit(x: np.ndarray) -> np.ndarray:
    return (x >= 48) & (x <= 57)


def _parse_plain(chunk: bytes, sep: bytes, nvals: int) -> np.ndarray | None:
    """Fast path for chunks of plain decimals (``-?digits[.digits]``): integer parsing of the
    digits on either side of the point, recombined exactly. None when it does not apply."""
    a = np.frombuffer(chunk, dtype=np.uint8)
    allowed = _PLAIN.copy()
    allowed[sep[0]] = True
    if not allowed[a].all():
        return None
    spaced = chunk.translate(bytes.maketrans(sep, b" "))
    dots = np.flatnonzero(a == 46)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            toks = np.fromstring(spaced.replace(b".", b" ") if dots.size else spaced,
                                 dtype=np.int64, sep=" ")
    except (ValueError, DeprecationWarning):
        return None
    if toks.size != nvals + dots.size:
        return None
    if dots.size == 0:
        return toks.astype(np.float64)
    if dots[0] == 0 or dots[-1] == len(a) - 1 or not (
        _is_digit(a[dots - 1]).all() and _is_digit(a[dots + 1]).all()
    ):
        return None
    bounds = np.flatnonzero((a == 10) | (a == sep[0]))
    fid = np.searchsorted(bounds, dots)  # field holding each point
    if bounds.size != nvals or np.any(fid[1:] == fid[:-1]):
        return None
    has_dot = np.zeros(nvals, dtype=np.int64)
    has_dot[fid] = 1
    first_tok = np.arange(nvals) + np.cumsum(has_dot) - has_dot
    vals = toks[first_tok].astype(np.float64)
    k = bounds[fid] - dots - 1  # digits after the point
    ip = toks[first_tok[fid]]
    if k.max() > 15 or np.abs(ip).max() >= 10**15:
        return None
    mant = np.abs(ip) * 10 ** k + toks[first_tok[fid] + 1]
    if mant.max() >= 2**53:
        return None
    start = np.where(fid > 0, bounds[np.maximum(fid - 1, 0)] + 1, 0)
    v = mant / 10.0 ** k
    vals[fid] = np.where(a[start] == 45, -v, v)
    return vals


def parse_numeric(path, buf: bytes, sep: bytes, ncols: int, header: bool = False,
                  sep_name: str = "", first_line: int = 1) -> tuple[np.ndarray, int]:
    """Parse a delimited all-numeric table.

    Returns
    -------
    values : ndarray, float64, shape (n_rows, ncols)
    first_line : int
        1-based line number of row 0 (2 with a header), for error messages.
    """
    buf, sep1 = _normalise(buf, sep)
    first = first_line
    if header:
        _, buf = _split_header(buf)
        first += 1
        if not buf.strip():
            raise DatasetError(f"{path}: no data lines after the header")
    trans = bytes.maketrans(sep1, b" ")
    parts = []
    for line0, chunk in _chunks(buf):
        n = check_fields(path, chunk, sep1, ncols, first + line0, sep_name or _SEP_NAMES.get(sep, ""))
        vals = _parse_plain(chunk, sep1, n * ncols)
        if vals is not None:
            parts.append(vals.reshape(n, ncols))
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                vals = np.fromstring(chunk.translate(trans), dtype=np.float64, sep=" ")
        except (ValueError, DeprecationWarning):
            vals = None
        if vals is None or vals.size != n * ncols or not np.isfinite(vals).all():
            _locate_bad_number(path, chunk, sep1, first + line0)
        parts.append(vals.reshape(n, ncols))
    return np.concatenate(parts), first


def factorize_ints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` for int64 ids, in O(n) when the id range is
    not much larger than the number of values (a presence table instead of a sort)."""
    values = np.asarray(values, dtype=np.int64)
    if len(values) == 0:
        return values.copy(), values.copy()
    lo, hi = int(values.min()), int(values.max())
    if hi - lo > 4 * len(values) + (1 << 20):
        uniq, inv = np.unique(values, return_inverse=True)
        return uniq, inv.ravel()
    present = np.zeros(hi - lo + 1, dtype=bool)
    present[values - lo] = True
    uniq = np.flatnonzero(present) + lo
    code = np.cumsum(present, dtype=np.int64) - 1
    return uniq, code[values - lo]


def integer_column(path, values: np.ndarray, first_line: int, what: str, field: int) -> np.ndarray:
    """``values`` as int64, or :class:`DatasetError` naming the first non-integer's line."""
    bad = np.flatnonzero(values != np.floor(values))
    if bad.size:
        k = int(bad[0])
        raise DatasetError(
            f"{path}, line {first_line + k}, field {field}: {what} {float(values[k])!r} is not an integer"
        )
    return values.astype(np.int64)


# ----------------------------------------------------------------------------- generic files
def detect_sep(path, buf: bytes) -> bytes:
    """The first of tab, ``::``, comma, semicolon, pipe present on every one of the first lines;
    otherwise runs of spaces."""
    lines = [ln for ln in buf[:65536].split(b"\n")[:20] if ln.strip()]
    if len(lines) > 1 and not buf[:65536].endswith(b"\n") and len(buf) > 65536:
        lines = lines[:-1]  # last one may be cut
    for sep in (b"\t", b"::", b",", b";", b"|"):
        if all(ln.count(sep) > 0 for ln in lines):  # the field check reports odd lines later
            return sep
    if all(len(ln.split()) > 1 for ln in lines):
        return b" "
    raise DatasetError(f"{path}: cannot detect the separator (tried tab, '::', comma, semicolon, "
                       "pipe, spaces); pass sep=")


def _is_number(token: bytes) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def detect_header(first: list[bytes], second: list[bytes] | None) -> bool:
    """True when the first line looks like column names."""
    names = [f.strip().strip(b'"').decode("latin-1").lower() for f in first]
    if any(n in _HEADER_WORDS for n in names):
        return True
    if second is None:
        return False
    return any(not _is_number(a) and _is_number(b) for a, b in zip(first, second, strict=False))


def _resolve_col(spec, names: list[str] | None, ncols: int, what: str, default, path):
    """Column index from a position or a header name; ``False`` disables an optional column."""
    if spec is False:
        return None
    if spec is None:
        if names is not None:
            aliases = {
                "user": ("user", "userid", "user_id", "uid"),
                "item": ("item", "itemid", "item_id", "movieid", "movie_id", "iid"),
                "rating": ("rating", "score", "value"),
                "timestamp": ("timestamp", "time", "ts"),
            }[what]
            low = [n.lower() for n in names]
            for a in aliases:
                if a in low:
                    return low.index(a)
        return default if (default is not None and default < ncols) else None
    if isinstance(spec, str) and not spec.lstrip("-").isdigit():
        if names is None or spec not in names:
            raise DatasetError(f"{path}: {what}_col={spec!r} is not a column name "
                               f"(columns: {names if names is not None else 'no header'})")
        return names.index(spec)
    idx = int(spec)
    if not 0 <= idx < ncols:
        raise DatasetError(f"{path}: {what}_col={spec} is outside the {ncols} columns")
    return idx


def _ids(path, col: np.ndarray, first: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(raw ids sorted, index of each row) for a token column (bytes)."""
    empty = np.flatnonzero(np.char.str_len(col) == 0) if col.dtype.kind == "S" else np.array([], int)
    if empty.size:
        raise DatasetError(f"{path}, line {first + int(empty[0])}: empty {what} id")
    try:
        return factorize_ints(col.astype(np.int64))
    except ValueError:
        raw = np.char.decode(np.char.strip(col), "utf-8") if col.dtype.kind == "S" else col.astype(str)
    uniq, inv = np.unique(raw, return_inverse=True)
    return uniq, inv.ravel()


def _number_column(path, col: np.ndarray, first: int, what: str, field: int) -> np.ndarray:
    try:
        vals = col.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(vals))
    except ValueError:
        vals, bad = None, np.flatnonzero([not _finite(t) for t in col])
    if bad.size:
        k = int(bad[0])
        tok = col[k].decode("latin-1") if isinstance(col[k], bytes) else str(col[k])
        raise DatasetError(f"{path}, line {first + k}, field {field}: {what} {tok.strip()!r} "
                           "is not a finite number")
    return vals


def _finite(token) -> bool:
    try:
        return bool(np.isfinite(float(token)))
    except ValueError:
        return False


def _token_table(path, buf: bytes, sep: bytes, ncols: int, first: int) -> list[np.ndarray]:
    """Columns of a delimited table as arrays of bytes tokens (quotes handled via ``csv``)."""
    if b'"' in buf:
        text = buf.decode("utf-8", errors="replace")
        delim = sep.decode() if len(sep) == 1 else "\x1f"
        if len(sep) > 1:
            text = text.replace(sep.decode(), delim)
        rows = []
        reader = csv.reader(io.StringIO(text), delimiter=delim)
        for row in reader:
            if len(row) != ncols:
                raise DatasetError(f"{path}, line {first + reader.line_num - 1}: expected {ncols} "
                                   f"fields, found {len(row)}")
            rows.append([f.encode("utf-8") for f in row])
        return [np.array([r[j] for r in rows], dtype=bytes) for j in range(ncols)]
    nlines = 0
    for line0, chunk in _chunks(buf):
        nlines += check_fields(path, chunk, sep, ncols, first + line0)
    tokens = buf.replace(b"\r", b"").replace(sep, b"\n").split(b"\n")[:-1]
    return [np.array(tokens[j::ncols], dtype=bytes) for j in range(ncols)]


def read_interactions_table(path, sep=None, header=None, user_col=None, item_col=None,
                            rating_col=None, timestamp_col=None) -> dict:
    """Read a text table of interactions into arrays (see :func:`file_loader`)."""
    buf = read_bytes(path)
    if sep is None:
        sep_b = detect_sep(path, buf)
    else:
        sep_b = {"tab": b"\t", "\\t": b"\t", "space": b" "}.get(sep, sep.encode() if isinstance(sep, str) else sep)
    if sep_b == b" ":  # runs of blanks -> one tab
        buf = re.sub(rb"(?m)^[ \t]+|[ \t]+$", b"", re.sub(rb"[ \t]+", b"\t", buf))
        sep_b = b"\t"
    buf, sep1 = _normalise(buf, sep_b)
    first_line, rest = _split_header(buf)
    f1 = first_line.rstrip(b"\r").split(sep1)
    ncols = len(f1)
    second = rest[: rest.find(b"\n")].rstrip(b"\r").split(sep1) if rest else None
    if header is None or header == "auto":
        header = detect_header(f1, second)
    names = [f.strip().strip(b'"').decode("utf-8", "replace") for f in f1] if header else None
    if ncols < 2:
        raise DatasetError(f"{path}, line 1: expected at least 2 fields (user, item), found {ncols}; "
                           "wrong separator? pass sep=")
    cols = {
        "user": _resolve_col(user_col, names, ncols, "user", 0, path),
        "item": _resolve_col(item_col, names, ncols, "item", 1, path),
        "rating": _resolve_col(rating_col, names, ncols, "rating", 2, path),
        "timestamp": _resolve_col(timestamp_col, names, ncols, "timestamp", 3, path),
    }
    body, first = (rest, 2) if header else (buf, 1)
    if not body.strip():
        raise DatasetError(f"{path}: no data lines after the header")
    table = None
    if b'"' not in body:
        try:  # fast path: everything numeric
            table, _ = parse_numeric(path, body, sep1, ncols, sep_name=_SEP_NAMES.get(sep_b, ""),
                                     first_line=first)
        except NotNumeric:
            table = None
    out = {"names": names, "columns": cols, "first_line": first}
    if table is not None and all(
        np.array_equal(table[:, cols[w]], np.floor(table[:, cols[w]])) for w in ("user", "item")
    ):
        for w in ("user", "item"):
            out[w] = factorize_ints(table[:, cols[w]].astype(np.int64))
        if cols["rating"] is not None:
            out["rating"] = table[:, cols["rating"]]
        if cols["timestamp"] is not None:
            out["timestamp"] = table[:, cols["timestamp"]].astype(np.int64)
        return out
    tok = _token_table(path, body, sep1, ncols, first)
    for w in ("user", "item"):
        out[w] = _ids(path, tok[cols[w]], first, w)
    if cols["rating"] is not None:
        out["rating"] = _number_column(path, tok[cols["rating"]], first, "rating", cols["rating"] + 1)
    if cols["timestamp"] is not None:
        ts = _number_column(path, tok[cols["timestamp"]], first, "timestamp", cols["timestamp"] + 1)
        out["timestamp"] = ts.astype(np.int64)
    return out


def read_parquet_table(path, user_col=None, item_col=None, rating_col=None, timestamp_col=None) -> dict:
    """Read a Parquet table (needs ``pyarrow``, which is optional)."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DatasetError(f"{path}: reading Parquet needs the optional package pyarrow, which is "
                           "not installed (pip install pyarrow), or convert the file to CSV") from exc
    if not Path(path).exists():
        raise DatasetError(f"{path}: file not found")
    table = pq.read_table(path)
    names = list(table.column_names)
    ncols = len(names)
    cols = {
        "user": _resolve_col(user_col, names, ncols, "user", 0, path),
        "item": _resolve_col(item_col, names, ncols, "item", 1, path),
        "rating": _resolve_col(rating_col, names, ncols, "rating", 2, path),
        "timestamp": _resolve_col(timestamp_col, names, ncols, "timestamp", 3, path),
    }
    if table.num_rows == 0:
        raise DatasetError(f"{path}: empty file")
    out = {"names": names, "columns": cols, "first_line": 1}
    for w in ("user", "item"):
        arr = table.column(cols[w]).to_numpy(zero_copy_only=False)
        if arr.dtype.kind not in "iu":
            arr = arr.astype(str)
        uniq, inv = np.unique(arr, return_inverse=True)
        out[w] = (uniq, inv.ravel())
    for w in ("rating", "timestamp"):
        if cols[w] is not None:
            arr = table.column(cols[w]).to_numpy(zero_copy_only=False)
            if arr.dtype.kind == "M":
                arr = arr.astype("datetime64[s]").astype(np.int64)
            vals = np.asarray(arr, dtype=np.float64)
            bad = np.flatnonzero(~np.isfinite(vals))
            if bad.size:
                raise DatasetError(f"{path}, row {int(bad[0]) + 1}: {w} is not a finite number")
            out[w] = vals if w == "rating" else vals.astype(np.int64)
    return out


@register("file", "Any CSV/TSV (or Parquet with pyarrow) of user, item[, rating][, timestamp]; "
          "--param path=FILE")
def file_loader(data_dir=None, path=None, sep=None, header=None, user_col=None, item_col=None,
                rating_col=None, timestamp_col=None, name=None) -> Interactions:
    """Load interactions from a delimited text file or a Parquet file.

    Parameters
    ----------
    path : str
        The file; relative paths are taken inside ``data_dir`` when it is given.
    sep : str, optional
        Field separator (``","``, ``"\\t"``/``"tab"``, ``"::"``, ``"space"``...); detected from the
        first lines when None.
    header : bool or "auto", optional
        Whether the first line holds column names; detected when None/"auto".
    user_col, item_col, rating_col, timestamp_col : int or str, optional
        0-based positions or header names. By default the header names (user/userId/user_id,
        item/itemId/movieId, rating, timestamp) or positions 0, 1, 2, 3 as far as there are
        columns. ``False`` drops the rating or timestamp column.

    Returns
    -------
    Interactions
        Values are the ratings (1.0 without a rating column); ids mapped in sorted order.
    """
    if path is None:
        raise DatasetError("dataset 'file' needs a path: --param path=FILE")
    p = Path(path)
    if data_dir is not None and not p.is_absolute():
        p = Path(data_dir) / p
    if p.suffix.lower() in (".parquet", ".pq"):
        t = read_parquet_table(p, user_col, item_col, rating_col, timestamp_col)
    else:
        t = read_interactions_table(p, sep, header, user_col, item_col, rating_col, timestamp_col)
    (uids, u), (iids, i) = t["user"], t["item"]
    ratings = t.get("rating")
    return from_coo(
        name or p.stem, u, i, len(uids), len(iids),
        values=ratings, ratings=ratings, timestamps=t.get("timestamp"),
        user_ids=uids, item_ids=iids,
        meta={"source": str(p), "columns": {k: v for k, v in t["columns"].items() if v is not None},
              "id_order": "sorted"},
    )
