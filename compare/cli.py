"""The ``mfsoftmax compare`` command line: its arguments and ``main`` (exit 0 / 1 / 2)."""

from __future__ import annotations

import sys

from .engine import compare
from .jsonout import format_json
from .load import CompareError, load_results
from .markdown import format_markdown
from .rules import (
    DEFAULT_MAX_QUALITY_DROP,
    DEFAULT_MAX_SLOWDOWN,
    DEFAULT_MIN_TIME_S,
    DEFAULT_MIN_TIME_US,
)
from .text import format_text


def add_arguments(p) -> None:
    p.add_argument("baseline", help="results.json of the reference run (e.g. a stored baseline)")
    p.add_argument("current", help="results.json of the run to check")
    p.add_argument("--max-quality-drop", type=float, default=DEFAULT_MAX_QUALITY_DROP,
                   metavar="ABS", help="largest allowed absolute drop of a quality metric "
                                       f"(default {DEFAULT_MAX_QUALITY_DROP:g})")
    p.add_argument("--max-slowdown", type=float, default=DEFAULT_MAX_SLOWDOWN, metavar="RATIO",
                   help="largest allowed normalised ratio current/baseline of a gated timing "
                        f"(default {DEFAULT_MAX_SLOWDOWN:g})")
    p.add_argument("--min-time-us", type=float, default=DEFAULT_MIN_TIME_US, metavar="US",
                   help=f"latency noise floor in microseconds (default {DEFAULT_MIN_TIME_US:g})")
    p.add_argument("--min-time-s", type=float, default=DEFAULT_MIN_TIME_S, metavar="S",
                   help="training-epoch noise floor in seconds "
                        f"(default {DEFAULT_MIN_TIME_S:g})")
    p.add_argument("--allow-missing", action="store_true",
                   help="do not fail on models or metrics missing from the current run")
    p.add_argument("--metrics", nargs="+", default=None, metavar="PATTERN",
                   help="only compare metrics matching these fnmatch patterns, "
                        "e.g. 'recall@*' 'serving.*' 'quality.ndcg@10'")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text",
                   help="output format (default text; json always holds every row)")
    p.add_argument("--all", "--verbose", "-v", dest="show_all", action="store_true",
                   help="show every row (default: only regressions, missing, improved rows and "
                        "new models)")
    p.add_argument("--changes-only", action="store_true",
                   help="only the rows that need a look (the default; overrides --all)")


def main(args) -> int:
    labels = (str(args.baseline), str(args.current))
    try:
        base = load_results(args.baseline)
        cur = load_results(args.current)
        res = compare(base, cur, args.max_quality_drop, args.max_slowdown,
                      min_time_us=args.min_time_us, min_time_s=args.min_time_s,
                      allow_missing=args.allow_missing, metrics=args.metrics, labels=labels)
    except CompareError as exc:
        print(f"mfsoftmax compare: error: {exc}", file=sys.stderr)
        return 2
    show_all = bool(getattr(args, "show_all", False)) and not args.changes_only
    if args.format == "json":
        text = format_json(res, labels)
    elif args.format == "markdown":
        text = format_markdown(res, labels, show_all=show_all)
    else:
        text = format_text(res, labels, show_all=show_all)
    sys.stdout.write(text)
    if res.failures:
        print(f"mfsoftmax compare: {len(res.failures)} failing row(s) (regression or missing) "
              f"against {labels[0]}", file=sys.stderr)
    return res.exit_code
