"""The ``mfsoftmax ab`` command line: its arguments and ``main`` (exit 0 / 1 / 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mfsoftmax.compare.load import CompareError

from . import report, stats
from .session import KERNELS, SLOWDOWN_ENV, Plan, measure
from .worker import slowdowns
from .worktree import KEEP, KEEP_ENV, CommitEnv, commit_env, git, head_env, keep_count, prune

SYNTHETIC = ("synthetic.matmul", "synthetic.python")


def add_arguments(p) -> None:
    p.add_argument("--base", required=True, metavar="REF",
                   help="the reference commit (commit, branch, tag; e.g. the merge base with main)")
    p.add_argument("--head", default=".", metavar="REF",
                   help="the commit to check (default '.': this checkout as it is, with the "
                        "running interpreter)")
    p.add_argument("--kernels", nargs="+", default=list(KERNELS), metavar="NAME",
                   choices=list(KERNELS) + list(SYNTHETIC),
                   help=f"kernels to run (default all: {', '.join(KERNELS)})")
    p.add_argument("--min-rounds", type=int, default=Plan.min_rounds, metavar="N",
                   help=f"rounds before a kernel may stop (default {Plan.min_rounds})")
    p.add_argument("--max-rounds", type=int, default=Plan.max_rounds, metavar="N",
                   help=f"round cap per kernel (default {Plan.max_rounds})")
    p.add_argument("--budget-s", type=float, default=Plan.budget_s, metavar="S",
                   help="after this many seconds every kernel stops at its next check "
                        f"(default {Plan.budget_s:g})")
    p.add_argument("--rotate", type=int, default=Plan.rotate, metavar="N",
                   help="fresh worker processes every N rounds (default "
                        f"{Plan.rotate}; 0: one pair for the whole gate)")
    p.add_argument("--max-slowdown", type=float, default=stats.MAX_SLOWDOWN, metavar="RATIO",
                   help="fail at a significant ratio head/base at least this large "
                        f"(default {stats.MAX_SLOWDOWN:g})")
    p.add_argument("--inject", default=None, metavar="NAME=F",
                   help=f"add a busy loop of (F-1) x its own time to head's kernels (the proof; "
                        f"same as ${SLOWDOWN_ENV}), e.g. train.dnn_sampled_epoch=1.25")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="where commit environments are kept (default REPO/.ab-cache)")
    p.add_argument("--cache-keep", type=int, default=None, metavar="N",
                   help="after the run, keep the N most recently used environments of the "
                        f"cache, never one in use (default ${KEEP_ENV} or {KEEP})")
    p.add_argument("--repo", default=".", metavar="DIR", help="the git checkout (default .)")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text",
                   help="what to print (default text)")
    p.add_argument("--markdown-out", default=None, metavar="FILE",
                   help="also write the markdown view (the PR comment) here")
    p.add_argument("--json-out", default=None, metavar="FILE", help="also write the JSON here")


def _check(args) -> Plan:
    if args.min_rounds < 2:
        raise CompareError(f"--min-rounds must be >= 2, got {args.min_rounds}")
    if args.max_rounds < args.min_rounds:
        raise CompareError(f"--max-rounds ({args.max_rounds}) must be >= --min-rounds "
                           f"({args.min_rounds})")
    if not args.max_slowdown > 1.0:
        raise CompareError(f"--max-slowdown must be > 1 (a ratio), got {args.max_slowdown}")
    if args.rotate < 0:
        raise CompareError(f"--rotate must be >= 0, got {args.rotate}")
    if not args.budget_s > 0:
        raise CompareError(f"--budget-s must be > 0, got {args.budget_s}")
    try:
        slowdowns(args.inject)
    except ValueError as exc:
        raise CompareError(f"--inject {args.inject!r}: {exc}") from None
    return Plan(tuple(dict.fromkeys(args.kernels)), args.min_rounds, args.max_rounds,
                args.budget_s, args.max_slowdown, args.rotate)


def _env(repo: Path, ref: str, cache: Path, held: list) -> CommitEnv:
    return head_env(repo) if ref == "." else commit_env(repo, ref, cache, log=_log, held=held)


def _release(cache: Path, keep: int, held: list) -> None:
    """Prune the cache when this run used it (its environments still held), then let them go."""
    try:
        removed = prune(cache, keep) if held else []
        if removed:
            _log(f"ab: cache {cache}: removed {len(removed)} environment(s) not among the {keep} "
                 f"most recently used: {', '.join(s[:10] for s in removed)}")
    finally:
        for fh in held:
            fh.close()


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _check_imports(measured, envs: dict) -> None:
    """Each worker must have imported mfsoftmax from its own commit's tree."""
    for side, env in envs.items():
        got = measured.info[side].get("mfsoftmax")
        if got and not Path(got).resolve().is_relative_to(env.src.resolve()):
            raise CompareError(f"ab: the {side} worker ({env.python}) imports mfsoftmax from "
                               f"{got}, not from {env.src}")


def run(args) -> report.AbResult:
    """Resolve both sides, measure, build the result (CompareError on unusable input)."""
    plan = _check(args)
    keep = keep_count(args.cache_keep)
    try:
        repo = Path(git(Path(args.repo), "rev-parse", "--show-toplevel"))
    except CompareError as exc:
        raise CompareError(f"--repo {args.repo}: not a git checkout ({exc})") from None
    cache = Path(args.cache) if args.cache else repo / ".ab-cache"
    slowdown = args.inject
    if slowdown is None:
        slowdown = os.environ.get(SLOWDOWN_ENV)
    held: list = []
    try:
        envs = {s: _env(repo, getattr(args, s), cache, held) for s in ("base", "head")}
        measured = measure(envs["base"], envs["head"], plan, slowdown, log=_log)
    finally:
        _release(cache, keep, held)
    _check_imports(measured, envs)
    settings = {"max_slowdown": plan.max_slowdown, "confidence": stats.CONFIDENCE,
                "min_rounds": plan.min_rounds, "max_rounds": plan.max_rounds,
                "budget_s": plan.budget_s, "rotate": plan.rotate,
                "kernels": list(plan.kernels),
                "slowdown": slowdown or "", "statistic": "thread CPU time per call"}
    side = {s: {"label": e.label, "sha": e.sha, "python": e.python, "src": str(e.src)}
            for s, e in envs.items()}
    return report.AbResult(report.build(measured, plan.kernels, plan.max_slowdown),
                           side["base"], side["head"], settings, measured.wall_s,
                           measured.info, measured.samples)


def main(args) -> int:
    from mfsoftmax.runtime import atomic_write_text  # lazy: it loads numpy

    try:
        res = run(args)
    except CompareError as exc:
        print(f"mfsoftmax ab: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"mfsoftmax ab: error: {exc}", file=sys.stderr)
        return 2
    views = {"text": report.format_text, "markdown": report.format_markdown,
             "json": report.format_json}
    for path, fmt in ((args.markdown_out, "markdown"), (args.json_out, "json")):
        if path:
            atomic_write_text(path, views[fmt](res))
    sys.stdout.write(views[args.format](res))
    return res.exit_code
