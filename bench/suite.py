"""The suite's run lifecycle behind ``mfsoftmax run`` (the command is ``mfsoftmax.cli.run``): the
flags and config resolved, the run folder claimed, the stages run and results.json written,
signals and failures turned into exit statuses. The suite is the writer of results.json and
imports no reader: the command passes in :class:`Readers` (render the report, the terminal
headline), which this module calls at the right points.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from .config import (
    QUICK_DATASET,
    STAGES,
    ConfigError,
    load_config,
    merge,
    shrink,
    split_for_protocol,
    validate,
)


def add_arguments(p) -> None:
    p.add_argument("--config", help="TOML file, or a name in bench/configs (default: default)")
    p.add_argument("--dataset", help="dataset name or spec (overrides the config)")
    p.add_argument("--data-dir", help="folder with an unpacked copy of the dataset (offline)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset builder parameter, e.g. --param path=my.csv (repeatable; "
                        "as for `mfsoftmax datasets`)")
    p.add_argument("--protocol", help="holdout, temporal or strong")
    p.add_argument("--models", nargs="+", help="only these configured models")
    p.add_argument("--stages", help=f"comma list of stages to run (of: {', '.join(STAGES)})")
    p.add_argument("--quick", action="store_true",
                   help="shrink the config to a smoke run: one trial, few epochs, small data (real "
                        "datasets capped to 1000 items, 1500 users, 30k interactions); minutes, "
                        "at any catalogue size")
    p.add_argument("--out", help="output folder, new or empty (default: a fresh runs/<run-id>)")
    p.add_argument("--seed", type=int, help="seed of data, split, models and search")
    p.add_argument("--threads", type=int, help="BLAS/torch/implicit threads (default 1)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set tuning.trials=8 (repeatable)")
    p.add_argument("--no-report", action="store_true", help="write results.json only")
    p.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="force progress bars (default: when stderr is a terminal)")
    p.add_argument("--no-progress", dest="progress", action="store_false")


def _parse_value(val: str):
    """A flag's value as JSON (``8``, ``[0, 1]``, ``"x"``), ``true``/``false`` in any case as
    booleans (``False`` is ``false``), anything else as the string."""
    if val.strip().lower() in ("true", "false"):
        return val.strip().lower() == "true"
    try:
        return json.loads(val)
    except json.JSONDecodeError:
        return val


def resolve_config(args) -> dict:
    """Config file, then flags, then --quick, then --param and --set (an explicit value wins
    over --quick); validated."""
    for flag, val, low in (("--threads", args.threads, 1), ("--seed", args.seed, 0)):
        if val is not None and val < low:
            raise ConfigError(f"{flag} {val}: must be an integer >= {low}")
    cfg = load_config(args.config)
    ds = cfg["dataset"]
    if args.dataset and args.dataset != ds["name"]:
        ds["name"], ds["params"] = args.dataset, {}
    if args.data_dir:
        ds["data_dir"] = args.data_dir
    if args.protocol and args.protocol != ds["protocol"]:
        # the file's split options belong to its own protocol: keep only those the new one takes
        ds["split"], dropped = split_for_protocol(ds["split"], args.protocol)
        if dropped:
            print(f"mfsoftmax run: note: --protocol {args.protocol} ignores the config's "
                  f"dataset.split option(s) {', '.join(dropped)} (they belong to "
                  f"{ds['protocol']})", file=sys.stderr)
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
    if args.stages is not None:
        wanted = [s.strip() for s in args.stages.split(",") if s.strip()]
        if not wanted:
            raise ConfigError(f"--stages {args.stages!r}: no stage named; give a comma list of "
                              f"{', '.join(STAGES)} (or leave --stages out to run them all)")
        bad = set(wanted) - set(STAGES)
        if bad:
            raise ConfigError(f"--stages: unknown {', '.join(sorted(bad))}; known: {', '.join(STAGES)}")
        if "training" in wanted:  # training cost is measured by the quality stage
            wanted.append("quality")
        cfg["stages"] = {s: s in wanted for s in STAGES}
    if args.quick:
        cfg = shrink(cfg)
    _apply_params(cfg, getattr(args, "param", None) or [])  # after --quick: explicit wins
    for item in args.set:  # last, so an explicit --set wins over --quick
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        key, val = item.split("=", 1)
        node = cfg
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                where = ".".join(parts[:i + 1])
                raise ConfigError(f"--set {key}: {where!r} is not a config section")
            node = node[part]
        node[parts[-1]] = _parse_value(val)
    if args.progress is not None:
        cfg["run"]["progress"] = args.progress
    if args.no_report:
        cfg["run"]["report"] = False
    validate(cfg, "resolved config (after flags)" if (args.set or args.param) else
             cfg["run"].get("config_file", "config"))
    return cfg


def _apply_params(cfg: dict, items: list) -> None:
    """Set ``--param KEY=VALUE`` builder parameters in ``cfg["dataset"]["params"]``; one that
    replaces a ``--quick`` data cap says so."""
    params = cfg["dataset"]["params"]
    caps = QUICK_DATASET.get(cfg["dataset"]["name"], {}) if cfg["run"].get("quick") else {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--param {item!r}: expected KEY=VALUE")
        key, val = item.split("=", 1)
        params[key] = _parse_value(val)
        if key in caps:
            print(f"mfsoftmax run: note: --param {key}={val} replaces --quick's {key}="
                  f"{caps[key]}", file=sys.stderr)


def plan_run_dir(cfg: dict, out: str | None) -> Path:
    """The run folder (not created yet): ``--out`` when given (it must be new or empty), else
    ``<run.out>/<stamp>-<dataset>-<protocol>[-quick]`` (:func:`claim_run_dir` adds ``-1``,
    ``-2``, ... when that is taken). Raises ``ConfigError`` when the folder cannot be used,
    before any work is done."""
    from mfsoftmax.runtime import check_writable  # lazy: numpy, off --help

    if out:
        path = Path(out)
        if path.is_dir() and any(path.iterdir()):
            raise ConfigError(_not_empty(out, cfg))
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in cfg["dataset"]["name"])
        quick = "-quick" if cfg["run"].get("quick") else ""
        path = Path(cfg["run"]["out"]) / f"{stamp}-{name}-{cfg['dataset']['protocol']}{quick}"
    check_writable(path, "--out" if out else "run.out", ConfigError)
    return path


def _not_empty(out, cfg: dict) -> str:
    return (f"--out {out}: folder is not empty (the suite never overwrites an earlier run; give a "
            f"new folder, or omit --out for a fresh {cfg['run']['out']}/<run-id>)")


#: held in the run folder while a run writes it (the claim of an ``--out`` folder)
LOCK = ".mfsoftmax-run.lock"


def claim_run_dir(path: Path, cfg: dict, explicit: bool) -> Path:
    """Create the run folder :func:`plan_run_dir` chose and claim it atomically, so that two runs
    started together never share one: a default folder is made by ``mkdir`` without
    ``exist_ok`` (taken: the next of ``<name>-1``, ``<name>-2``, ...); an ``--out`` folder, which
    may exist empty, by creating its lock file :data:`LOCK` exclusively, then checking that
    nothing else is in it. Returns the folder claimed; :func:`release_run_dir` drops the lock.
    Raises ``ConfigError`` (exit 2) when it cannot be made or another run holds it."""
    label = f"--out {path}" if explicit else f"run folder {path}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if explicit:
            path.mkdir(exist_ok=True)
        else:
            base, i = path, 1
            while True:
                try:
                    path.mkdir()
                    break
                except FileExistsError:
                    path, i = Path(f"{base}-{i}"), i + 1
    except OSError as exc:
        raise ConfigError(f"{label}: cannot create the run folder: {exc.strerror or exc}") from None
    try:
        fd = os.open(path / LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        raise ConfigError(f"{label}: another run is writing into it (it holds {LOCK}); give "
                          "another folder") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot claim the run folder: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{os.getpid()}\n")
    if explicit and any(p.name != LOCK for p in path.iterdir()):
        release_run_dir(path)
        raise ConfigError(_not_empty(path, cfg))
    return path


def release_run_dir(path: Path) -> None:
    """Drop the claim :func:`claim_run_dir` took (the folder and what the run wrote stay)."""
    with contextlib.suppress(OSError):
        (path / LOCK).unlink()


def update_latest(run_dir: Path, root: Path) -> str | None:
    """Point ``<root>/latest`` (the suite's own reports root) at ``run_dir`` by an atomic symlink
    swap. A ``latest`` that is not a symlink (a user's file) is left alone; returns a warning
    then, else None."""
    root = Path(root)
    link = root / "latest"
    if (link.exists() or link.is_symlink()) and not link.is_symlink():
        return f"{link} exists and is not the suite's symlink; left as it is"
    target = os.path.relpath(run_dir.resolve(), root.resolve())
    if target.startswith(".."):
        target = str(run_dir.resolve())
    tmp = root / f".latest.{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(target)
        os.replace(tmp, link)
    except OSError as exc:
        return f"could not point {link} at the run: {exc.strerror or exc}"
    return None


#: the signals a run handles like Ctrl-C (SIGHUP: the terminal or ssh session went away)
SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, handled like Ctrl-C (exit 128 + the signal's number: 143, 129)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum, frame):
    raise Terminated(signum)


def _stopped(exc: KeyboardInterrupt) -> tuple[int, str]:
    """The exit status of an interrupt and how to say it (``terminated (SIGHUP)``)."""
    if isinstance(exc, Terminated):
        return 128 + exc.signum, f"terminated ({signal.Signals(exc.signum).name})"
    return 130, "interrupted"


class Readers(NamedTuple):
    """What the command composes around the run (the readers of results.json, which the suite
    does not import): ``render(results, run_dir, sources) -> dict`` writes the report into the
    run folder and returns what it wrote; ``headline(results) -> str`` is the terminal headline,
    printed under the summary table."""

    render: Callable[[dict, Path, list], dict]
    headline: Callable[[dict], str]


def main(args, readers: Readers) -> int:
    """Run the suite for the parsed ``mfsoftmax run`` flags ``args``; the exit status."""
    from mfsoftmax.datasets import DatasetError  # lazy: numpy+scipy, off a bad config's exit

    t_start = time.perf_counter()
    try:
        cfg = resolve_config(args)
        run_dir = plan_run_dir(cfg, args.out)
    except ConfigError as exc:
        print(f"mfsoftmax run: {exc}", file=sys.stderr)
        return 2
    # a signal the caller ignores stays ignored (`nohup mfsoftmax run` survives its terminal)
    previous = {s: signal.signal(s, _on_signal) for s in SIGNALS
                if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        return _run(cfg, args, run_dir, t_start, DatasetError, readers)
    except KeyboardInterrupt as exc:  # before any stage ran: nothing to keep
        code, why = _stopped(exc)
        print(f"\nmfsoftmax run: {why} before the first stage; nothing written", file=sys.stderr)
        return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(cfg, args, run_dir: Path, t_start: float, DatasetError, readers: Readers) -> int:
    from .runner import Runner  # lazy: torch+implicit, once the config is valid

    runner = Runner(cfg, run_dir)
    try:
        runner.prepare()  # load and split before the run folder exists: a bad dataset leaves none
        run_dir = claim_run_dir(run_dir, cfg, explicit=bool(args.out))
    except (DatasetError, FileNotFoundError, ValueError) as exc:  # ConfigError is a ValueError
        print(f"mfsoftmax run: {exc}", file=sys.stderr)
        return 2
    runner.move_to(run_dir)
    try:
        return _stages(runner, cfg, args, t_start, readers)
    except KeyboardInterrupt as exc:  # a second signal while closing the run
        code, why = _stopped(exc)
        print(f"\nmfsoftmax run: {why} while closing the run; {run_dir / 'results.json'} is as "
              "last written", file=sys.stderr)
        return code
    finally:
        release_run_dir(run_dir)
        if not args.out:  # stopped before anything was written: no empty folder left behind
            with contextlib.suppress(OSError):
                run_dir.rmdir()


def _stages(runner, cfg, args, t_start: float, readers: Readers) -> int:
    """Run the stages, close the run, render the report and print the summary."""
    run_dir = runner.run_dir
    code = 0
    try:
        runner.run_all()
    except KeyboardInterrupt as exc:
        code, why = _stopped(exc)
        print(f"\nmfsoftmax run: {why}; the stages done so far are written, the running one is "
              "marked interrupted", file=sys.stderr)
    runner.finish(interrupted=bool(code))  # a signal between stages interrupts the run too
    path = runner.save()
    if args.out is None or Path(args.out).resolve().parent == Path(cfg["run"]["out"]).resolve():
        warn = update_latest(run_dir, Path(cfg["run"]["out"]))
        if warn:
            print(f"mfsoftmax run: {warn}", file=sys.stderr)
    report = None
    if path is not None and cfg["run"].get("report", True) and not code:
        report, code = _render(runner, path, readers.render)
    elif path is not None and code:
        runner.say(f"report not rendered (run stopped); render it with: mfsoftmax report {run_dir}")
    print(runner.summary_table())
    print(readers.headline(runner.results))
    print(f"\ntotal time: {time.perf_counter() - t_start:.1f} s")
    if path is None:
        print(f"mfsoftmax run: could not write {run_dir / 'results.json'}: {runner.write_error}; "
              + ("the last completed stage's file is kept there" if runner.saved_once else
                 "nothing could be saved"), file=sys.stderr)
        code = code or 1
    else:
        print(f"results: {path}")
    if report is not None:
        print(f"report:  {report['html']}")
    if runner.contract_problems:
        print(f"mfsoftmax run: results.json breaks the results contract in "
              f"{len(runner.contract_problems)} place(s) (first: {runner.contract_problems[0]}); "
              "this is a bug, please report it", file=sys.stderr)
        code = code or 1
    failed = [k for k, v in runner.results["stages"].items()
              if v["status"] not in ("ok", "skipped")]
    if failed and not code:
        print(f"mfsoftmax run: stages failed: {', '.join(failed)}", file=sys.stderr)
        code = 1
    return code


def _render(runner, path: Path, render) -> tuple[dict | None, int]:
    """Render the report into the run folder from the stored results with ``render``
    (:class:`Readers`), as `mfsoftmax report` would; returns what it wrote and the exit status
    (1: it failed; 130/143/129: a signal stopped it, the results being complete: says so, and
    how to render them)."""
    run_dir = runner.run_dir
    runner.say(f"rendering the report into {run_dir} ...")
    try:
        return render(json.loads(path.read_text()), run_dir, [str(path)]), 0
    except KeyboardInterrupt as exc:
        code, why = _stopped(exc)
        print(f"\nmfsoftmax run: {why} while rendering the report; the results are complete "
              f"({path}); render the report with: mfsoftmax report {run_dir}", file=sys.stderr)
        return None, code
    except Exception as exc:  # the report must never lose the results
        print(f"mfsoftmax run: report failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None, 1


__all__ = ["Readers", "add_arguments", "main", "resolve_config", "merge"]
