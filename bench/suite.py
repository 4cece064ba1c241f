"""Run the benchmark suite: both families plus the popularity baseline on one dataset and one
split; measure quality, training cost, serving, query-feature ablation, cold start, folding and
the scaling sweeps; write results.json (and the report) atomically.

Examples
--------
  mfsoftmax run                                   # default config: synthetic planted groups
  mfsoftmax run --quick                           # smoke run (under a minute)
  mfsoftmax run --config ml-100k --data-dir ../shared/datasets
  mfsoftmax run --config scale                    # the scaling sweeps
  mfsoftmax run --models popularity wals --stages quality,serving --set tuning.trials=8

Exit status: 0 when every stage succeeded, 1 when a stage failed (results still written, the
stage marked failed), 2 on a bad config or dataset, 130 when interrupted.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

from .config import STAGES, ConfigError, load_config, merge, shrink, validate


def add_arguments(p) -> None:
    p.add_argument("--config", help="TOML file, or a name in bench/configs (default: default)")
    p.add_argument("--dataset", help="dataset name or spec (overrides the config)")
    p.add_argument("--data-dir", help="folder with an unpacked copy of the dataset (offline)")
    p.add_argument("--protocol", help="holdout, temporal or strong")
    p.add_argument("--models", nargs="+", help="only these configured models")
    p.add_argument("--stages", help=f"comma list of stages to run (of: {', '.join(STAGES)})")
    p.add_argument("--quick", action="store_true", help="shrink the config to a smoke run")
    p.add_argument("--out", help="output folder (default: reports/<run-id>)")
    p.add_argument("--seed", type=int, help="seed of data, split, models and search")
    p.add_argument("--threads", type=int, help="BLAS/torch/implicit threads (default 1)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set tuning.trials=8 (repeatable)")
    p.add_argument("--no-report", action="store_true", help="write results.json only")
    p.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="force progress bars (default: when stderr is a terminal)")
    p.add_argument("--no-progress", dest="progress", action="store_false")


def resolve_config(args) -> dict:
    """Config file, then flags, then --quick, then --set overrides; validated."""
    cfg = load_config(args.config)
    ds = cfg["dataset"]
    if args.dataset and args.dataset != ds["name"]:
        ds["name"], ds["params"] = args.dataset, {}
    if args.data_dir:
        ds["data_dir"] = args.data_dir
    if args.protocol:
        ds["protocol"] = args.protocol
    if args.seed is not None:
        cfg["run"]["seed"] = args.seed
    if args.threads is not None:
        cfg["run"]["threads"] = args.threads
    if args.models:
        unknown = set(args.models) - set(cfg["models"])
        if unknown:
            raise ConfigError(f"--models: not in the config: {', '.join(sorted(unknown))} "
                              f"(configured: {', '.join(cfg['models'])})")
        cfg["models"] = {k: v for k, v in cfg["models"].items() if k in args.models}
    if args.stages:
        wanted = [s.strip() for s in args.stages.split(",") if s.strip()]
        bad = set(wanted) - set(STAGES)
        if bad:
            raise ConfigError(f"--stages: unknown {', '.join(sorted(bad))}; known: {', '.join(STAGES)}")
        if "training" in wanted:  # training cost is measured by the quality stage
            wanted.append("quality")
        cfg["stages"] = {s: s in wanted for s in STAGES}
    if args.quick:
        cfg = shrink(cfg)
    for item in args.set:  # last, so an explicit --set wins over --quick
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        key, val = item.split("=", 1)
        try:
            val = json.loads(val)
        except json.JSONDecodeError:
            pass
        node = cfg
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"--set {key}: {part!r} is not a config section")
            node = node[part]
        node[parts[-1]] = val
    if args.progress is not None:
        cfg["run"]["progress"] = args.progress
    if args.no_report:
        cfg["run"]["report"] = False
    validate(cfg, "resolved config")
    return cfg


def make_run_dir(cfg: dict, out: str | None) -> Path:
    if out:
        path = Path(out)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in cfg["dataset"]["name"])
        base = Path(cfg["run"]["out"]) / f"{stamp}-{name}-{cfg['dataset']['protocol']}"
        path, i = base, 1
        while path.exists():
            path, i = Path(f"{base}-{i}"), i + 1
    path.mkdir(parents=True, exist_ok=True)
    return path


def update_latest(run_dir: Path) -> None:
    """Point ``<parent>/latest`` at ``run_dir`` (atomic symlink swap)."""
    link = run_dir.parent / "latest"
    tmp = run_dir.parent / f".latest.{os.getpid()}"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(run_dir.name)
        os.replace(tmp, link)
    except OSError:  # filesystems without symlinks: a text pointer
        from mfsoftmax.runtime import atomic_write_text

        atomic_write_text(run_dir.parent / "latest.txt", run_dir.name + "\n")


def main(args) -> int:
    from mfsoftmax.datasets import DatasetError

    try:
        cfg = resolve_config(args)
    except ConfigError as exc:
        print(f"mfsoftmax run: {exc}", file=sys.stderr)
        return 2
    run_dir = make_run_dir(cfg, args.out)
    from .runner import Runner

    runner = Runner(cfg, run_dir)
    try:
        runner.prepare()
    except (DatasetError, FileNotFoundError, ValueError) as exc:
        print(f"mfsoftmax run: {exc}", file=sys.stderr)
        runner.write_results()
        return 2
    code = 0
    try:
        runner.run_all()
    except KeyboardInterrupt:
        print("\nmfsoftmax run: interrupted; partial results written, stage marked interrupted",
              file=sys.stderr)
        code = 130
    runner.finish()
    path = runner.write_results()
    update_latest(run_dir)
    if cfg["run"].get("report", True):
        try:
            from mfsoftmax.reports import render_report

            # the report is computed from the stored results, as `mfsoftmax report` would
            render_report(json.loads(path.read_text()), run_dir, sources=[str(path)])
        except Exception as exc:  # the report must never lose the results
            print(f"mfsoftmax run: report failed: {exc}", file=sys.stderr)
            traceback.print_exc()
            code = code or 1
    print(runner.summary_table())
    print(f"\nresults: {path}")
    failed = [k for k, v in runner.results["stages"].items() if v["status"] != "ok"]
    if failed and not code:
        print(f"mfsoftmax run: stages failed: {', '.join(failed)}", file=sys.stderr)
        code = 1
    return code


__all__ = ["add_arguments", "main", "resolve_config", "merge"]
