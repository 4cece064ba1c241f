"""The plain-text view (the CLI's default): header, summary, then the rows that need a look
grouped by model, no line wider than :data:`MAX_WIDTH` columns."""

from __future__ import annotations

import textwrap

from .cells import change, cut, fmt_ratio, fmt_value, header_lines, new_metrics_lines, summary_line
from .rows import CompareResult, Row, shown_rows

MAX_WIDTH = 100  # text output: no line is wider
TEXT_COLUMNS = ("metric", "baseline", "current", "change", "raw", "verdict", "note")
TEXT_CAPS = (44, 10, 10, 9, 7, 10)  # widest cell of each column but the note


def _text_cells(r: Row) -> list[str]:
    cells = [r.metric, fmt_value(r.baseline, TEXT_CAPS[1]), fmt_value(r.current, TEXT_CAPS[2]),
             change(r), fmt_ratio(r.ratio) if r.ratio is not None else "", r.verdict]
    return [cut(c, w) for c, w in zip(cells, TEXT_CAPS, strict=True)] + [r.note]


def _fit(line: str, width: int = MAX_WIDTH) -> str:
    return line if len(line) <= width else line[:width - 1] + "~"


def _wrap(lines, width: int = MAX_WIDTH) -> list[str]:
    """Header lines wrapped (not cut) to ``width``, continuation lines indented."""
    out = []
    for line in lines:
        out += textwrap.wrap(line, width, subsequent_indent="    ", break_on_hyphens=False,
                             break_long_words=True) or [""]
    return out


def format_text(res: CompareResult, labels=("baseline", "current"), changes_only=False,
                show_all=False) -> str:
    """Plain-text view: header, summary, then the rows that need a look grouped by model
    (every row with ``show_all``, unless ``changes_only``); no line is wider than
    ``MAX_WIDTH``."""
    show_all = show_all and not changes_only
    rows = shown_rows(res, show_all)
    out = _wrap(header_lines(res, labels))
    out += [""] + _wrap([summary_line(res), *new_metrics_lines(res, rows)])
    if not rows:
        hidden = len(res.rows)
        out.append(f"no row to show ({hidden} row(s) ok or info; --all lists them)")
        return "\n".join(out) + "\n"
    table = [list(TEXT_COLUMNS[:-1])] + [_text_cells(r)[:-1] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(TEXT_COLUMNS) - 1)]
    indent = "  "

    def line(cells, note=""):
        body = indent + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
        if note:
            room = MAX_WIDTH - len(body) - 2
            body = body + "  " + cut(note, room) if room >= 8 else body
        return _fit(body.rstrip())

    out += ["", line(TEXT_COLUMNS[:-1], "note"),
            _fit(indent + "  ".join("-" * w for w in [*widths, 4]))]
    model = None
    for r in rows:
        if r.model != model:
            model = r.model
            out.append(_fit(model))
        cells = _text_cells(r)
        out.append(line(cells[:-1], cells[-1]))
    if not show_all:
        out += ["", f"showing {len(rows)} of {len(res.rows)} rows; --all lists every row"]
    return "\n".join(out) + "\n"
