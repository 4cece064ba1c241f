"""The suite's runner: the one stage registry (``bench/stages``), error handling and writing.

:class:`Runner` loads the data and the split into a :class:`~.context.RunContext`, runs each
enabled stage module, merges the :class:`~.context.Section` it returns into ``results``
(RESULTS contract, ``docs/results.md``) and rewrites results.json atomically after every stage.
A failing stage is recorded as failed without touching what the others measured.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from mfsoftmax import runtime  # by module: tests replace its writers (a full disk)
from mfsoftmax.datasets import DatasetError, make_split
from mfsoftmax.results.schema import SCHEMA_VERSION, validate
from mfsoftmax.runtime import sample_calibration, to_jsonable

from . import stages
from .config import QUICK_CAPS, STAGES
from .context import MissingInput, RunContext, Section, StageFailed, build_model, deep_merge
from .data import load_dataset
from .measure import RssMonitor, sample_precision_peaks
from .progress import Log

__all__ = ["Runner", "StageOverBudget", "build_model", "stage_budget"]


class StageOverBudget(BaseException):
    """Raised in the main thread when a stage runs past its budget (``[budgets]``). A
    BaseException, so a stage's own ``except Exception`` (quality goes on to the next model)
    does not swallow it: the stage stops there and is recorded as skipped with the reason."""


def stage_budget(cfg: dict, name: str) -> float | None:
    """The configured budget of stage ``name`` in seconds (``budgets.<name>_s``), else None."""
    val = (cfg.get("budgets") or {}).get(f"{name}_s")
    return None if val is None else float(val)


def _on_alarm(signum, frame):
    """Stop the stage, unless the main thread is inside an import: a stop there leaves a half
    initialised module in ``sys.modules`` (torch's lazily imported parts), which breaks every
    later stage that imports it; the timer then fires again 50 ms later."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            return
        frame = frame.f_back
    raise StageOverBudget()


class Runner:
    """Runs the configured stages and accumulates ``results``."""

    def __init__(self, cfg: dict, run_dir: Path, clock=time.perf_counter):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.clock = clock  # the budgets' clock (a fake one in tests)
        self.t_start = clock()
        self.t_wall = time.perf_counter()
        self.seed = int(cfg["run"]["seed"])
        self.threads = int(cfg["run"]["threads"])
        progress = cfg["run"].get("progress")
        self.progress = sys.stderr.isatty() if progress is None else bool(progress)
        self.log = Log(self.progress)
        threads = runtime.pin_threads(self.threads)
        info = runtime.run_info(self.seed, cfg, threads)
        self.results = {
            "schema_version": SCHEMA_VERSION,
            "run": {"id": self.run_dir.name, **info, "finished_at": None, "status": "running"},
            "dataset": {},
            "models": {},
            "sweeps": {},
            "stages": {},
        }
        self.ctx: RunContext | None = None
        self.write_error: str | None = None
        self.saved_once = False
        self.contract_problems: list = []

    def say(self, msg: str) -> None:
        self.log.say(msg)

    def move_to(self, run_dir: Path) -> None:
        """Write into ``run_dir`` (the folder claimed, which may differ from the planned one)."""
        self.run_dir = Path(run_dir)
        self.results["run"]["id"] = self.run_dir.name

    # ------------------------------------------------------------------ setup
    def prepare(self) -> None:
        """Load the dataset and make the main split (the run's context)."""
        ds = self.cfg["dataset"]
        t0 = time.perf_counter()
        data, full = load_dataset(ds, self.seed)  # the folding probes load through it too
        split = make_split(data, ds["protocol"], seed=self.seed, **ds["split"])
        for label, part in (("test", split.test), ("validation", split.valid)):
            if len(part) == 0:
                raise DatasetError(
                    f"{data.name}: the {ds['protocol']} split has 0 {label} users "
                    f"({data.n_users} users, {data.n_interactions} interactions); "
                    "nothing to evaluate: use more data or change dataset.split")
        self.ctx = RunContext(self.cfg, data, split, self.log, self.results)
        ks = [int(k) for k in self.cfg["run"]["k"]]
        self.results["dataset"] = {
            "name": data.name, "n_users": data.n_users, "n_items": data.n_items,
            "n_interactions": data.n_interactions, "density": data.density,
            "protocol": ds["protocol"], "k": ks, "split": split.describe(),
            "stats": data.stats(), "load_s": time.perf_counter() - t0,
        }
        if full != (data.n_users, data.n_items, data.n_interactions):
            self.results["dataset"]["capped_from"] = dict(zip(
                ("n_users", "n_items", "n_interactions"), full, strict=True))
            why = "--quick caps it" if self.cfg["run"].get("quick") else "capped"
            caps = ", ".join(f"dataset.{k} = {ds.get(k)}" for k in QUICK_CAPS)
            self.say(f"dataset {data.name}: {why} ({caps}; the most popular items, then a random "
                     f"sample of users): {full[0]} x {full[1]}, {full[2]} interactions -> "
                     f"{data.n_users} x {data.n_items}, {data.n_interactions} (a cap is lifted "
                     "by --set dataset.<cap>=null)")
        self.say(f"dataset {data.name}: {data.n_users} users x {data.n_items} items, "
                 f"{data.n_interactions} interactions; protocol {ds['protocol']}")

    @property
    def data(self):
        return self.ctx.data

    @property
    def split(self):
        return self.ctx.split

    # ----------------------------------------------------------------- stages
    def run_all(self) -> None:
        enabled = [n for n in stages.REGISTRY if self.cfg["stages"].get(n, True)]
        if not self.cfg["stages"].get("training", True):
            self.say("note: training cost is measured inside the quality stage")
        self.save()  # the dataset section is on disk before the first stage
        for name in self.log.steps(enabled, "stages", label=str):
            self.run_stage(name, stages.load(name).run)

    def skip_reason(self, name: str) -> str | None:
        """Why stage ``name`` cannot run on this dataset (its module's ``NEEDS``), else None."""
        needs = getattr(stages.load(name), "NEEDS", None)
        data = self.ctx.data
        if needs == "user_features" and not data.user_features:
            return f"{data.name} has no user features (the ablation removes them)"
        if needs == "item_features" and not data.item_features:
            return f"{data.name} has no item features (a new item is embedded from them)"
        if needs == "features" and not (data.user_features or data.item_features):
            return f"{data.name} has no user or item features (the ablation removes them)"
        return None

    def merge(self, section: Section) -> None:
        """Merge a stage's section into ``results``."""
        for name, entry in section.models.items():
            deep_merge(self.results["models"].setdefault(name, {}), entry)
        self.results.update(section.top)
        self.results["sweeps"].update(section.sweeps)

    def _keep_partial(self) -> str:
        """Merge what a stopped stage registered as measured so far (``ctx.partial``); the
        reason's tail saying what was kept."""
        part = getattr(self.ctx, "partial", None)
        if part is None or not (part.models or part.top or part.sweeps):
            return "what it measured is not kept"
        self.merge(part)
        kept = [*part.models, *part.top, *(f"sweeps.{k}" for k in part.sweeps)]
        return f"kept what it finished before the stop: {', '.join(kept)}"

    def _missing_input(self, exc: MissingInput) -> dict:
        """A stage without the fitted models it works on: skipped, with the reason, when the
        quality stage that fits them was skipped (stopped by its budget, or none left); failed
        otherwise (quality failed, was switched off, or a model it needs is not configured)."""
        quality = self.results["stages"].get("quality") or {}
        if quality.get("status") != "skipped":
            return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        return {"status": "skipped", "reason": f"{exc}: the quality stage, which fits the models, "
                                               f"was skipped ({quality.get('reason')})"}

    def budget_for(self, name: str) -> tuple[float | None, str]:
        """Seconds stage ``name`` may take (its ``budgets.<name>_s``, capped by what is left of
        ``budgets.total_s``), and which budget that is; None when unlimited."""
        own = stage_budget(self.cfg, name)
        total = stage_budget(self.cfg, "total")
        if total is None:
            return own, f"budgets.{name}_s"
        left = max(0.0, total - (self.clock() - self.t_start))
        if own is None or left < own:
            return left, f"what is left of budgets.total_s = {total:g}s"
        return own, f"budgets.{name}_s"

    def run_stage(self, name: str, fn) -> None:
        """Run one stage, merge its section, record its status, wall time, budget and peak RSS,
        and write results.json (atomically) after it. A stage with no budget left is skipped; one
        that runs past its budget is stopped (SIGALRM in the main thread) and recorded as skipped
        with the reason and how long it ran; what it registered as finished (``ctx.partial``, e.g.
        the quality stage's models done before the stop) is kept, the rest is lost; the models it
        fitted are kept for the later stages."""
        t0 = time.perf_counter()
        reason = self.skip_reason(name)
        budget, which = self.budget_for(name)
        if not reason and budget is not None and budget <= 0:
            reason = f"no time budget ({which} is 0s)"
        if reason:
            self.results["stages"][name] = {"status": "skipped", "error": None, "wall_s": 0.0,
                                            "reason": reason,
                                            **({"budget_s": budget} if budget is not None else {})}
            self.say(f"stage {name}: skipped: {reason}")
            self.save()
            return
        self.say(f"stage {name} ..." + (f" (budget {budget:.0f}s)" if budget is not None else ""))
        entry = {"status": "running", "error": None, "wall_s": None}
        if budget is not None:
            entry["budget_s"] = budget
        self.results["stages"][name] = entry
        armed = budget is not None and threading.current_thread() is threading.main_thread()
        monitor = RssMonitor(interval=0.05)
        monitor.__enter__()
        previous = None
        try:
            if armed:
                previous = signal.signal(signal.SIGALRM, _on_alarm)
                signal.setitimer(signal.ITIMER_REAL, budget)
            try:
                if hasattr(self.ctx, "partial"):
                    self.ctx.partial = None
                self.merge(fn(self.ctx))
            finally:
                if armed:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    signal.signal(signal.SIGALRM, previous)
            entry["status"] = "ok"
        except StageOverBudget:
            entry["status"] = "skipped"
            entry["reason"] = (f"stopped: over its time budget of {budget:.0f}s ({which}) after "
                               f"{time.perf_counter() - t0:.0f}s; " + self._keep_partial())
            self.say(f"stage {name}: {entry['reason']}")
        except KeyboardInterrupt:
            entry["status"] = "interrupted"
            entry["error"] = "KeyboardInterrupt"
            entry["reason"] = self._keep_partial()  # the models finished before the interrupt
            raise
        except MissingInput as exc:
            entry.update(self._missing_input(exc))
            self.say(f"stage {name}: skipped: {entry['reason']}" if "reason" in entry
                     else f"stage {name} FAILED: {entry['error']}")
        except Exception as exc:  # recorded, the run goes on
            if isinstance(exc, StageFailed):  # keep what the stage did measure
                self.merge(exc.section)
            entry["status"] = "failed"
            entry["error"] = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, StageFailed):
                self.log.say(traceback.format_exc().rstrip())
            self.say(f"stage {name} FAILED: {entry['error']}")
        finally:
            monitor.__exit__(None, None, None)
            entry["wall_s"] = time.perf_counter() - t0
            entry["peak_rss_mb"] = round(monitor.peak_mb, 1)  # the process's, during the stage
            entry["loadavg"] = _loadavg()  # 1/5/15-min load at its end (a shared machine)
            self.say(f"stage {name}: {entry['status']} in {entry['wall_s']:.1f}s, peak RSS "
                     f"{monitor.peak_mb / 1024:.2f} GiB")
            if entry["status"] != "interrupted":
                # a calibration sample between stages: compare normalises by the best one
                sample_calibration(self.results["run"]["calibration"], name)
                sample_precision_peaks(self.results["run"]["calibration"])  # fp32 and bf16 peaks
                self.save()

    # ------------------------------------------------------------------ output
    def finish(self, interrupted: bool = False) -> None:
        """Close the run: timings, stages not run, status (``interrupted`` when a stage was cut
        short or ``interrupted`` is passed: a signal between two stages), the contract check."""
        self.results["run"]["finished_at"] = runtime.now_iso()
        self.results["run"]["peak_rss_mb"] = _max_rss_mb()  # the whole run's high-water mark
        self.results["run"]["wall_s"] = time.perf_counter() - self.t_wall
        self.results["run"]["loadavg_at_end"] = _loadavg()
        for entry in self.results["stages"].values():
            if entry["status"] in ("running", "interrupted"):
                entry["status"] = "interrupted"
                interrupted = True
        for name in STAGES:
            if name == "training":
                continue
            if name not in self.results["stages"] and self.cfg["stages"].get(name, True):
                self.results["stages"][name] = {"status": "not run", "error": None, "wall_s": 0.0}
        self.results["run"]["status"] = "interrupted" if interrupted else "complete"
        # the one validator (src/mfsoftmax/results/schema.py, docs/results.md) on what this run is about to write
        self.contract_problems = validate(to_jsonable(self.results), "results.json")
        for problem in self.contract_problems[:10]:
            self.say(f"WARNING: results contract: {problem}")

    def write_results(self) -> Path:
        """Write results.json atomically (the previous file stays whole if this fails)."""
        path = self.run_dir / "results.json"
        runtime.atomic_write_json(path, self.results)
        return path

    def save(self) -> Path | None:
        """:meth:`write_results`, or None with ``write_error`` set when the disk refuses it (a
        full disk, a removed folder): the run goes on and the last good file is kept."""
        try:
            path = self.write_results()
        except OSError as exc:
            first = self.write_error is None
            self.write_error = f"{exc.strerror or exc}"
            if first:
                self.say(f"WARNING: could not write results.json: {self.write_error} "
                         "(the run goes on; the last file written is kept)")
            return None
        self.write_error = None
        self.saved_once = True
        return path

    def summary_table(self) -> str:
        head = f"{'model':<32} {'recall@20':>9} {'ndcg@20':>8} {'train_s':>8} {'p50_us':>8} " \
               f"{'leak@10':>8} {'cold0_r@20':>10}"
        lines = [head, "-" * len(head)]
        for name, m in self.results["models"].items():
            q = m.get("quality", {})
            users = m.get("cold_start", {}).get("users", [])
            cold0 = next((r.get("recall@20") for r in users if r["n_known"] == 0), None)
            lines.append(
                f"{name:<32} {_fmt(q.get('recall@20'), 4):>9} {_fmt(q.get('ndcg@20'), 4):>8} "
                f"{_fmt(m.get('training', {}).get('wall_s'), 2):>8} "
                f"{_fmt(m.get('serving', {}).get('p50_us'), 0):>8} "
                f"{_fmt(m.get('folding', {}).get('leakage@10'), 3):>8} {_fmt(cold0, 4):>10}")
        st = ", ".join(f"{k}={v['status']}" for k, v in self.results["stages"].items())
        lines.append(f"\nstages: {st}")
        return "\n".join(lines)


def _loadavg() -> list | None:
    """The machine's 1, 5 and 15-minute load averages, where the OS has them."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _max_rss_mb() -> float:
    """This process's peak RSS so far (ru_maxrss, KiB on Linux), in MiB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _fmt(v, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"
