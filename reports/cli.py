"""Render report.md and report.html (plus plots) from one or more results.json files.

Several files are lined up side by side: one column group per run.

Examples
--------
  mfsoftmax report runs/latest/results.json
  mfsoftmax report run-a/results.json run-b/results.json --out reports/compare-a-b
"""

from __future__ import annotations

import sys
from pathlib import Path

from mfsoftmax.reports.load import ReportInputError, load_results, unfinished


def add_arguments(p) -> None:
    p.add_argument("results", nargs="+", metavar="RESULTS.json",
                   help="results.json file(s), or run folders holding one")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="output folder (default: the folder of the first results file)")


def main(args) -> int:
    from mfsoftmax.reports.render import render_report  # lazy: matplotlib (~0.5 s), off --help
    from mfsoftmax.runtime import check_writable  # lazy: numpy, off --help

    try:
        runs = [load_results(path) for path in args.results]
        first = Path(args.results[0])
        out = Path(args.out) if args.out else (first if first.is_dir() else first.parent)
        check_writable(out, "--out" if args.out else "output folder", ReportInputError)
    except ReportInputError as exc:
        print(f"mfsoftmax report: {exc}", file=sys.stderr)
        return 2
    for path, run in zip(args.results, runs, strict=True):
        why = unfinished(run)
        if why:
            print(f"mfsoftmax report: warning: {path}: {why}", file=sys.stderr)
    try:
        written = render_report(runs, out, sources=[str(p) for p in args.results])
    except OSError as exc:  # the folder cannot be made (/proc/x, a read-only disk), or a write
        print(f"mfsoftmax report: {'--out' if args.out else 'output folder'} {out}: cannot write "
              f"the report there: {exc.strerror or exc}", file=sys.stderr)
        return 2
    n_plots = sum(1 for k in written if k.endswith(".png"))
    print(f"wrote {written['md']}")
    print(f"wrote {written['html']}")
    print(f"wrote {n_plots} plots (PNG + SVG) under {out / 'plots'}")
    return 0
