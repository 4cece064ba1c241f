"""The GitHub-markdown view (``--format markdown``, the CI's sticky PR comment): summary, the
rows that need a look as a table, every row in a ``<details>`` block with ``--all``."""

from __future__ import annotations

from .cells import (
    cut,
    fmt_delta,
    fmt_ratio,
    fmt_value,
    header_lines,
    new_metrics_lines,
    summary_line,
)
from .rows import CompareResult, Row, shown_rows

COLUMNS = ("model", "metric", "baseline", "current", "delta", "raw ratio", "norm ratio",
           "verdict", "note")


def _cells(r: Row, width: int = 12) -> list[str]:
    """Markdown cells (values cut to ``width``; notes to 60)."""
    return [r.model, r.metric, fmt_value(r.baseline, width), fmt_value(r.current, width),
            fmt_delta(r), fmt_ratio(r.ratio), fmt_ratio(r.norm_ratio), r.verdict, cut(r.note, 60)]


def _md_table(rows: list[Row]) -> list[str]:
    def esc(c: str) -> str:
        return c.replace("|", "\\|")

    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = _cells(r)
        if r.failed:
            cells[7] = f"**{cells[7]}**"
        out.append("| " + " | ".join(esc(c) for c in cells) + " |")
    return out


def format_markdown(res: CompareResult, labels=("baseline", "current"), changes_only=False,
                    show_all=False) -> str:
    """GitHub markdown: summary, the rows that need a look, then (with ``show_all``) every row
    in a <details> block."""
    icon = ":x:" if res.failures else ":white_check_mark:"
    out = ["<!-- mfsoftmax-compare -->", f"### {icon} mfsoftmax compare: {summary_line(res)}", ""]
    out += [f"- {line}" for line in header_lines(res, labels)]
    out += [f"- {line}" for line in new_metrics_lines(res, shown_rows(res))] + [""]
    changed = shown_rows(res)
    if changed:
        out += ["**Regressions, missing, improved and new models**", ""] + _md_table(changed) + [""]
    if show_all and not changes_only:
        out += [f"<details><summary>All {len(res.rows)} rows</summary>", ""]
        out += _md_table(res.rows) + ["", "</details>"]
    else:
        out += [f"{len(changed)} of {len(res.rows)} rows shown (`--all` adds every row)."]
    return "\n".join(out) + "\n"
