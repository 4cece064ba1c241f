"""Exact parsing of a delimited table as columns of tokens: string ids, quoted fields, decimal
commas and integers beyond float64 precision, where the numeric fast path (``textparse``) does
not apply. Errors name the file, line and field."""

from __future__ import annotations

import csv
import io
import re

import numpy as np

from .core import DatasetError
from .textparse import _DECIMAL_COMMA, _chunks, check_fields, factorize_ints

_INT64_MAX = np.iinfo(np.int64).max
_EXACT_FLOAT = 2.0**53  # integers beyond this are not exact in float64
_INT_TOKEN = re.compile(rb"^\s*[-+]?\d+\s*$")


def _too_big(path, col: np.ndarray, first: int, what: str, j: int, k: int | None = None) -> DatasetError:
    """The error for the first token of ``col`` (or token ``k``) outside the int64 range."""
    if k is None:
        k = next((n for n, t in enumerate(col) if _INT_TOKEN.match(t)
                  and not -_INT64_MAX - 1 <= int(t) <= _INT64_MAX), 0)
    tok = col[k].decode("utf-8", "replace").strip() if isinstance(col[k], bytes) else str(col[k])
    return DatasetError(f"{path}, line {first + k}, column {j + 1}: {what} {tok} does not fit in "
                        "a 64-bit integer")


def _ids(path, col: np.ndarray, first: int, what: str, j: int) -> tuple[np.ndarray, np.ndarray]:
    """(raw ids sorted, index of each row) for a token column (bytes)."""
    empty = np.flatnonzero(np.char.str_len(np.char.strip(col)) == 0) if col.dtype.kind == "S" \
        else np.array([], int)
    if empty.size:
        raise DatasetError(f"{path}, line {first + int(empty[0])}: empty {what} id")
    try:
        return factorize_ints(col.astype(np.int64))
    except OverflowError:
        if all(_INT_TOKEN.match(t) for t in col):  # integer ids, one too large: refuse
            raise _too_big(path, col, first, f"{what} id", j) from None
    except ValueError:
        pass
    raw = np.char.decode(np.char.strip(col), "utf-8") if col.dtype.kind == "S" else col.astype(str)
    uniq, inv = np.unique(raw, return_inverse=True)
    return uniq, inv.ravel()


def _number_column(path, col: np.ndarray, first: int, what: str, field: int,
                   decimal_comma: bool = False) -> np.ndarray:
    """Finite float64 values of a token column; with ``decimal_comma`` ``1,5`` reads 1.5."""
    try:
        vals = col.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(vals))
    except ValueError:
        vals, bad = None, np.array([], int)
        if decimal_comma and col.dtype.kind == "S":
            try:
                vals = np.char.replace(col, b",", b".").astype(np.float64)
                bad = np.flatnonzero(~np.isfinite(vals))
            except ValueError:
                vals = None
        if vals is None:
            bad = np.flatnonzero([not _finite(t, decimal_comma) for t in col])
    if bad.size:
        k = int(bad[0])
        tok = col[k].decode("utf-8", "replace") if isinstance(col[k], bytes) else str(col[k])
        raise DatasetError(f"{path}, line {first + k}, field {field}: {what} {tok.strip()!r} "
                           "is not a finite number")
    return vals


def _int_column(path, col: np.ndarray, first: int, what: str, j: int) -> np.ndarray:
    """int64 values of a token column: exact for integers, floored for decimals."""
    try:
        return col.astype(np.int64)
    except OverflowError:
        raise _too_big(path, col, first, what, j) from None
    except ValueError:
        pass
    vals = _number_column(path, col, first, what, j + 1)
    big = np.flatnonzero(np.abs(vals) >= 2.0**63)
    if big.size:
        raise _too_big(path, col, first, what, j, int(big[0]))
    return np.floor(vals).astype(np.int64)


def _finite(token, decimal_comma: bool = False) -> bool:
    try:
        return bool(np.isfinite(float(token)))
    except ValueError:
        if decimal_comma and isinstance(token, bytes) and _DECIMAL_COMMA.match(token):
            return True
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


def _exact_int_column(values: np.ndarray) -> bool:
    """Float column holding integers that float64 represents exactly (|v| < 2**53)."""
    return bool(np.array_equal(values, np.floor(values))
                and (values.size == 0 or np.abs(values).max() < _EXACT_FLOAT))
