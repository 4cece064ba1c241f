"""The ``mfsoftmax history`` command line: ``add`` and ``show`` (exit 0 / 2)."""

from __future__ import annotations

import sys
from pathlib import Path

from mfsoftmax.compare.load import CompareError


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="history_cmd", metavar="ACTION", required=True)
    a = sub.add_parser("add", help="store the gated figures of one results.json")
    a.add_argument("results", help="results.json (or its run folder)")
    a.add_argument("--store", required=True, metavar="DIR", help="the history folder")
    a.add_argument("--commit", default=None, metavar="SHA",
                   help="the commit of the run (default: the file's run.git_commit)")
    s = sub.add_parser("show", help="change points per figure; --html for the trend plots")
    s.add_argument("--store", required=True, metavar="DIR", help="the history folder")
    s.add_argument("--html", default=None, metavar="PAGE", help="write the HTML page here")
    s.add_argument("--figures", nargs="+", default=None, metavar="PATTERN",
                   help="only figures matching these fnmatch patterns, e.g. 'wals/*'")
    s.add_argument("--format", choices=("text", "json"), default="text")


def main(args) -> int:
    from mfsoftmax.runtime import atomic_write_text  # lazy: it loads numpy

    from . import store, views  # lazy: numpy and sqlite only when a command runs

    try:
        if args.history_cmd == "add":
            commit, n = store.add(Path(args.store), Path(args.results), args.commit)
            print(f"history: {n} figure(s) of {args.results} at {commit[:10]} added to "
                  f"{Path(args.store) / store.FILE}")
            return 0
        runs, figures = store.series(Path(args.store))
        entries = views.analyse(runs, figures, args.figures)
        if args.html:
            page = Path(args.html)
            if not page.parent.is_dir():
                raise CompareError(f"--html {page}: folder {page.parent} does not exist")
            atomic_write_text(page, views.format_html(entries, runs))
        fmt = views.format_json if args.format == "json" else views.format_text
        sys.stdout.write(fmt(entries, runs))
        return 0
    except CompareError as exc:
        print(f"mfsoftmax history: error: {exc}", file=sys.stderr)
        return 2
