"""Shorten a verdict's sentence for the headline: a report cell, a terminal line.

A verdict's full text (``ClaimResult.text``) names models, rules, runtimes and every corpus size.
:func:`shorten` keeps its figures and its reasons and drops the asides, in this order, stopping
as soon as the text fits:

1. each parenthesis keeps its first item: ``(gap -0.0357 ± 0.0237, -9.1% for softmax; threshold
   2 paired se)`` becomes ``(gap -0.0357 ± 0.0237)``;
2. parentheses go;
3. comma-separated parts without a digit go (``at the run's corpus``), where their clause keeps
   a part;
4. trailing clauses (``; ...``) go, replaced by ``…``;
5. the text is cut at a word, ending in ``…``.

The full text stays in the report, one click away.
"""

from __future__ import annotations

OPEN, CLOSE = "([{", ")]}"


def _split_top(text: str, sep: str) -> list:
    """``text`` split at ``sep`` outside brackets."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch in OPEN:
            depth += 1
        elif ch in CLOSE:
            depth = max(depth - 1, 0)
        elif depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            start = i = i + len(sep)
            continue
        i += 1
    return parts + [text[start:]]


def _close(text: str, start: int) -> int:
    """Index of the bracket closing the one at ``start``; -1 when it is never closed."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] in OPEN:
            depth += 1
        elif text[i] in CLOSE:
            depth -= 1
            if depth == 0:
                return i
    return -1


def _parens(text: str, keep) -> str:
    """``text`` with each top-level ``(...)`` replaced by ``keep(inside)`` (None: removed with
    the space before it)."""
    out, i = [], 0
    while i < len(text):
        end = _close(text, i) if text[i] == "(" else -1
        if end < 0:
            out.append(text[i])
            i += 1
            continue
        inside = keep(text[i + 1:end])
        if inside is None:
            while out and out[-1] == " ":
                out.pop()
        else:
            out.append(f"({inside})")
        i = end + 1
    return "".join(out)


def _first_items(text: str) -> str:
    def first(inside):
        return _first_items(_split_top(_split_top(inside, "; ")[0], ", ")[0])
    return _parens(text, first)


def _no_parens(text: str) -> str:
    return _parens(text, lambda _inside: None)


def _no_bare_parts(text: str) -> str:
    clauses = []
    for clause in _split_top(text, "; "):
        parts = _split_top(clause, ", ")
        kept = [p for p in parts if any(ch.isdigit() for ch in p)]
        clauses.append(", ".join(kept) if kept else clause)
    return "; ".join(clauses)


def _cut(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    head = text[: max(width - 1, 0)]
    if text[len(head)] != " " and " " in head.strip():  # a word is split: drop it
        head = head[: head.rstrip().rfind(" ")]
    return head.rstrip(" ,;:") + "…"


def _fewer_clauses(text: str, width: int) -> str:
    clauses = _split_top(text, "; ")
    while len(clauses) > 1:
        clauses = clauses[:-1]
        short = "; ".join(clauses) + "; …"
        if len(short) <= width:
            return short
    return _cut(clauses[0], width)


def shorten(text: str, width: int) -> str:
    """``text`` within ``width`` characters, keeping its figures (steps in the module docstring).

    Parameters
    ----------
    text : str
        One verdict sentence.
    width : int
        The most characters the result may have.

    Returns
    -------
    str
        ``text`` itself when it fits (whitespace collapsed), else its shortened form.
    """
    text = " ".join(str(text).split())
    for step in (_first_items, _no_parens, _no_bare_parts):
        if len(text) <= width:
            return text
        text = step(text)
    return text if len(text) <= width else _fewer_clauses(text, width)
