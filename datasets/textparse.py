"""Fast parsing of delimited all-numeric text with numpy.

The parsers work on bytes in chunks of whole lines: the number of fields of every line is
checked with vectorised byte counts, then the numbers are parsed by ``np.fromstring``. Only when
something is wrong does a Python loop look at the offending chunk, so every error names the file
and the 1-based line number.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

from .core import DatasetError

CHUNK_BYTES = 1 << 24  # parse ~16 MB of lines at a time
_UNIT = b"\x1f"  # multi-byte separators ("::") are rewritten to this byte
_SEP_NAMES = {b"\t": "tab", b",": "comma", b";": "semicolon", b"|": "pipe", b"::": "'::'", b" ": "space"}
_DECIMAL_COMMA = re.compile(rb"^\s*-?\d+,\d+\s*$")


class NotNumeric(DatasetError):
    """A field that should be a number is not (the message names file, line and field)."""


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
    """``np.unique(values, return_inverse=True)`` for integer ids, in O(n) when the id range is
    not much larger than the number of values (a presence table instead of a sort). 32-bit input
    stays 32-bit (no 64-bit copy of 20M ids); the codes are int32 when they fit."""
    values = np.asarray(values)
    if values.dtype.kind not in "iu" or values.dtype == np.uint64:
        values = values.astype(np.int64)
    if len(values) == 0:
        empty = values.astype(np.int64)
        return empty, empty.copy()
    head = values[:4096]
    if bool(np.all(head[1:] >= head[:-1])) and bool(np.all(values[1:] >= values[:-1])):
        # sorted (a file in user order): runs
        starts = np.flatnonzero(values[1:] != values[:-1]) + 1
        starts = np.concatenate(([0], starts))
        counts = np.diff(np.append(starts, len(values)))
        code_type = np.int32 if len(starts) < 2**31 else np.int64
        return (values[starts].astype(np.int64),
                np.repeat(np.arange(len(starts), dtype=code_type), counts))
    lo, hi = int(values.min()), int(values.max())
    if hi - lo > 4 * len(values) + (1 << 20):
        uniq, inv = np.unique(values, return_inverse=True)
        return uniq.astype(np.int64, copy=False), inv.ravel()
    if hi - lo >= np.iinfo(values.dtype).max:  # the offsets need a wider type
        values = values.astype(np.int64)
    present = np.zeros(hi - lo + 1, dtype=bool)
    for block in _blocks(values, lo):
        present[block] = True
    uniq = np.flatnonzero(present) + lo
    code = np.cumsum(present, dtype=np.int32 if len(uniq) < 2**31 else np.int64)
    code -= 1
    out = np.empty(len(values), dtype=code.dtype)
    for start, block in enumerate(_blocks(values, lo)):
        np.take(code, block, out=out[start * _BLOCK:start * _BLOCK + len(block)])
    return uniq.astype(np.int64, copy=False), out


_BLOCK = 1 << 18  # ids per block: the index temporaries numpy makes stay small


def _blocks(values: np.ndarray, lo: int):
    """``values - lo`` block by block (no offset array, nor numpy's 64-bit index copy, of the
    whole column)."""
    for start in range(0, len(values), _BLOCK):
        block = values[start:start + _BLOCK]
        yield block - block.dtype.type(lo) if lo else block


def integer_column(path, values: np.ndarray, first_line: int, what: str, field: int) -> np.ndarray:
    """``values`` as int64, or :class:`DatasetError` naming the first non-integer's line."""
    bad = np.flatnonzero(values != np.floor(values))
    if bad.size:
        k = int(bad[0])
        raise DatasetError(
            f"{path}, line {first_line + k}, field {field}: {what} {float(values[k])!r} is not an integer"
        )
    return values.astype(np.int64)
