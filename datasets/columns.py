"""The layout of a delimited table: its separator, whether it has a header, and which column
holds each role (user, item, rating, timestamp)."""

from __future__ import annotations

import csv
import re

from .core import DatasetError
from .textparse import _DECIMAL_COMMA

# Header names of each role, compared after lower-casing and dropping blanks, "_" and "-"
# ("User ID", "user_id" and "userId" are all "userid").
ALIASES = {
    "user": ("user", "userid", "uid", "users", "customer", "customerid", "reviewerid", "visitorid"),
    "item": ("item", "itemid", "iid", "items", "movie", "movieid", "product", "productid", "asin",
             "isbn", "track", "trackid", "song", "songid", "artist", "artistid", "book", "bookid",
             "businessid", "article", "articleid"),
    "rating": ("rating", "ratings", "score", "value", "stars", "count", "counts", "plays",
               "playcount", "clicks", "weight"),
    "timestamp": ("timestamp", "time", "ts", "unixtime", "unixtimestamp", "date", "datetime"),
}
ROLES = ("user", "item", "rating", "timestamp")
# Value columns that count events (compared like ALIASES): repeated (user, item) rows add up
COUNT_NAMES = ("count", "counts", "plays", "playcount", "clicks", "weight", "views", "listens",
               "listencount", "quantity", "purchases", "visits")
_HEADER_WORDS = {a for names in ALIASES.values() for a in names} | {"date", "moviename", "title"}
_DROP_WORDS = ("", "none", "false", "no")  # a *_col value that means "no such column"
_SEP_CANDIDATES = (b"\t", b"::", b",", b";", b"|")


def _norm_name(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name.strip().strip('"').lower())


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
        if isinstance(spec, str) and spec.strip().lower() in _DROP_WORDS and not (
                names is not None and spec in names):
            spec = False  # timestamp_col='' / none: skip the column
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


def duplicate_rule(names: list[str] | None, rating_col: int | None) -> tuple[str, str]:
    """(rule, reason) for repeated (user, item) rows: ``"sum"`` when the value column counts
    events (named like :data:`COUNT_NAMES`) or there is none (each row is one event), else
    ``"last"`` (a rating: the latest one replaces the earlier)."""
    if rating_col is None:
        return "sum", "no value column: each row is one event"
    name = names[rating_col] if names is not None else None
    if name is not None and _norm_name(name) in COUNT_NAMES:
        return "sum", f"value column {name!r} counts events"
    label = repr(name) if name is not None else f"column {rating_col + 1}"
    return "last", f"value column {label} is a rating (not named like a count)"
