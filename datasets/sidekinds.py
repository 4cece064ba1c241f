"""Column kinds of a side table and their encodings into ``Interactions`` feature arrays.

One row per id (already collapsed by :mod:`.sidetables`); a null cell is a missing value.

Kinds and the inference rule (:func:`infer_kind`), tried in this order on the non-empty cells:

1. **multi** (multi-valued): at least 10% of the cells contain ``|`` (then ``;``) and the parts
   average at most 30 characters. Output: multi-hot (rows x values, uint8) over the
   ``MAX_MULTI_VALUES - 1`` most frequent values plus one ``(other)`` column when there are
   more. A cell with more than ``MAX_CELL_VALUES`` values is an error.
2. **numeric**: every cell parses as a number, none is written with a leading zero (``02138``
   is a code, not a number) and there are more than ``NUMERIC_MIN_DISTINCT`` distinct values.
   Output: codes of ``NUMERIC_BUCKETS`` quantile buckets (fewer when values repeat), plus a
   missing code.
3. **text**: cells average at least 2 words and more than half the cells are distinct.
   Output: a bag of words (lower-cased ``\\w+`` tokens of each cell's first
   ``MAX_TEXT_CHARS`` characters) hashed into ``TEXT_BUCKETS`` columns, uint8 0/1. The hash
   is this package's own (:func:`token_hash`: 64-bit FNV-1a of the token's UTF-8 bytes,
   finished by splitmix64's mixer), so a token's bucket is the same whatever the polars, numpy
   or Python version.
4. **categorical** otherwise: codes 0..n-1 over the values in sorted order (the
   ``MAX_CATEGORIES - 1`` most frequent when there are more, then ``(other)``), then
   ``(missing)`` when a cell is empty.

Every cap bounds memory whatever the table holds; what a cap merged or cut is counted in the
column's info (``other_values``, ``truncated_cells``).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .core import DatasetError

KINDS = ("categorical", "multi", "numeric", "text")
MAX_CATEGORIES = 1000
MAX_MULTI_VALUES = 256
MAX_CELL_VALUES = 10_000
NUMERIC_BUCKETS = 10
NUMERIC_MIN_DISTINCT = 32
TEXT_BUCKETS = 256
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))
INFER_SAMPLE = 100_000  # cells the string heuristics of infer_kind look at (seeded sample)
MAX_TEXT_CHARS = 2000
MULTI_SEPARATORS = ("|", ";")
SEP_NAMES = {"pipe": "|", "semicolon": ";", "comma": ",", "space": " ", "tab": "\t"}


def _present(s: pl.Series) -> pl.Series:
    s = s.drop_nulls().str.strip_chars()
    return s.filter(s != "")


def infer_kind(s: pl.Series) -> tuple[str, str | None]:
    """``(kind, multi-value separator or None)`` of a string column by the module's rule."""
    every = _present(s)
    if not len(every):
        return "categorical", None
    # the string heuristics on a seeded sample
    vals = every.sample(INFER_SAMPLE, seed=0) if len(every) > INFER_SAMPLE else every
    for sep in MULTI_SEPARATORS:
        if vals.str.contains(sep, literal=True).mean() >= 0.1:
            parts = vals.str.split(sep).explode().str.strip_chars()
            if parts.str.len_chars().mean() <= 30:
                return "multi", sep
    if vals.cast(pl.Float64, strict=False).null_count() == 0:  # numbers: every cell checked
        num = every.cast(pl.Float64, strict=False)
        if num.null_count() == 0 and not every.str.contains(r"^0\d").any() \
                and num.n_unique() > NUMERIC_MIN_DISTINCT:
            return "numeric", None
    words = vals.str.count_matches(r"\S+").mean()
    if words >= 2 and vals.n_unique() > 0.5 * len(vals):
        return "text", None
    return "categorical", None


def parse_kinds(spec, param: str) -> dict:
    """``"title:text,genres:multi:|"`` (or a dict ``{"title": "text"}``) -> ``{column: (kind,
    sep)}``; a bad entry is a :class:`DatasetError` naming ``param``."""
    if spec is None or spec == "":
        return {}
    items = spec.items() if isinstance(spec, dict) else (
        tuple(e.split(":", 1)) if ":" in e else (e, "") for e in str(spec).split(","))
    out = {}
    for col, kind in items:
        kind, _, sep = str(kind).strip().partition(":")
        if kind not in KINDS:
            raise DatasetError(f"{param}: {col.strip()!r}: unknown kind {kind!r}; choose one of "
                               f"{', '.join(KINDS)} (e.g. {param}=title:text,genres:multi:|)")
        if sep and kind != "multi":
            raise DatasetError(f"{param}: {col.strip()!r}: only 'multi' takes a separator")
        out[col.strip()] = (kind, SEP_NAMES.get(sep, sep) or None)
    return out


def _vocab(values: pl.Series, cap: int) -> tuple[list[str], int]:
    """Kept values (the ``cap - 1`` most frequent when there are more than ``cap``, sorted) and
    how many distinct values went to ``(other)``."""
    counts = values.value_counts(sort=False, name="n")
    if len(counts) <= cap:
        return sorted(counts[values.name].to_list()), 0
    top = counts.sort(["n", values.name], descending=[True, False]).head(cap - 1)
    return sorted(top[values.name].to_list()), len(counts) - (cap - 1)


def _codes(values: pl.Series, vocab: list[str], other: int) -> np.ndarray:
    return np.array(values.replace_strict(vocab, list(range(len(vocab))), default=other,
                                          return_dtype=pl.Int64).to_numpy())


def encode_categorical(s: pl.Series) -> tuple[np.ndarray, dict]:
    """Codes (int64) of a single-valued column; see the module rule for the code order."""
    s = s.str.strip_chars()
    s = s.set(s == "", None) if len(s) else s
    vocab, n_other = _vocab(s.drop_nulls(), MAX_CATEGORIES)
    codes = _codes(s.fill_null(""), vocab, len(vocab))
    labels = vocab + ["(other)"] * bool(n_other)
    missing = s.is_null().to_numpy()
    if missing.any():
        codes[missing] = len(labels)
        labels.append("(missing)")
    return codes.astype(np.int64), {"kind": "categorical", "size": len(labels),
                                    "other_values": n_other, "labels": labels}


def encode_numeric(s: pl.Series, where) -> tuple[np.ndarray, dict]:
    """Quantile-bucket codes (int64) of a numeric column; a non-number is an error (``where(i)``
    names row i's place in the file)."""
    s = s.str.strip_chars()
    s = s.set(s == "", None) if len(s) else s
    x = s.cast(pl.Float64, strict=False)
    bad = np.flatnonzero((x.is_null() & s.is_not_null()).to_numpy())
    if bad.size:
        raise DatasetError(f"{where(int(bad[0]))}: {s[int(bad[0])]!r} is not a number "
                           f"(column {s.name!r} is numeric)")
    x = x.to_numpy()
    ok = np.isfinite(x)
    qs = np.linspace(0, 1, NUMERIC_BUCKETS + 1)[1:-1]
    edges = np.unique(np.quantile(x[ok], qs)) if ok.any() else np.zeros(0)
    codes = np.searchsorted(edges, np.where(ok, x, 0.0), side="right").astype(np.int64)
    used, dense = np.unique(codes[ok], return_inverse=True)  # buckets holding a value, in order
    codes[ok] = dense.reshape(-1)
    edges = edges[used[1:] - 1]
    size = len(used)
    if (~ok).any():
        codes[~ok] = size
        size += 1
    return codes, {"kind": "numeric", "size": size, "edges": [float(e) for e in edges]}


def _multi_hot(row: np.ndarray, col: np.ndarray, n: int, size: int) -> np.ndarray:
    out = np.zeros(n * size, dtype=np.uint8)
    out[np.asarray(row, np.int64) * size + col] = 1  # flat positions: faster than 2-D indexing
    return out.reshape(n, size)


def encode_multi(lists: pl.Series, where) -> tuple[np.ndarray, dict]:
    """Multi-hot (uint8, rows x values) of a list-of-strings column."""
    n_vals = lists.list.len().fill_null(0).to_numpy()
    if n_vals.size and n_vals.max() > MAX_CELL_VALUES:
        i = int(np.argmax(n_vals))
        raise DatasetError(f"{where(i)}: {int(n_vals[i])} values in one cell of column "
                           f"{lists.name!r} (limit {MAX_CELL_VALUES})")
    flat = pl.DataFrame({"row": np.repeat(np.arange(len(lists)), n_vals),
                         "v": lists.explode().drop_nulls().str.strip_chars()}) \
        if n_vals.sum() else pl.DataFrame({"row": [], "v": []}, schema={"row": pl.Int64, "v": pl.Utf8})
    flat = flat.filter(pl.col("v") != "")
    vocab, n_other = _vocab(flat["v"].rename(lists.name), MAX_MULTI_VALUES)
    labels = vocab + ["(other)"] * bool(n_other)
    col = _codes(flat["v"], vocab, len(vocab))
    hot = _multi_hot(flat["row"].to_numpy(), col, len(lists), max(len(labels), 1))
    return hot, {"kind": "multi", "size": hot.shape[1], "other_values": n_other,
                 "labels": labels}


def split_multi(s: pl.Series, sep: str) -> pl.Series:
    """A string column split on ``sep`` into lists (null stays null)."""
    return s.str.split(sep, inclusive=False)


def token_hash(words: pl.Series) -> np.ndarray:
    """uint64 hash of each string: FNV-1a (64-bit) over its UTF-8 bytes, then splitmix64's
    finaliser (so that the low bits mix). Vectorised over the strings: one numpy step per byte
    position, the strings sorted by length so that each step touches those still going."""
    n = len(words)
    lens = words.str.len_bytes().fill_null(0).to_numpy().astype(np.int64)
    buf = np.frombuffer(words.fill_null("").str.join("").item().encode("utf-8"), np.uint8) \
        if n else np.zeros(0, np.uint8)
    longest = int(lens.max(initial=0))
    # longest first; a stable sort of 16-bit keys is numpy's radix sort
    order = np.argsort((longest - lens).astype(np.int16 if longest < 2**15 else np.int64),
                       kind="stable")
    starts = (np.cumsum(lens) - lens)[order]
    neg = -lens[order]
    h = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    for k in range(longest):
        m = int(np.searchsorted(neg, -k, side="left"))  # the strings longer than k bytes
        h[:m] ^= buf[starts[:m] + k]
        h[:m] *= _FNV_PRIME
    out = np.empty(n, dtype=np.uint64)
    out[order] = h
    out ^= out >> np.uint64(30)
    out *= _MIX[0]
    out ^= out >> np.uint64(27)
    out *= _MIX[1]
    out ^= out >> np.uint64(31)
    return out


def encode_text(s: pl.Series) -> tuple[np.ndarray, dict]:
    """Hashed bag of words (uint8 0/1, rows x ``TEXT_BUCKETS``) of a text column: each
    distinct token hashed once (:func:`token_hash`)."""
    s = s.fill_null("")
    truncated = int((s.str.len_chars() > MAX_TEXT_CHARS).sum())
    tokens = s.str.slice(0, MAX_TEXT_CHARS).str.to_lowercase().str.extract_all(r"\w+")
    n_tok = tokens.list.len().fill_null(0).to_numpy()
    flat = tokens.explode().drop_nulls()
    uniq = flat.unique()
    buckets = (token_hash(uniq) % np.uint64(TEXT_BUCKETS)).astype(np.int64)
    col = flat.replace_strict(uniq, buckets, return_dtype=pl.Int64).to_numpy()
    hot = _multi_hot(np.repeat(np.arange(len(s)), n_tok), col, len(s), TEXT_BUCKETS)
    return hot, {"kind": "text", "size": TEXT_BUCKETS, "tokens": int(len(flat)),
                 "truncated_cells": truncated}
