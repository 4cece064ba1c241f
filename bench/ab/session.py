"""Running the kernels: one worker process per commit at a time, rounds interleaved.

Each round measures every kernel still running once on each side, base and head back to back,
the order alternating from round to round (so neither side always runs on a cache the other
warmed). Both workers are pinned to the same CPU (only one runs at a time), and every
``rotate`` rounds the pair is replaced by fresh processes: a bias of one process (measured:
identical code read x1.16 between two long-lived workers for 40 rounds under load) then varies
between rounds, where the interval sees it, instead of staying put. A kernel stops after ``min_rounds`` once its interval is settled (wholly below or above
the threshold, :func:`~mfsoftmax.bench.ab.stats.settled`), or at ``max_rounds``, or when the
gate's time budget is spent: noisy kernels get more rounds, quiet ones stop early.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mfsoftmax.compare.load import CompareError

from . import stats
from .worker import SLOWDOWN_ENV, THREAD_VARS
from .worktree import CommitEnv

WORKER = Path(__file__).with_name("worker.py")
KERNELS = ("train.wals_iteration", "train.dnn_sampled_epoch", "train.dnn_inbatch_epoch",
           "serve.wals_one", "serve.dnn_one", "harness.evaluate", "data.load_file")


class Worker:
    """One commit's kernel worker (bench/ab/worker.py run by that commit's interpreter)."""

    def __init__(self, env: CommitEnv, slowdown: str | None = None, cpu: int | None = None):
        self.env = env
        drop = (SLOWDOWN_ENV, "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE")
        penv = {k: v for k, v in os.environ.items() if k not in drop}
        penv.update({k: "1" for k in THREAD_VARS}, PYTHONHASHSEED="0")
        if slowdown:
            penv[SLOWDOWN_ENV] = slowdown
        self.err = tempfile.TemporaryFile()  # the worker's stderr, for the message if it dies
        self.proc = subprocess.Popen([env.python, "-s", str(WORKER)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.err,
                                     text=True, env=penv, cwd=str(env.src))
        if cpu is not None:
            os.sched_setaffinity(self.proc.pid, {cpu})

    def ask(self, msg: dict) -> dict:
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except OSError:
            line = ""
        if not line:
            raise self._died(msg["cmd"])
        return json.loads(line)

    def _died(self, cmd: str) -> CompareError:
        """The error of a worker that ended: its status and last stderr line."""
        status = self.proc.wait()
        self.err.seek(0)
        last = (self.err.read().decode(errors="replace").strip().splitlines() or [""])[-1]
        return CompareError(f"ab: the worker of {self.env.label} ({self.env.python}) ended "
                            f"with status {status} during {cmd}: {last[:200]}")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"cmd": "quit"}\n')
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.err.close()


@dataclass
class Plan:
    """How many rounds: at least ``min_rounds``, at most ``max_rounds``, within ``budget_s``."""

    kernels: tuple = KERNELS
    min_rounds: int = 8
    max_rounds: int = 40
    budget_s: float = 420.0
    max_slowdown: float = stats.MAX_SLOWDOWN
    rotate: int = 4  # rounds per pair of worker processes (0: one pair for the whole gate)


@dataclass
class Measured:
    """Everything the gate measured: samples per kernel and side, and each worker's info."""

    samples: dict = field(default_factory=dict)  # kernel -> {"base": [...], "head": [...]}
    info: dict = field(default_factory=dict)  # "base"/"head" -> the worker's setup answer
    wall_s: float = 0.0
    stopped: dict = field(default_factory=dict)  # kernel -> why it stopped


def _cpu() -> int | None:
    """The CPU both workers are pinned to (the last one this process may use), or None."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return max(os.sched_getaffinity(0))


def _start(base: CommitEnv, head: CommitEnv, kernels, slowdown, out: Measured, log) -> dict:
    """A fresh pair of workers, set up for ``kernels`` (their answers kept in ``out.info``)."""
    cpu = _cpu()
    workers = {"base": Worker(base, cpu=cpu), "head": Worker(head, slowdown, cpu=cpu)}
    try:
        for side, w in workers.items():
            answer = w.ask({"cmd": "setup", "kernels": list(kernels)})
            if side in out.info:  # a later pair: the first pair's answer stays the record
                out.info[side]["workers"] += 1
            else:
                out.info[side] = {**answer, "cpu": cpu, "workers": 1}
                log(f"ab: {side} {w.env.label} ready ({w.env.python})")
    except BaseException:  # one side died at setup: the other is not left waiting on its stdin
        for w in workers.values():
            w.close()
        raise
    return workers


def measure(base: CommitEnv, head: CommitEnv, plan: Plan, slowdown: str | None = None,
            log=print) -> Measured:
    """Run ``plan.kernels`` on both commits, interleaved round after round; both workers are
    pinned to one CPU, and replaced by a fresh pair every ``plan.rotate`` rounds (a process's
    own bias, e.g. its memory layout, then varies between rounds instead of staying put)."""
    t0 = time.perf_counter()
    out = Measured()
    workers = _start(base, head, plan.kernels, slowdown, out, log)
    try:
        running = [k for k in plan.kernels
                   if not any(k in out.info[s]["missing"] for s in workers)]
        out.samples = {k: {"base": [], "head": [], "base_wall": [], "head_wall": []}
                       for k in running}
        n = 0
        while running:
            n += 1
            if plan.rotate and n > 1 and (n - 1) % plan.rotate == 0:
                for w in workers.values():
                    w.close()
                workers = _start(base, head, running, slowdown, out, log)
            order = ("base", "head") if n % 2 else ("head", "base")
            for k in running:
                for side in order:
                    got = workers[side].ask({"cmd": "run", "kernel": k})
                    out.samples[k][side].append(got["cpu_s"])
                    out.samples[k][side + "_wall"].append(got["wall_s"])
            over = time.perf_counter() - t0 > plan.budget_s
            running = [k for k in running if not _stop(k, n, plan, over, out)]
    finally:
        for w in workers.values():
            w.close()
    out.wall_s = time.perf_counter() - t0
    return out


def _stop(kernel: str, n: int, plan: Plan, over_budget: bool, out: Measured) -> bool:
    """Whether ``kernel`` is done after round ``n`` (recording why in ``out.stopped``)."""
    if n < plan.min_rounds:
        return False
    s = out.samples[kernel]
    if stats.settled(stats.estimate(s["base"], s["head"]), plan.max_slowdown):
        out.stopped[kernel] = "settled"
    elif n >= plan.max_rounds:
        out.stopped[kernel] = "round cap"
    elif over_budget:
        out.stopped[kernel] = "time budget"
    return kernel in out.stopped
