"""The generic ``file`` loader: interactions from any CSV/TSV (or Parquet, when ``pyarrow`` is
importable) of ``user, item[, rating][, timestamp]``.

Raw ids may be integers or strings; they are mapped to indices 0..n-1 in **sorted** order
(numerically when every id of the column is an integer, otherwise as strings). Duplicate
(user, item) pairs are summed when the value column counts events (or there is none), else the
latest event is kept (:func:`~mfsoftmax.datasets.columns.duplicate_rule`, ``from_coo``).

Input handling (see :func:`file_loader`): gzip, bzip2, xz and single-file zip input is
decompressed transparently (recognised by its magic bytes, whatever the file is called); a UTF-8
byte-order mark is dropped and UTF-16/32 with a BOM is decoded; other text must be UTF-8 unless
``encoding=`` says otherwise (``decode``). The separator is the candidate giving a consistent
number of mostly numeric fields, and two roles never share a column (``columns``); with a
separator other than the comma, ``1,5`` is read as 1.5. All-numeric tables take the fast path
(``textparse``), others are parsed token by token (``tokens``); integer ids must fit 64 bits.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .columns import detect_header, detect_sep, duplicate_rule, resolve_columns
from .core import DatasetError, Interactions, from_coo
from .decode import _COMPRESSED_SUFFIXES, decompress, read_bytes, sniff_format, to_utf8
from .registry import register
from .textparse import (
    _SEP_NAMES,
    NotNumeric,
    _normalise,
    _split_header,
    factorize_ints,
    parse_numeric,
)
from .tokens import _INT64_MAX, _exact_int_column, _ids, _int_column, _number_column, _token_table


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
        import pyarrow.parquet as pq  # optional: pyarrow (not a core dependency)
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
    rule, why = duplicate_rule(t["names"], t["columns"]["rating"])
    data = from_coo(
        name or _stem(p), u, i, len(uids), len(iids),
        values=ratings, ratings=ratings, timestamps=t.get("timestamp"),
        user_ids=uids, item_ids=iids, meta=meta, duplicates=rule,
    )
    if "duplicates" in data.meta:
        data.meta["duplicates"]["why"] = why
    return data
