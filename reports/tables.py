"""Report tables as plain data (title, key columns, one column group per run, rows of cells).

A cell is a string, or ``(text, css_class)`` where the class marks e.g. the best value of a column
("best"), a failed stage ("failed") or a verdict kind. Sections a run did not measure produce no
table (``None``): nothing is faked. Each claim's tables are in its section module
(``reports/sections/``); this module is the machinery they share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from mfsoftmax.reports import fmt


@dataclass
class Table:
    key: str                         # stable identifier (HTML anchor, tests)
    title: str
    key_headers: list
    groups: list                     # [(run label, [column names])]
    rows: list = field(default_factory=list)  # [(key cells, value cells flattened over groups)]
    note: str = ""


class Folded(NamedTuple):
    """A ``(text, css class)`` cell shown short, with its ``full`` text one click away (HTML
    ``<details>``, a numbered note under a Markdown table) and, in HTML, plot ``plot`` of run
    ``run`` beside it (a headline sparkline, :mod:`mfsoftmax.reports.glance`)."""
    text: str
    cls: str
    full: str
    run: int = 0
    plot: str = ""


def cell_text(cell) -> str:
    return cell[0] if isinstance(cell, tuple) else cell


def run_label(results: dict, index: int) -> str:
    """'A: synthetic · 20250101-120000 · 6b20f43c' (letter, dataset, run id, commit)."""
    run, ds = results.get("run", {}), results.get("dataset", {})
    parts = [ds.get("name") or "?", run.get("id") or "?"]
    if run.get("git_commit"):
        parts.append(str(run["git_commit"])[:8])
    return f"{chr(ord('A') + index)}: " + " · ".join(parts)


def keyed_table(key, title, key_headers, per_run, labels, columns=None, best=None, note=""):
    """Line runs up by row key. ``per_run``: one ``{key tuple: {column: cell}}`` per run.

    ``best``: {column: max|min} marks each run's best numeric value of that column (cell values
    are then ``(number, text)`` pairs before marking). Returns None when every run is empty.
    """
    if not any(per_run):
        return None
    keys, cols = [], []
    for rows in per_run:
        for k, vals in rows.items():
            if k not in keys:
                keys.append(k)
            for c in vals:
                if c not in cols:
                    cols.append(c)
    if columns is not None:
        cols = [c for c in columns if c in cols]
    marked = [_mark_best(rows, cols, best or {}) for rows in per_run]
    groups = [(label if len(per_run) > 1 else "", cols) for label in labels]
    table = Table(key, title, list(key_headers), groups, note=note)
    for k in keys:
        vals = []
        for rows in marked:
            row = rows.get(k, {})
            vals.extend(row.get(c, fmt.DASH) for c in cols)
        table.rows.append(([str(x) for x in k], vals))
    return table


def _mark_best(rows, cols, best) -> dict:
    out = {k: dict(v) for k, v in rows.items()}
    for c in cols:
        nums = [(v[c][0], k) for k, v in rows.items() if _is_pair(v.get(c))]
        for v in out.values():
            if _is_pair(v.get(c)):
                v[c] = v[c][1]
        if c in best and len(nums) > 1:
            target = best[c](n for n, _ in nums)
            for n, k in nums:
                if n == target:
                    out[k][c] = (out[k][c], "best")
    return out


def _is_pair(cell) -> bool:
    """A ``(number, text)`` input cell (as opposed to a ``(text, css class)`` cell)."""
    return isinstance(cell, tuple) and fmt.is_num(cell[0])


def sweep_table(runs, labels, key, title, kcols, vcols):
    """One row per row of ``sweeps.<key>`` at its operating point (ANN sweeps keep one row per
    index), keyed by the columns ``kcols``; ``vcols``: ``(field, column, format)`` of each
    value. None when no run has such rows."""
    per_run = []
    for results in runs:
        rows = {}
        for r in results.get("sweeps", {}).get(key, []):
            if not r.get("operating_point", True):  # ANN sweeps: one row per index
                continue
            k = tuple(fmt.count(r[c]) if fmt.is_num(r.get(c)) else
                      str(r.get(c, "trained" if c == "vectors" else fmt.DASH)) for c in kcols)
            rows[k] = {label: f(r[c]) for c, label, f in vcols if fmt.is_num(r.get(c))}
        per_run.append(rows)
    return keyed_table(key, title, [c.replace("_", " ") for c in kcols], per_run, labels)
