"""Fast delimited-text parsing and the generic ``file`` loader.

The parsers read the whole file as bytes and work on chunks of whole lines with numpy: the number
of fields of every line is checked with vectorised byte counts, then the numbers are parsed by
``np.fromstring``. Only when something is wrong does a Python loop look at the offending chunk, so
every error names the file and the 1-based line number.

The ``file`` loader reads any CSV/TSV (or Parquet, when ``pyarrow`` is importable) of
``user, item[, rating][, timestamp]``. Raw ids may be integers or strings; they are mapped to
indices 0..n-1 in **sorted** order (numerically when every id of the column is an integer,
otherwise as strings). Duplicate (user, item) pairs keep the latest event (see ``from_coo``).

Input handling (see :func:`file_loader`): gzip, bzip2, xz and single-file zip input is
decompressed transparently (recognised by its magic bytes, whatever the file is called); a UTF-8
byte-order mark is dropped and UTF-16/32 with a BOM is decoded; other text must be UTF-8 unless
``encoding=`` says otherwise. The separator is the candidate giving a consistent number of mostly
numeric fields; with a separator other than the comma, ``1,5`` is read as 1.5. Two roles never
share a column, and integer ids must fit 64 bits.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import lzma
import re
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .core import DatasetError, Interactions, from_coo
from .registry import register

CHUNK_BYTES = 1 << 24  # parse ~16 MB of lines at a time
_UNIT = b"\x1f"  # multi-byte separators ("::") are rewritten to this byte
_SEP_NAMES = {b"\t": "tab", b",": "comma", b";": "semicolon", b"|": "pipe", b"::": "'::'", b" ": "space"}
# Header names of each role, compared after lower-casing and dropping blanks, "_" and "-"
# ("User ID", "user_id" and "userId" are all "userid").
ALIASES = {
    "user": ("user", "userid", "uid", "users", "customer", "customerid", "reviewerid", "visitorid"),
    "item": ("item", "itemid", "iid", "items", "movie", "movieid", "product", "productid", "asin",
             "isbn", "track", "trackid", "song", "songid", "artist", "artistid", "book", "bookid",
             "businessid", "article", "articleid"),
    "rating": ("rating", "ratings", "score", "value", "stars"),
    "timestamp": ("timestamp", "time", "ts", "unixtime", "unixtimestamp"),
}
ROLES = ("user", "item", "rating", "timestamp")
_HEADER_WORDS = {a for names in ALIASES.values() for a in names} | {"date", "moviename", "title"}
_BOM = codecs.BOM_UTF8
_INT64_MAX = np.iinfo(np.int64).max
_EXACT_FLOAT = 2.0**53  # integers beyond this are not exact in float64
_DECIMAL_COMMA = re.compile(rb"^\s*-?\d+,\d+\s*$")


def _norm_name(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name.strip().strip('"').lower())


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
    if buf.startswith(_BOM):  # utf-8-sig: the mark is not part of the first field
        buf = buf[len(_BOM):]
    if not buf or buf.isspace():
        raise DatasetError(f"{path}: empty file")
    return buf


# ----------------------------------------------------------------------------- compression, text
_MAGIC = (  # (prefix, format); checked on the first bytes, whatever the file's name
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),  # empty zip
    (b"(\xb5/\xfd", "zstd"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!\x1a\x07", "rar"),
    (b"PAR1", "parquet"),
)
_COMPRESSED_SUFFIXES = (".gz", ".gzip", ".bz2", ".xz", ".lzma", ".zip", ".zst")


def sniff_format(head: bytes) -> str | None:
    """"gzip", "bzip2", "xz", "zip", "zstd", "7z", "rar", "parquet" from a file's first bytes,
    or None (plain text, presumably)."""
    for prefix, fmt in _MAGIC:
        if head.startswith(prefix):
            return fmt
    # bzip2: "BZh" + block size digit + the block (pi) or end-of-stream (sqrt pi) magic
    if head[:3] == b"BZh" and head[3:4] in b"123456789" and head[4:10] in (
            b"\x31\x41\x59\x26\x53\x59", b"\x17\x72\x45\x38\x50\x90"):
        return "bzip2"
    return None


def decompress(path, buf: bytes) -> tuple[bytes, str]:
    """``buf`` decompressed when it is gzip/bzip2/xz or a zip of one file (nested at most twice);
    returns (bytes, label for messages: the path, or ``path:member`` for a zip)."""
    label = str(path)
    for _ in range(3):
        fmt = sniff_format(buf[:16])
        if fmt in (None, "parquet"):
            return buf, label
        if fmt in ("zstd", "7z", "rar"):
            raise DatasetError(f"{label}: this is a {fmt} archive, which cannot be read directly; "
                               "decompress it first (gzip, bzip2, xz and zip are read as they are)")
        try:
            if fmt == "gzip":
                buf = gzip.decompress(buf)
            elif fmt == "bzip2":
                buf = bz2.decompress(buf)
            elif fmt == "xz":
                buf = lzma.decompress(buf)
            else:
                with zipfile.ZipFile(io.BytesIO(buf)) as zf:
                    members = [m for m in zf.infolist() if not m.is_dir()
                               and not m.filename.startswith("__MACOSX/")
                               and not Path(m.filename).name.startswith(".")]
                    if len(members) != 1:
                        names = ", ".join(m.filename for m in members[:5]) or "no files"
                        more = f" and {len(members) - 5} more" if len(members) > 5 else ""
                        raise DatasetError(f"{label}: zip archive holds {len(members)} files "
                                           f"({names}{more}); expected exactly one: unzip it and "
                                           "pass --param path=THE_FILE")
                    buf = zf.read(members[0])
                    label = f"{label}:{members[0].filename}"
        except DatasetError:
            raise
        except (OSError, EOFError, ValueError, RuntimeError, NotImplementedError, zlib.error,
                lzma.LZMAError, zipfile.BadZipFile) as exc:
            raise DatasetError(f"{label}: {fmt} data is corrupt or truncated ({exc})") from exc
    return buf, label


def _utf8_error(label, buf: bytes, start: int, hint: str) -> DatasetError:
    line = buf.count(b"\n", 0, start) + 1
    col = start - (buf.rfind(b"\n", 0, start) + 1) + 1
    return DatasetError(f"{label}, line {line}, column {col} (byte {start + 1}): byte "
                        f"0x{buf[start]:02x} is not valid UTF-8; {hint}")


def to_utf8(label, buf: bytes, encoding: str | None = None) -> bytes:
    """``buf`` as UTF-8 text without a byte-order mark. Without ``encoding`` the text must be
    UTF-8 (UTF-16/32 with a BOM is converted); invalid bytes raise :class:`DatasetError` naming
    the line, column and byte."""
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise DatasetError(f"encoding={encoding!r} is not a known text encoding "
                               "(e.g. utf-8, latin-1, cp1252)") from None
        try:
            text = buf.decode(encoding)
        except UnicodeDecodeError as exc:
            line = buf.count(b"\n", 0, exc.start) + 1
            raise DatasetError(f"{label}, line {line} (byte {exc.start + 1}): cannot decode as "
                               f"{encoding} ({exc.reason})") from None
        return text.lstrip("\ufeff").encode("utf-8")
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if buf.startswith(bom):
            try:
                return buf.decode(codec).encode("utf-8")
            except UnicodeDecodeError as exc:
                raise DatasetError(f"{label}, byte {exc.start + 1}: invalid {codec.upper()} text "
                                   f"({exc.reason})") from None
    if buf.startswith(_BOM):
        buf = buf[len(_BOM):]
    nul = buf.find(b"\x00")
    if nul >= 0:
        line = buf.count(b"\n", 0, nul) + 1
        raise DatasetError(f"{label}, line {line} (byte {nul + 1}): NUL byte: this is a binary "
                           "file, not delimited text (UTF-16 without a byte-order mark? save it "
                           "as UTF-8)")
    if buf and np.frombuffer(buf, dtype=np.uint8).max() >= 0x80:
        try:
            buf.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _utf8_error(label, buf, exc.start,
                              "the file is probably Latin-1 or Windows-1252: pass --param "
                              "encoding=latin-1 (or cp1252), or re-encode it as UTF-8") from None
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
_SEP_CANDIDATES = (b"\t", b"::", b",", b";", b"|")


def _split_line(line: bytes, sep: bytes) -> list[bytes]:
    """Fields of one line (quotes honoured when the line has any; ``b" "`` = runs of blanks)."""
    if sep == b" ":
        return line.split()
    if b'"' in line and len(sep) == 1:
        try:
            row = next(csv.reader([line.decode("utf-8", "replace")], delimiter=sep.decode()))
            return [f.encode("utf-8") for f in row]
        except (StopIteration, csv.Error):
            pass
    return line.split(sep)


def _is_number(token: bytes, decimal_comma: bool = False) -> bool:
    token = token.strip().strip(b'"')
    try:
        float(token)
        return True
    except ValueError:
        return decimal_comma and bool(_DECIMAL_COMMA.match(token))


def detect_sep(path, buf: bytes) -> bytes:
    """The separator of ``buf`` judged on its first lines.

    Candidates are tab, ``::``, comma, semicolon, pipe (each present on every line) and runs of
    blanks (when every line has two fields or more). The winner gives every line the same number
    of fields, then the largest share of numeric fields below the first line (with a separator
    other than the comma ``1,5`` counts as a number, a decimal comma), then comes first in that
    list. So ``1;6;1,5`` is semicolon-separated, not split on its decimal comma.
    """
    head = buf[:65536]
    lines = [ln.rstrip(b"\r") for ln in head.split(b"\n")[:20] if ln.strip()]
    if len(lines) > 1 and not head.endswith(b"\n") and len(buf) > 65536:
        lines = lines[:-1]  # last one may be cut
    scored = []
    for rank, sep in enumerate((*_SEP_CANDIDATES, b" ")):
        if sep == b" ":
            if not all(len(ln.split()) > 1 for ln in lines):
                continue
        elif not all(sep in ln for ln in lines):
            continue
        rows = [_split_line(ln, sep) for ln in lines]
        consistent = len({len(r) for r in rows}) == 1
        data = rows[1:] if len(rows) > 1 else rows
        fields = [f for r in data for f in r]
        numeric = sum(_is_number(f, sep != b",") for f in fields) / max(1, len(fields))
        scored.append((consistent, numeric, -rank, sep))
    if scored:
        return max(scored)[3]
    raise DatasetError(f"{path}: cannot detect the separator (tried tab, '::', comma, semicolon, "
                       "pipe, spaces); pass sep=")


def detect_header(first: list[bytes], second: list[bytes] | None, decimal_comma: bool = False) -> bool:
    """True when the first line looks like column names."""
    names = [_norm_name(f.decode("utf-8", "replace")) for f in first]
    if any(n in _HEADER_WORDS for n in names):
        return True
    if second is None:
        return False
    return any(not _is_number(a, decimal_comma) and _is_number(b, decimal_comma)
               for a, b in zip(first, second, strict=False))


def _explicit_col(spec, names: list[str] | None, ncols: int, what: str, path) -> int:
    if isinstance(spec, str) and not spec.strip().lstrip("-").isdigit():
        if names is not None and spec in names:
            if names.count(spec) > 1:
                raise DatasetError(f"{path}: {what}_col={spec!r} names {names.count(spec)} "
                                   "columns; pass its 0-based position instead")
            return names.index(spec)
        low = [n.lower() for n in names] if names is not None else []
        if low.count(spec.lower()) == 1:
            return low.index(spec.lower())
        raise DatasetError(f"{path}: {what}_col={spec!r} is not a column name "
                           f"(columns: {names if names is not None else 'no header'})")
    if isinstance(spec, bool) or not isinstance(spec, (int, str)):
        raise DatasetError(f"{path}: {what}_col={spec!r}: expected a column name or a 0-based "
                           "position")
    idx = int(spec)
    if not 0 <= idx < ncols:
        raise DatasetError(f"{path}: {what}_col={spec} is outside the {ncols} columns")
    return idx


def _col_label(names, j: int) -> str:
    return f"column {j + 1} ({names[j]!r})" if names is not None else f"column {j + 1}"


def resolve_columns(specs: dict, names: list[str] | None, ncols: int, path) -> dict:
    """Column index (or None) of each role: user, item, rating, timestamp.

    In this order: explicit ``*_col`` specs (a header name or a 0-based position; ``False``
    drops rating/timestamp), then header names (:data:`ALIASES`), then positions 0, 1, 2, 3.
    A position is not used when another role holds that column or the header names it as
    another role. Two roles never share a column: when the user or item column cannot be told
    apart this raises :class:`DatasetError` naming the columns and the ``user_col=``/``item_col=``
    parameters.
    """
    cols: dict[str, int | None] = {}
    for w in ROLES:
        spec = specs.get(w)
        if spec is False:
            if w in ("user", "item"):
                raise DatasetError(f"{path}: {w}_col=false: the {w} column cannot be dropped")
            cols[w] = None
        elif spec is not None:
            cols[w] = _explicit_col(spec, names, ncols, w, path)
    seen: dict[int, str] = {}
    for w, c in cols.items():
        if c is not None and c in seen:
            raise DatasetError(f"{path}: {seen[c]}_col and {w}_col both name "
                               f"{_col_label(names, c)}; each role needs its own column")
        if c is not None:
            seen[c] = w
    listing = ", ".join(names) if names is not None else f"{ncols} columns, no header"
    fix = "pass --param user_col=NAME --param item_col=NAME (names or 0-based positions)"
    norm = [_norm_name(n) for n in names] if names is not None else None
    if norm is not None:
        for w in ROLES:
            if w in cols:
                continue
            hits = [j for j, n in enumerate(norm) if n in ALIASES[w] and j not in seen]
            if len(hits) > 1:
                which = " and ".join(repr(names[j]) for j in hits)
                raise DatasetError(f"{path}: columns {which} could each be the {w} column "
                                   f"(columns: {listing}); pass --param {w}_col=NAME")
            if hits:
                cols[w] = hits[0]
                seen[hits[0]] = w
    for default, w in enumerate(ROLES):
        if w in cols:
            continue
        taken = seen.get(default) if default < ncols else None
        named = None
        if norm is not None and default < ncols:
            named = next((r for r in ROLES if r != w and norm[default] in ALIASES[r]), None)
        if default < ncols and taken is None and named is None:
            cols[w] = default
            seen[default] = w
            continue
        if w in ("user", "item"):
            if default >= ncols:
                why = f"there are only {ncols} columns"
            else:
                why = f"{_col_label(names, default)} is the {taken or named} column"
            examples = ", ".join(ALIASES[w][:4])
            raise DatasetError(f"{path}: cannot tell which column holds the {w} ids: no column is "
                               f"named like one ({examples}, ...) and {why} (columns: {listing}); "
                               f"{fix}")
        cols[w] = None
    return {w: cols[w] for w in ROLES}


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


def read_interactions_table(path, sep=None, header=None, user_col=None, item_col=None,
                            rating_col=None, timestamp_col=None, encoding=None,
                            buf: bytes | None = None) -> dict:
    """Read a text table of interactions into arrays (see :func:`file_loader`).

    ``buf`` (already read, decompressed and UTF-8) skips reading ``path``, which then only
    labels the messages.
    """
    if buf is None:
        buf, label = decompress(path, read_bytes(path))
        buf = to_utf8(label, buf, encoding)
        path = label
    if not buf or buf.isspace():
        raise DatasetError(f"{path}: empty file")
    if sep is None:
        sep_b = detect_sep(path, buf)
    else:
        sep_b = {"tab": b"\t", "\\t": b"\t", "space": b" "}.get(sep, sep.encode() if isinstance(sep, str) else sep)
    decimal_comma = sep_b != b","
    if sep_b == b" ":  # runs of blanks -> one tab
        buf = re.sub(rb"(?m)^[ \t]+|[ \t]+$", b"", re.sub(rb"[ \t]+", b"\t", buf))
        sep_b = b"\t"
    buf, sep1 = _normalise(buf, sep_b)
    first_line, rest = _split_header(buf)
    f1 = first_line.rstrip(b"\r").split(sep1)
    ncols = len(f1)
    second = rest[: rest.find(b"\n")].rstrip(b"\r").split(sep1) if rest else None
    if header is None or header == "auto":
        header = detect_header(f1, second, decimal_comma)
    names = [f.strip().strip(b'"').decode("utf-8", "replace") for f in f1] if header else None
    if ncols < 2:
        raise DatasetError(f"{path}, line 1: expected at least 2 fields (user, item), found {ncols}; "
                           "wrong separator? pass sep=")
    cols = resolve_columns({"user": user_col, "item": item_col, "rating": rating_col,
                            "timestamp": timestamp_col}, names, ncols, path)
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
    int_roles = [w for w in ("user", "item", "timestamp") if cols[w] is not None]
    if table is not None and all(_exact_int_column(table[:, cols[w]]) for w in int_roles):
        for w in ("user", "item"):
            out[w] = factorize_ints(table[:, cols[w]].astype(np.int64))
        if cols["rating"] is not None:
            out["rating"] = table[:, cols["rating"]]
        if cols["timestamp"] is not None:
            out["timestamp"] = table[:, cols["timestamp"]].astype(np.int64)
        return out
    # strings, quotes, decimal commas, or integers too large for float64: exact token parsing
    tok = _token_table(path, body, sep1, ncols, first)
    for w in ("user", "item"):
        out[w] = _ids(path, tok[cols[w]], first, w, cols[w])
    if cols["rating"] is not None:
        out["rating"] = _number_column(path, tok[cols["rating"]], first, "rating",
                                       cols["rating"] + 1, decimal_comma)
    if cols["timestamp"] is not None:
        out["timestamp"] = _int_column(path, tok[cols["timestamp"]], first, "timestamp",
                                       cols["timestamp"])
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
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises its own ArrowInvalid/ArrowIOError/OSError
        raise DatasetError(f"{path}: not a readable Parquet file ({exc})") from exc
    names = list(table.column_names)
    ncols = len(names)
    cols = resolve_columns({"user": user_col, "item": item_col, "rating": rating_col,
                            "timestamp": timestamp_col}, names, ncols, path)
    if table.num_rows == 0:
        raise DatasetError(f"{path}: empty file")
    out = {"names": names, "columns": cols, "first_line": 1, "rows": "row"}
    for w in ("user", "item"):
        arr = table.column(cols[w]).to_numpy(zero_copy_only=False)
        if arr.dtype.kind == "u" and arr.size and arr.max() > _INT64_MAX:
            k = int(np.argmax(arr > _INT64_MAX))
            raise DatasetError(f"{path}, row {k + 1}, column {cols[w] + 1}: {w} id {arr[k]} does "
                               "not fit in a 64-bit integer")
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


def _stem(p: Path) -> str:
    name = p.name
    for suffix in _COMPRESSED_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return Path(name).stem or name


@register("file", "Any CSV/TSV (or Parquet with pyarrow) of user, item[, rating][, timestamp], "
          "plain or gzip/bz2/xz/zip; --param path=FILE")
def file_loader(data_dir=None, path=None, sep=None, header=None, user_col=None, item_col=None,
                rating_col=None, timestamp_col=None, name=None, encoding=None) -> Interactions:
    """Load interactions from a delimited text file or a Parquet file.

    Parameters
    ----------
    path : str
        The file; relative paths are taken inside ``data_dir`` when it is given. gzip, bzip2, xz
        and single-file zip files are decompressed (recognised by their first bytes, not their
        name); Parquet is recognised by its name or its ``PAR1`` magic.
    sep : str, optional
        Field separator (``","``, ``"\\t"``/``"tab"``, ``"::"``, ``"space"``...); detected from the
        first lines when None (see :func:`detect_sep`). With any separator but the comma, a
        rating written ``1,5`` (decimal comma) reads 1.5.
    header : bool or "auto", optional
        Whether the first line holds column names; detected when None/"auto".
    user_col, item_col, rating_col, timestamp_col : int or str, optional
        0-based positions or header names. By default the header names (:data:`ALIASES`: user,
        userId, user_id, customer...; item, itemId, movieId, product, asin...; rating, score...;
        timestamp, time, ts) or positions 0, 1, 2, 3 as far as there are columns and no other role
        holds them. ``False`` drops the rating or timestamp column. Two roles never share a
        column; when the user or item column is ambiguous this is an error.
    encoding : str, optional
        Text encoding, e.g. ``latin-1`` or ``cp1252``. By default the file must be UTF-8 (a
        byte-order mark is dropped; UTF-16/32 with a byte-order mark is read too), and a
        non-UTF-8 byte is an error naming its line, column and byte offset.

    Returns
    -------
    Interactions
        Values are the ratings (1.0 without a rating column); ids mapped in sorted order. Integer
        ids must fit in 64 bits. Ratings <= 0 are listed in ``meta["nonpositive_ratings"]``, and
        :func:`mfsoftmax.datasets.load` refuses to binarise them without a ``min_rating``.
    """
    if path is None:
        raise DatasetError("dataset 'file' needs a path: --param path=FILE")
    p = Path(str(path)).expanduser()
    if data_dir is not None and not p.is_absolute():
        p = Path(data_dir) / p
    raw = None if p.suffix.lower() in (".parquet", ".pq") else read_bytes(p)
    if raw is None or sniff_format(raw[:16]) == "parquet":
        t = read_parquet_table(p, user_col, item_col, rating_col, timestamp_col)
    else:
        buf, label = decompress(p, raw)
        del raw
        if sniff_format(buf[:16]) == "parquet":
            raise DatasetError(f"{label}: a compressed Parquet file: decompress it first")
        buf = to_utf8(label, buf, encoding)
        t = read_interactions_table(label, sep, header, user_col, item_col, rating_col,
                                    timestamp_col, buf=buf)
    (uids, u), (iids, i) = t["user"], t["item"]
    ratings = t.get("rating")
    meta = {"source": str(p), "columns": {k: v for k, v in t["columns"].items() if v is not None},
            "id_order": "sorted"}
    if ratings is not None:
        low = np.flatnonzero(ratings <= 0)
        if low.size:
            k = int(low[0])
            meta["nonpositive_ratings"] = {
                "count": int(low.size), "first": f"{t.get('rows', 'line')} {t['first_line'] + k}",
                "value": float(ratings[k]), "min": float(ratings[low].min())}
    return from_coo(
        name or _stem(p), u, i, len(uids), len(iids),
        values=ratings, ratings=ratings, timestamps=t.get("timestamp"),
        user_ids=uids, item_ids=iids, meta=meta,
    )
