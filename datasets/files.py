"""The generic ``file`` loader: interactions from any CSV/TSV or Parquet file of
``user, item[, rating][, timestamp]``.

Raw ids may be integers or strings; they are mapped to indices 0..n-1 in **sorted** order
(numerically when every id of the column is an integer, otherwise as strings). Duplicate
(user, item) pairs are summed when the value column counts events (or there is none), else the
latest event is kept (:func:`~mfsoftmax.datasets.columns.duplicate_rule`, ``from_coo``).

Input handling (see :func:`file_loader`): gzip, bzip2, xz and single-file zip input is
decompressed transparently (recognised by its magic bytes, whatever the file is called); a UTF-8
byte-order mark is dropped and UTF-16/32 with a BOM is decoded; other text must be UTF-8 unless
``encoding=`` says otherwise (``decode``). The separator is the candidate giving a consistent
number of mostly numeric fields, and two roles never share a column (``columns``); with a
separator other than the comma, ``1,5`` is read as 1.5. polars reads the file first
(:mod:`fastread`: one-byte separators, plain or gzip, and Parquet); when it cannot read it
strictly, the exact parser reads it again and names the bad line: all-numeric tables by
``textparse``, others token by token (``tokens``). Integer ids must fit 64 bits. Timestamps may be
numbers, ISO-8601 date-times or dates (:data:`fastread.TIME_FORMATS`).
"""

from __future__ import annotations

import codecs
import gzip
import re
import zlib
from pathlib import Path

import numpy as np

from . import parsecache
from .columns import _split_line, detect_header, detect_sep, duplicate_rule, resolve_columns
from .core import DatasetError, Interactions, from_coo
from .decode import _COMPRESSED_SUFFIXES, decompress, read_bytes, sniff_format, to_utf8
from .fastread import epoch_seconds, parquet_names, read_parquet, read_text
from .registry import register
from .textparse import (
    _SEP_NAMES,
    NotNumeric,
    _normalise,
    _split_header,
    factorize_ints,
    parse_numeric,
)
from .tokens import _exact_int_column, _ids, _int_column, _number_column, _token_table

_PEEK = (1 << 16) + 1  # bytes read to detect the layout (one more than detect_sep looks at)
_UNICODE_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
#: version of what the loader builds from a file: part of its cache key, bumped when the parse
#: or the assembly changes (older entries are then rebuilt)
FILE_FORMAT = 1
CACHE_SUFFIX = ".file.npz"


def _layout(path, text: bytes, sep=None, header=None, specs=None) -> dict:
    """Separator, header, column names and role columns of a table from its first bytes
    ``text`` (UTF-8), plus ``samples``: each role's tokens on the first data lines."""
    if not text or text.isspace():
        raise DatasetError(f"{path}: empty file")
    if sep is None:
        sep_b = detect_sep(path, text)
    else:
        sep_b = {"tab": b"\t", "\\t": b"\t", "space": b" "}.get(sep, sep.encode() if isinstance(sep, str) else sep)
    decimal_comma = sep_b != b","
    head = text
    if sep_b == b" ":  # runs of blanks -> one tab
        head = re.sub(rb"(?m)^[ \t]+|[ \t]+$", b"", re.sub(rb"[ \t]+", b"\t", head))
    split_sep = b"\t" if sep_b == b" " else sep_b
    lines = [ln.rstrip(b"\r") for ln in head.split(b"\n")[:22]]
    if len(text) >= _PEEK and len(lines) > 1:
        lines = lines[:-1]  # the last one may be cut
    f1 = _split_line(lines[0], split_sep)
    ncols = len(f1)
    second = _split_line(lines[1], split_sep) if len(lines) > 1 and lines[1] else None
    if header is None or header == "auto":
        header = detect_header(f1, second, decimal_comma)
    names = [f.strip().strip(b'"').decode("utf-8", "replace") for f in f1] if header else None
    if ncols < 2:
        raise DatasetError(f"{path}, line 1: expected at least 2 fields (user, item), found {ncols}; "
                           "wrong separator? pass sep=")
    cols = resolve_columns(specs or {}, names, ncols, path)
    rows = [_split_line(ln, split_sep) for ln in lines[1 if header else 0:] if ln.strip()]
    samples = {w: [r[j] for r in rows if len(r) == ncols] for w, j in cols.items() if j is not None}
    return {"sep": sep_b, "header": bool(header), "names": names, "ncols": ncols, "columns": cols,
            "decimal_comma": decimal_comma, "samples": samples}


def read_interactions_table(path, sep=None, header=None, user_col=None, item_col=None,
                            rating_col=None, timestamp_col=None, encoding=None,
                            buf: bytes | None = None) -> dict:
    """Read a text table of interactions into arrays with the exact parser (see
    :func:`file_loader`); errors name the line and field.

    ``buf`` (already read, decompressed and UTF-8) skips reading ``path``, which then only
    labels the messages.
    """
    if buf is None:
        buf, label = decompress(path, read_bytes(path))
        buf = to_utf8(label, buf, encoding)
        path = label
    specs = {"user": user_col, "item": item_col, "rating": rating_col, "timestamp": timestamp_col}
    lay = _layout(path, buf[:_PEEK], sep, header, specs)
    sep_b, header, cols, ncols = lay["sep"], lay["header"], lay["columns"], lay["ncols"]
    if sep_b == b" ":  # runs of blanks -> one tab
        buf = re.sub(rb"(?m)^[ \t]+|[ \t]+$", b"", re.sub(rb"[ \t]+", b"\t", buf))
        sep_b = b"\t"
    buf, sep1 = _normalise(buf, sep_b)
    _, rest = _split_header(buf)
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
    out = {"names": lay["names"], "columns": cols, "first_line": first}
    int_roles = [w for w in ("user", "item", "timestamp") if cols[w] is not None]
    if table is not None and all(_exact_int_column(table[:, cols[w]]) for w in int_roles):
        for w in ("user", "item"):
            out[w] = factorize_ints(table[:, cols[w]].astype(np.int64))
        if cols["rating"] is not None:
            out["rating"] = table[:, cols["rating"]]
        if cols["timestamp"] is not None:
            out["timestamp"] = table[:, cols["timestamp"]].astype(np.int64)
        return out
    # strings, quotes, decimal commas, dates, or integers too large for float64: exact tokens
    tok = _token_table(path, body, sep1, ncols, first)
    for w in ("user", "item"):
        out[w] = _ids(path, tok[cols[w]], first, w, cols[w])
    if cols["rating"] is not None:
        out["rating"] = _number_column(path, tok[cols["rating"]], first, "rating",
                                       cols["rating"] + 1, lay["decimal_comma"])
    if cols["timestamp"] is not None:
        out["timestamp"] = _time_column(path, tok[cols["timestamp"]], first, cols["timestamp"])
    return out


def _time_column(path, col: np.ndarray, first: int, j: int) -> np.ndarray:
    """int64 seconds of a timestamp token column: integers exactly, decimals floored, else
    ISO-8601 date-times and dates (:func:`fastread.epoch_seconds`)."""
    try:
        return _int_column(path, col, first, "timestamp", j)
    except DatasetError as exc:
        if "not a finite number" not in str(exc):
            raise
    import polars as pl  # lazy: polars, only needed to read dates

    text = np.char.decode(col, "utf-8", "replace") if col.dtype.kind == "S" else col.astype(str)
    return epoch_seconds(pl.Series(text.tolist(), dtype=pl.String), path,
                         lambda k: f"line {first + k}", j + 1)


def read_parquet_table(path, user_col=None, item_col=None, rating_col=None, timestamp_col=None) -> dict:
    """Read a Parquet table by role with polars; a missing (null) or empty id, a non-finite
    rating or an unreadable time is an error naming the row and column."""
    names = parquet_names(path)
    cols = resolve_columns({"user": user_col, "item": item_col, "rating": rating_col,
                            "timestamp": timestamp_col}, names, len(names), path)
    return read_parquet(path, cols, names)


def _peek(p: Path) -> bytes:
    """The first :data:`_PEEK` bytes of ``p`` (missing, unreadable or empty: DatasetError)."""
    if not p.is_file():
        read_bytes(p)  # raises "file not found" / "not a regular file"
    try:
        with open(p, "rb") as f:
            head = f.read(_PEEK)
    except OSError as exc:
        raise DatasetError(f"{p}: cannot read ({exc})") from exc
    if not head or head.isspace():
        read_bytes(p)  # raises "empty file" (or reads a file of blanks past the peek)
    return head


def _text_head(p: Path, head: bytes, encoding) -> bytes | None:
    """The first bytes of the text of ``p`` when polars can read the file as it is (plain or
    gzip UTF-8 without a byte-order mark), else None."""
    if encoding is not None:
        return None
    fmt = sniff_format(head[:16])
    if fmt == "gzip":
        try:
            with gzip.open(p, "rb") as f:
                head = f.read(_PEEK)
        except (OSError, EOFError, zlib.error):
            return None  # the exact path names the corruption
    elif fmt is not None:
        return None
    if head.startswith(_UNICODE_BOMS) or b"\x00" in head:
        return None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut by the peek
            return None
    return head


def read_text_file(p: Path, sep=None, header=None, specs=None, encoding=None) -> dict:
    """A delimited file by role: polars first (:func:`fastread.read_text`), the exact parser
    (:func:`read_interactions_table`) when that fails, to name the bad line."""
    specs = specs or {}
    head = _peek(p)
    text = _text_head(p, head, encoding)
    if text is not None:
        lay = _layout(p, text, sep, header, specs)
        got = read_text(p, lay["sep"], lay["header"], lay["ncols"], lay["columns"], lay["samples"])
        if got is not None:
            return {"names": lay["names"], "columns": lay["columns"],
                    "first_line": 2 if lay["header"] else 1, **got}
    buf, label = decompress(p, read_bytes(p))
    if sniff_format(buf[:16]) == "parquet":
        raise DatasetError(f"{label}: a compressed Parquet file: decompress it first")
    buf = to_utf8(label, buf, encoding)
    return read_interactions_table(label, sep, header, buf=buf, **{f"{w}_col": specs.get(w)
                                                                  for w in ("user", "item",
                                                                            "rating", "timestamp")})


def _stem(p: Path) -> str:
    name = p.name
    for suffix in _COMPRESSED_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return Path(name).stem or name


@register("file", "Any CSV/TSV or Parquet of user, item[, rating][, timestamp], "
          "plain or gzip/bz2/xz/zip; --param path=FILE")
def file_loader(data_dir=None, path=None, sep=None, header=None, user_col=None, item_col=None,
                rating_col=None, timestamp_col=None, name=None, encoding=None,
                user_features=None, item_features=None, user_features_key=None,
                item_features_key=None, user_feature_kinds=None,
                item_feature_kinds=None, cache=None) -> Interactions:
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
        timestamp, time, ts, date) or positions 0, 1, 2, 3 as far as there are columns and no
        other role holds them. ``False``, ``""`` or ``"none"`` drops the rating or timestamp
        column. Two roles never share a column; when the user or item column is ambiguous this
        is an error.
    encoding : str, optional
        Text encoding, e.g. ``latin-1`` or ``cp1252``. By default the file must be UTF-8 (a
        byte-order mark is dropped; UTF-16/32 with a byte-order mark is read too), and a
        non-UTF-8 byte is an error naming its line, column and byte offset.
    user_features, item_features, *_features_key, *_feature_kinds : optional
        Side tables keyed by the raw ids, their key column and kind overrides
        (:mod:`~.sidetables`).
    cache : str, optional
        The cache root for the parsed file (default ``$MFSOFTMAX_DATA``, else
        ``~/.cache/mfsoftmax``): files of 8 MiB or more are cached there after their first load
        (:mod:`~.parsecache`, keyed by the file's size, mtime and content checks, and these
        options); ``MFSOFTMAX_PARSE_CACHE=0`` turns it off. Side tables are read every time.

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
    opts = {"sep": sep, "header": header, "user_col": user_col, "item_col": item_col,
            "rating_col": rating_col, "timestamp_col": timestamp_col, "encoding": encoding,
            "name": name}
    key = {"format": FILE_FORMAT, **{k: v for k, v in opts.items() if v is not None}}
    data = parsecache.load_or_build(
        [p], lambda: _build(p, **opts), parsecache.entry_path(p, False, cache, CACHE_SUFFIX),
        loader="file", options=key)
    data.meta["source"] = str(p)  # as given this time (an entry written via another spelling)
    return _attach(data, data_dir, encoding, user_features=user_features,
                   item_features=item_features, user_features_key=user_features_key,
                   item_features_key=item_features_key, user_feature_kinds=user_feature_kinds,
                   item_feature_kinds=item_feature_kinds)


def _build(p: Path, sep=None, header=None, user_col=None, item_col=None, rating_col=None,
           timestamp_col=None, encoding=None, name=None) -> Interactions:
    """The interactions of ``p`` (no side tables): parsed, ids factorised, duplicates merged."""
    specs = {"user": user_col, "item": item_col, "rating": rating_col, "timestamp": timestamp_col}
    if p.suffix.lower() in (".parquet", ".pq") or sniff_format(_peek(p)[:16]) == "parquet":
        t = read_parquet_table(p, user_col, item_col, rating_col, timestamp_col)
    else:
        t = read_text_file(p, sep, header, specs, encoding)
    (uids, u), (iids, i) = t["user"], t["item"]
    ratings = t.get("rating")
    meta = {"source": str(p), "columns": {k: v for k, v in t["columns"].items() if v is not None},
            "column_names": t.get("names"), "id_order": "sorted"}
    if ratings is not None:
        low = np.flatnonzero(ratings <= 0)
        if low.size:
            k = int(low[0])
            meta["nonpositive_ratings"] = {
                "count": int(low.size), "first": f"{t.get('rows', 'line')} {t['first_line'] + k}",
                "value": float(ratings[k]), "min": float(ratings[low].min())}
    rule, why = duplicate_rule(t["names"], t["columns"]["rating"])
    data = from_coo(
        name or _stem(p), u, i, len(uids), len(iids),
        values=ratings, ratings=ratings, timestamps=t.get("timestamp"),
        user_ids=uids, item_ids=iids, meta=meta, duplicates=rule, owned=True,
    )
    if "duplicates" in data.meta:
        data.meta["duplicates"]["why"] = why
    return data


def _attach(data: Interactions, data_dir, encoding, **params) -> Interactions:
    from .sidetables import attach_side_tables  # lazy: polars, off `datasets` (the list)

    return attach_side_tables(data, data.meta.get("column_names"), data.meta["columns"],
                              data_dir, encoding, **params)
