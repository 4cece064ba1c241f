"""The `mfsoftmax` command: datasets, eval, run, report, compare, findings, ab, history.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``main(args) -> int``; heavy imports happen inside ``main`` so ``--help`` stays fast. The
commands that are only CLI live in this package (``datasets``, ``eval``, ``run``: the suite
composed with the report); the others in the package they drive. Nothing outside this package
imports it, so the core modules (evaluation, runtime, ranking, folding) stay leaves.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mfsoftmax import __version__

COMMANDS = {
    "datasets": ("mfsoftmax.cli.datasets", "list the dataset registry, or show one dataset's stats"),
    "eval": ("mfsoftmax.cli.eval", "fit one model on one split and print the harness metrics"),
    "run": ("mfsoftmax.cli.run", "run the benchmark suite and write results.json + report"),
    "report": ("mfsoftmax.reports.cli", "render report.md/report.html from results.json files"),
    "compare": ("mfsoftmax.compare", "compare two results.json files; exit 1 on regression"),
    "findings": ("mfsoftmax.reports.findings", "refresh a findings page's quoted tables from runs"),
    "ab": ("mfsoftmax.bench.ab", "A/B gate: time kernels of two commits side by side; exit 1 if slower"),
    "history": ("mfsoftmax.history", "keep gated figures over commits; trends and change points"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mfsoftmax",
        description="WALS matrix factorization vs softmax DNN recommenders: one dataset, one harness.",
    )
    parser.add_argument("--version", action="version", version=f"mfsoftmax {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:  # a module not built yet must not break the others
            p = sub.add_parser(name, help=f"{help_text} (unavailable: {exc})")
            p.set_defaults(_main=lambda args, e=exc: _unavailable(e))
            continue
        p = sub.add_parser(name, help=help_text, description=(mod.__doc__ or help_text).strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_main=mod.main)
    return parser


def _unavailable(exc) -> int:
    print(f"mfsoftmax: this command is unavailable: {exc}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_main", None):
        parser.print_help()
        return 0
    return int(args._main(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
