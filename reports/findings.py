"""Refresh the quoted tables of a findings page (docs/findings.md) from named runs' report.md.

A findings page quotes tables of a run's ``report.md``; it never re-types them. Each quote is
a block between two markers, naming the run and the table's title (its ``### `` heading in
``report.md``)::

    <!-- quote run=base-ml100k table="Quality @20" -->
    ...replaced by the table's caption and rows...
    <!-- /quote -->

and the page's table of runs (command, commit, date, machine) sits between
``<!-- runs -->`` and ``<!-- /runs -->``, built from each run's ``results.json``. Prose outside
the markers is left alone. ``--check`` rewrites nothing and exits 1 when a quote differs from its
run's report (the page has drifted).

The markers are strict: each on a line of its own, lower case, ``run=`` then ``table=`` with the
title in double quotes. A line holding anything else that looks like a marker (``table='...'``,
``<!--quote``, ``<!-- QUOTE``, no ``table=``), a ``<!-- /quote -->`` or ``<!-- /runs -->`` with
nothing open, a block never closed, a second ``<!-- runs -->`` and a run named twice in
``--run`` are errors (exit 2) naming the page and line, never skipped. Markers inside inline
code or a fenced code block are text.

Examples
--------
  mfsoftmax findings docs/findings.md --run base-ml100k=runs/ml-100k --run default=runs/default
  mfsoftmax findings docs/findings.md --run base-ml100k=runs/ml-100k --check
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

QUOTE = re.compile(r'^<!-- quote run=(?P<run>[\w.-]+) table="(?P<table>[^"]+)" -->$')
END = "<!-- /quote -->"
RUNS, RUNS_END = "<!-- runs -->", "<!-- /runs -->"
#: anything that looks like one of the markers, however misspelt
MARKER_LIKE = re.compile(r"<!--\s*/?\s*(quote|runs)\b", re.IGNORECASE)
QUOTE_FORM = '<!-- quote run=NAME table="TITLE" -->'


class FindingsError(ValueError):
    """A malformed findings page, an unknown run or a table its report does not have."""


def report_tables(report_md: str) -> dict:
    """``{title: text}`` for every ``### title`` of a report.md, the text up to the next heading."""
    tables, title, body = {}, None, []
    for line in report_md.splitlines() + ["## end"]:
        if line.startswith("#"):
            if title is not None:
                tables.setdefault(title, "\n".join(body).strip("\n"))
            title = line[4:].strip() if line.startswith("### ") else None
            body = []
        elif title is not None:
            body.append(line)
    return tables


def quote_block(run: str, title: str, text: str) -> list:
    """The lines of one quote: the label, the table's caption and rows."""
    return [f"> *{title}* (`report.md` of run `{run}`)", "", *text.splitlines()]


def runs_table(runs: dict) -> list:
    """Lines of the page's table of runs, from each run's results.json."""
    lines = ["| run | command | commit | date (UTC) | machine |", "|---|---|---|---|---|"]
    for name, folder in runs.items():
        path = Path(folder) / "results.json"
        try:
            res = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise FindingsError(f"{path}: cannot read results ({exc})") from None
        run = res.get("run", {})
        commit = str(run.get("git_commit") or "?")
        commit = f"`{commit[:7]}`" + (" (dirty)" if commit.endswith("-dirty") else "")
        cmd = " ".join(run.get("argv") or []) or _command(run.get("config") or {})
        when = str(run.get("started_at") or "?")[:16].replace("T", " ")
        mach = run.get("machine") or {}
        cal = (run.get("calibration") or {}).get("matmul_gflops")
        desc = f"{mach.get('cores', '?')} cores"
        if (run.get("threads") or {}).get("blas") is not None:
            desc += f", {run['threads']['blas']} thread(s) per pool"
        if cal:
            desc += f", calibration {float(cal):.0f} GFLOP/s"
        lines.append(f"| `{name}` | `{cmd}` | {commit} | {when} | {desc} |")
    return lines


def _command(cfg: dict) -> str:
    """A run's command rebuilt from its config, for results written before ``run.argv``."""
    run = cfg.get("run") or {}
    cmd = ["mfsoftmax", "run"]
    name = Path(str(run.get("config_file") or "default")).stem
    if name != "default":
        cmd += ["--config", name]
    data_dir = (cfg.get("dataset") or {}).get("data_dir")
    if data_dir:
        cmd += ["--data-dir", str(data_dir)]
    if run.get("quick"):
        cmd.append("--quick")
    return " ".join(cmd)


def markers(page: str) -> list:
    """The page's blocks as ``(start, end, match)`` line indexes: ``match`` is the quote
    marker's match, or None for the table of runs.

    Raises :class:`FindingsError` naming the line for a marker it cannot parse, a closing
    marker with nothing open, a block never closed and a second table of runs.
    """
    lines, blocks, opened, fence, runs_at = page.splitlines(), [], None, None, None
    for i, raw in enumerate(lines):
        line = raw.strip()
        if opened is None and line.startswith("```"):
            fence = None if fence is not None else i
            continue
        if fence is not None:
            continue
        kind, m = _classify(line, i)
        if kind is None:
            continue
        if opened is not None:
            start, want, m_open = opened
            if kind != want:
                raise FindingsError(f"line {start + 1}: {lines[start].strip()} has no {want} "
                                    f"after it (line {i + 1} has {line})")
            blocks.append((start, i, m_open))
            opened = None
        elif kind in (END, RUNS_END):
            opening = RUNS if kind == RUNS_END else "<!-- quote ... -->"
            raise FindingsError(f"line {i + 1}: {kind} with no {opening} open before it")
        elif kind == RUNS and runs_at is not None:
            raise FindingsError(f"line {i + 1}: a second {RUNS} (the first is at line "
                                f"{runs_at + 1}); a page has one table of runs")
        else:
            runs_at = i if kind == RUNS else runs_at
            opened = (i, RUNS_END if kind == RUNS else END, m)
    if opened is not None:
        start, want, _ = opened
        raise FindingsError(f"line {start + 1}: {lines[start].strip()} has no {want} after it")
    if fence is not None:
        raise FindingsError(f"line {fence + 1}: a ``` code fence that is never closed")
    return blocks


def _classify(line: str, i: int):
    """``(kind, match)`` of one stripped line: kind ``"quote"``, END, RUNS, RUNS_END, or None
    for text; :class:`FindingsError` for a line that looks like a marker but is not one."""
    if not MARKER_LIKE.search(re.sub(r"`[^`]*`", "", line)):
        return None, None
    if line in (END, RUNS, RUNS_END):
        return line, None
    m = QUOTE.match(line)
    if m:
        return "quote", m
    raise FindingsError(f"line {i + 1}: cannot parse marker {line!r}: expected {QUOTE_FORM}, "
                        f"{END}, {RUNS} or {RUNS_END}, alone on the line and in lower case")


def refresh(page: str, runs: dict, reports: dict) -> str:
    """The page with every quote replaced by its run's table and the runs table rebuilt.

    ``runs`` maps run names to folders (for the runs table); ``reports`` maps run names to the
    text of their report.md. The markers are checked first (:func:`markers`)."""
    blocks = markers(page)
    tables = {name: report_tables(text) for name, text in reports.items()}
    out, lines, i = [], page.splitlines(), 0
    for start, end, m in blocks:
        out += lines[i:start]
        if m is None:
            out += [lines[start], *runs_table(runs), lines[end]]
        else:
            run, title = m["run"], m["table"]
            if run not in tables:
                raise FindingsError(f"line {start + 1}: run {run!r} not given "
                                    f"(--run {run}=FOLDER)")
            if title not in tables[run]:
                near = [t for t in tables[run] if title.split()[0].lower() in t.lower()][:3]
                raise FindingsError(
                    f"line {start + 1}: report.md of run {run!r} has no table {title!r}"
                    + (f" (near: {', '.join(map(repr, near))})" if near else ""))
            out += [lines[start], *quote_block(run, title, tables[run][title]), END]
        i = end + 1
    out += lines[i:]
    return "\n".join(out) + ("\n" if page.endswith("\n") else "")


def add_arguments(p) -> None:
    p.add_argument("page", metavar="FINDINGS.md", help="the findings page to refresh")
    p.add_argument("--run", action="append", default=[], metavar="NAME=FOLDER",
                   help="a named run's folder (holding results.json and report.md); repeatable")
    p.add_argument("--check", action="store_true",
                   help="rewrite nothing; exit 1 when the page differs from the runs' reports")


def main(args) -> int:
    runs = {}
    for spec in args.run:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            print(f"mfsoftmax findings: --run {spec!r}: expected NAME=FOLDER", file=sys.stderr)
            return 2
        if name in runs:
            print(f"mfsoftmax findings: --run {name}: given twice ({runs[name]} and {folder}); "
                  "one folder per run name", file=sys.stderr)
            return 2
        runs[name] = folder
    page_path = Path(args.page)
    try:
        page = page_path.read_text()
        reports = {}
        for name, folder in runs.items():
            md = Path(folder) / "report.md"
            if not md.is_file():
                raise FindingsError(f"{md}: no report.md (run `mfsoftmax report {folder}`)")
            reports[name] = md.read_text()
        new = refresh(page, runs, reports)
    except OSError as exc:
        print(f"mfsoftmax findings: {exc}", file=sys.stderr)
        return 2
    except FindingsError as exc:
        print(f"mfsoftmax findings: {page_path}: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if new != page:
            print(f"{page_path}: quotes differ from the runs' reports", file=sys.stderr)
            return 1
        print(f"{page_path}: every quote matches its run's report")
        return 0
    tmp = page_path.with_name(page_path.name + ".tmp")
    tmp.write_text(new)
    tmp.replace(page_path)
    n = sum(1 for line in new.splitlines() if QUOTE.match(line.strip()))
    print(f"wrote {page_path} ({n} quotes refreshed from {len(runs)} run(s))")
    return 0
