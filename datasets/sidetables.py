"""Side tables of the ``file`` dataset: user and item attributes keyed by the interactions' raw ids.

``--param item_features=items.csv`` (and ``user_features=``) reads a CSV/TSV (any separator
:func:`~.columns.detect_sep` finds; gzip/bz2/xz/zip as the interactions) or Parquet file with a
header line. The key column is ``item_features_key=`` (a name, or a 0-based position), else the
column named like the interactions' item column (or any item alias, :data:`~.columns.ALIASES`),
else the first column. Keys are matched to ``Interactions.item_ids`` (integers when the
interactions' ids are integers, else strings). Every other column becomes one feature whose kind
is inferred (:mod:`.sidekinds`) unless ``item_feature_kinds=title:text,year:numeric`` says
otherwise.

Several rows for one id: a column whose value differs between them must be multi-valued
(declared ``col:multi``, or inferred when it is the table's only value column: the long format
``movieId,tag``); its values are pooled. Otherwise the rows conflict: an error naming the file
and both lines. Rows repeated exactly are counted (``duplicate_rows``), not an error.

Nothing is dropped silently: interaction ids absent from the table get the ``(missing)`` code
(an all-zero row for multi-hot columns) and are counted (``missing_ids``); table ids absent
from the interactions are counted (``unmatched_ids``). Unmatched **item** ids are new items with
zero interactions: ``meta["new_items"] = {"ids": raw ids, "features": {name: rows}}``, encoded
with the catalogue's items (same codes). Everything is summarised in
``meta["side_tables"]["item"|"user"]``, which ``mfsoftmax datasets show`` prints.
"""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

from . import sidekinds as sk
from .columns import ALIASES, _norm_name, detect_sep
from .core import DatasetError, Interactions, small_pages
from .decode import decompress, read_bytes, sniff_format, to_utf8

_ENCODE_ORDER = {"categorical": 0, "numeric": 0, "multi": 1, "text": 2}


def read_table(path, encoding=None) -> tuple[pl.DataFrame, str, str]:
    """All columns as strings; returns (frame, label for messages, "line" or "row").

    Text tables need a header; data row r is line r + 2 (quoted multi-line cells shift it).
    """
    p = Path(str(path)).expanduser()
    raw = read_bytes(p)
    if sniff_format(raw[:16]) == "parquet":
        try:
            df = pl.read_parquet(io.BytesIO(raw))
        except Exception as exc:  # polars' own error classes
            raise DatasetError(f"{p}: not a readable Parquet file ({str(exc).splitlines()[0]})") from exc
        lists = [c for c, t in df.schema.items() if isinstance(t, pl.List)]
        df = df.with_columns([pl.col(c).cast(pl.List(pl.Utf8)).list.join("|") for c in lists])
        return df.with_columns(pl.all().cast(pl.Utf8)), str(p), "row"
    buf, label = decompress(p, raw)
    del raw
    buf = to_utf8(label, buf, encoding)
    if not buf.strip():
        raise DatasetError(f"{label}: empty file")
    sep = detect_sep(label, buf) if b"\n" in buf.strip() else b","
    if len(sep) > 1 or sep == b" ":  # '::' or blanks: one byte polars can split on
        buf = buf.replace(sep, b"\x1f") if sep != b" " else b"\n".join(
            b"\x1f".join(ln.split()) for ln in buf.split(b"\n"))
        sep = b"\x1f"
    try:
        df = pl.read_csv(io.BytesIO(buf), separator=sep.decode(), infer_schema_length=0,
                         has_header=True, truncate_ragged_lines=False)
    except Exception as exc:  # polars' ComputeError/NoDataError: one line, with the file
        raise DatasetError(f"{label}: cannot read the table ({str(exc).splitlines()[0]})") from exc
    if df.height == 0:
        raise DatasetError(f"{label}: no data lines after the header")
    return df, label, "line"


def key_column(df: pl.DataFrame, label: str, key, id_name, role: str, param: str) -> str:
    """The key column's name (see the module docstring); an unknown ``key`` is an error."""
    cols = df.columns
    if key is not None and key != "":
        if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < len(cols):
            return cols[key]
        if str(key) in cols:
            return str(key)
        raise DatasetError(f"{label}: {param}={key!r}: no such column; columns: {', '.join(cols)}")
    norm = {_norm_name(c): c for c in reversed(cols)}
    for name in ([id_name] if id_name else []) + list(ALIASES[role]):
        if _norm_name(str(name)) in norm:
            return norm[_norm_name(str(name))]
    return cols[0]


def _where(label: str, rows: str, first: int):
    return lambda r: f"{label}, {rows} {int(r) + first}"


def match_ids(keys: pl.Series, raw_ids: np.ndarray, where) -> np.ndarray:
    """Index of each key in ``raw_ids`` (-1 when absent): a binary search for integer ids
    (sorted, as the loader maps them), a polars join for strings; a null key, or a
    non-integer key when the interactions' ids are integers, is an error naming its line."""
    k = keys.str.strip_chars() if keys.dtype == pl.String else keys
    empty = k.is_null() | (k == "") if k.dtype == pl.String else k.is_null()
    null = np.flatnonzero(empty.to_numpy())
    if null.size:
        raise DatasetError(f"{where(null[0])}: the id column {keys.name!r} is empty (null/NaN ids "
                           f"cannot be matched; {null.size} such rows)")
    if raw_ids.dtype.kind in "iu":
        vals = k if k.dtype.is_integer() else k.cast(pl.Int64, strict=False)
        bad = np.flatnonzero(vals.is_null().to_numpy())
        if bad.size:
            raise DatasetError(f"{where(bad[0])}: id {k[int(bad[0])]!r} in column {keys.name!r} "
                               "is not an integer (the interactions' ids are integers)")
        ref = np.asarray(raw_ids, np.int64)
        order = np.arange(len(ref)) if np.all(ref[1:] > ref[:-1]) else np.argsort(ref)
        vals = vals.cast(pl.Int64).to_numpy()
        pos = np.minimum(np.searchsorted(ref[order], vals), max(len(ref) - 1, 0))
        found = ref[order][pos] == vals if len(ref) else np.zeros(len(vals), bool)
        return np.where(found, order[pos], -1)
    vals, ref = k.cast(pl.String), pl.Series(np.asarray(raw_ids).astype(str))
    table = pl.DataFrame({"k": ref, "i": np.arange(len(raw_ids), dtype=np.int64)})
    got = pl.DataFrame({"k": vals}).join(table, on="k", how="left", maintain_order="left")
    return got["i"].fill_null(-1).to_numpy()


def collapse(df: pl.DataFrame, key: str, kinds: dict, where, param: str,
             repeated: bool = True) -> tuple[pl.DataFrame, int]:
    """One row per key (first-appearance order, ``_row``: its first row in ``df``); multi
    columns become lists. Returns the frame and the number of exact duplicate rows. Conflicting
    single values are an error. ``repeated=False``: the caller knows every key is distinct."""
    values = [c for c in df.columns if c != key]
    df = df.with_row_index("_row")
    for col in values:
        kind, sep = kinds[col]
        if kind == "multi":
            df = df.with_columns(sk.split_multi(pl.col(col), sep) if sep else
                                 pl.concat_list(pl.col(col)).list.drop_nulls())
    if not repeated or df[key].n_unique() == df.height:
        return df, 0
    n_dup = df.height - df.drop("_row").unique().height
    single = [c for c in values if kinds[c][0] != "multi"]
    agg = [pl.col("_row").first()]
    agg += [pl.col(c).n_unique().alias(f"_n_{c}") for c in single]
    agg += [pl.col(c).first() for c in single]
    agg += [pl.col(c).explode().drop_nulls().unique(maintain_order=True) for c in values
            if kinds[c][0] == "multi"]
    out = df.group_by(key, maintain_order=True).agg(agg)
    for c in single:
        clash = out.filter(pl.col(f"_n_{c}") > 1)
        if clash.height:
            k, first = clash[key][0], int(clash["_row"][0])
            rows = df.filter((pl.col(key) == k) & (pl.col("_row") != first))
            other = rows.filter(pl.col(c).ne_missing(df[c][first]))["_row"][0]
            line = where(first).rsplit(", ", 1)[1]
            raise DatasetError(
                f"{where(other)}: id {str(k)!r} appears again (first on {line}) with a different "
                f"{c!r} ({df[c][int(other)]!r} vs {df[c][first]!r}); declare {c!r} "
                f"multi-valued ({param}={c}:multi) for a long-format table")
    return out.sort("_row").select(["_row", key, *values]), n_dup


def resolve_kinds(df: pl.DataFrame, key: str, declared: dict, label: str, param: str,
                  repeated: bool = True) -> dict:
    """``{column: (kind, sep)}`` for every value column: declared, else inferred; long format
    (repeated keys, one value column that varies) makes that column multi."""
    values = [c for c in df.columns if c != key]
    unknown = sorted(set(declared) - set(values))
    if unknown:
        raise DatasetError(f"{label}: {param}: no value column {', '.join(map(repr, unknown))}; "
                           f"columns: {', '.join(values)}")
    kinds = {c: declared.get(c) or sk.infer_kind(df[c]) for c in values}
    if len(values) == 1 and values[0] not in declared and repeated \
            and df[key].n_unique() < df.height:
        c = values[0]
        if df.group_by(key).agg(pl.col(c).n_unique().alias("n"))["n"].max() > 1:
            kinds[c] = ("multi", None)
    return {c: (k, sep if k == "multi" and sep else None) for c, (k, sep) in kinds.items()}


def encode(full: pl.DataFrame, kinds: dict, where_row) -> tuple[dict, dict]:
    """Feature arrays and per-column info for every value column of ``full`` (one row per
    id); columns ordered categorical/numeric, multi, text."""
    feats, info = {}, {}
    for col in sorted(kinds, key=lambda c: (_ENCODE_ORDER[kinds[c][0]], list(kinds).index(c))):
        kind = kinds[col][0]
        s = full[col]
        if kind == "categorical":
            arr, meta = sk.encode_categorical(s)
        elif kind == "numeric":
            arr, meta = sk.encode_numeric(s, where_row)
        elif kind == "multi":
            arr, meta = sk.encode_multi(s, where_row)
        else:
            arr, meta = sk.encode_text(s)
        if kind == "multi" and kinds[col][1]:
            meta["separator"] = kinds[col][1]
        feats[col], info[col] = arr, meta
    return feats, info


def attach(data: Interactions, side: str, path, key=None, kinds=None, id_name=None,
           data_dir=None, encoding=None) -> Interactions:
    """``data`` with the ``side`` ("user"/"item") features of the table at ``path``.

    Parameters
    ----------
    data : Interactions
        As the ``file`` loader built it (``user_ids``/``item_ids`` hold the raw ids).
    side : {"user", "item"}
    path : str
        The table; relative paths are taken inside ``data_dir`` when given.
    key : str or int, optional
        The key column (``{side}_features_key``).
    kinds : str or dict, optional
        Kind overrides (``{side}_feature_kinds``), e.g. ``"title:text,genres:multi:|"``.
    id_name : str, optional
        The interactions' id column name (the default key).
    """
    p = Path(str(path)).expanduser()
    if data_dir is not None and not p.is_absolute():
        p = Path(data_dir) / p
    df, label, rows_word = read_table(p, encoding)
    first = 2 if rows_word == "line" else 1
    where = _where(label, rows_word, first)
    kcol = key_column(df, label, key, id_name, side, f"{side}_features_key")
    declared = sk.parse_kinds(kinds, f"{side}_feature_kinds")
    df = df.with_columns(pl.col(kcol).str.strip_chars())
    raw = data.user_ids if side == "user" else data.item_ids
    idx_all = match_ids(df[kcol], raw, where)  # null / non-integer ids: an error naming the line
    if raw.dtype.kind in "iu":  # "010" and "10" are one id
        df = df.with_columns(pl.col(kcol).cast(pl.Int64))
    repeated = df[kcol].n_unique() < df.height
    kind_of = resolve_kinds(df, kcol, declared, label, f"{side}_feature_kinds", repeated)
    table, n_dup = collapse(df, kcol, kind_of, where, f"{side}_feature_kinds", repeated)
    rows = table["_row"].to_numpy()
    idx = idx_all[rows]
    n, new = len(raw), np.flatnonzero(idx < 0)
    slot = idx.copy()
    slot[new] = n + np.arange(len(new))
    pick = np.full(n + len(new), table.height, dtype=np.int64)  # no row: the null row below
    pick[slot] = np.arange(table.height)
    values = table.drop(["_row", kcol])
    full = pl.concat([values, values.clear(1)])[pick]
    row_of_slot = np.append(rows, -1)[pick]
    feats, info = encode(full, kind_of, lambda r: where(row_of_slot[r]))
    summary = {"path": label, "key": kcol, "rows": df.height, "ids": table.height,
               "matched_ids": int(table.height - len(new)), "unmatched_ids": int(len(new)),
               "missing_ids": int(n - (table.height - len(new))), "duplicate_rows": int(n_dup),
               "columns": info}
    meta = dict(data.meta)
    meta["side_tables"] = dict(meta.get("side_tables") or {}, **{side: summary})
    if side == "item" and len(new):
        meta["new_items"] = {"ids": table[kcol].to_numpy()[new],
                             "features": {k: v[n:] for k, v in feats.items()}}
    own = {k: v[:n] for k, v in feats.items()}
    if side == "user":
        return replace(data, user_features=own, meta=meta)
    return replace(data, item_features=own, meta=meta)


def attach_side_tables(data: Interactions, names: list | None, columns: dict, data_dir=None,
                       encoding=None, **params) -> Interactions:
    """The ``file`` loader's hook: attach the user and item tables named in ``params``
    (``user_features``, ``user_features_key``, ``user_feature_kinds`` and the item ones)."""
    for side in ("user", "item"):
        path = params.get(f"{side}_features")
        for extra in (f"{side}_features_key", f"{side}_feature_kinds"):
            if params.get(extra) not in (None, "") and not path:
                raise DatasetError(f"{extra} given without {side}_features=PATH")
        if not path:
            continue
        id_name = names[columns[side]] if names and columns.get(side) is not None else None
        with small_pages():  # a text column of 1M rows is a 256 MB array, touched once
            data = attach(data, side, path, key=params.get(f"{side}_features_key"),
                          kinds=params.get(f"{side}_feature_kinds"), id_name=id_name,
                          data_dir=data_dir, encoding=encoding)
    return data
