"""The spawned form of data-parallel training (``workers > 1``): :func:`fit` starts the ranks
of ``ddp`` from ``SoftmaxDNN.fit`` and watches them.

Launch
------
- ``SoftmaxDNN(workers=W).fit(train, valid)`` spawns W ranks (``torch.multiprocessing``, the
  spawn start method) joined by a gloo process group on 127.0.0.1 (NCCL with ``device="cuda"``,
  rank r on GPU r) whose rendezvous store the parent holds on a free port. Rank 0 sends the
  trained weights back; the fitted model in the parent is an ordinary single-process model.
  A ``callback`` runs in the parent: after each epoch rank 0 sends its weights, the parent's
  model takes them and calls ``callback(epoch, model)``, and its answer (stop or not) goes
  back to every rank.

Failures
--------
The process group has a timeout (``ddp_timeout`` seconds): a rank that hangs makes the others'
next collective fail after at most that long (spawned ranks first wait for each other to start,
up to ``START_S``, so the timeout bounds training, not interpreter start-up). In the spawned
form the parent watches the ranks: when one fails (a Python exception, a crash, a kill, an
exit) it waits ``GRACE_S`` for the others to report, ends the rest, and raises one RuntimeError
naming each rank's fate (the cause first, then the ranks that lost their peer, then the ones
still running: the hung) and the first traceback; no rank outlives the parent (a watchdog
thread and the parent-death signal; checked: ranks gone 4 s after ``kill -9`` of the parent).
Under torchrun, torchrun's agent does the same (the job fails, the other ranks are killed).
"""

from __future__ import annotations

import datetime
import multiprocessing.connection as mpc
import os
import pickle
import re
import signal
import threading
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as tmp

from ..params import TrainingDiverged
from . import train as training
from .ddp import backend_for, exit_quietly, run_rank

GRACE_S = 3.0  # after a rank fails: how long the parent waits for the others to report
START_S = 600.0  # spawned ranks: how long a rank waits for the others to start (imports)
_PEER_ERRORS = ("Connection closed", "Connection reset", "imed out", "Broken pipe", "NCCL")


def _state_np(model) -> dict:
    return {k: v.detach().cpu().numpy() for k, v in model.net.state_dict().items()}


def _watch_parent() -> None:
    """End this rank when its parent dies (no orphans)."""
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _spawned(rank: int, world: int, port: int, params: dict, train, valid, conn, want_callback: bool):
    """Entry point of a spawned rank (``fit``)."""
    from .model import SoftmaxDNN  # lazy: the model picks this engine (``engines``)

    _watch_parent()
    if rank != 0:
        conn.close()  # only rank 0 talks to the parent
    start = datetime.timedelta(seconds=max(START_S, params["ddp_timeout"]))
    store = dist.TCPStore("127.0.0.1", port, world, is_master=False, timeout=start)
    # wait until every rank is up (interpreter start-up and imports can take long on a loaded
    # machine) so that ``ddp_timeout`` bounds the training waits, not the start-up skew; a rank
    # that dies meanwhile is seen by the parent, which ends the others
    store.set(f"ready/{rank}", "1")
    store.wait([f"ready/{r}" for r in range(world)], start)
    model = SoftmaxDNN(**params)

    def callback(epoch, m):
        conn.send(("epoch", epoch, _state_np(m), m.history, m.eval_seconds))
        return bool(conn.recv())

    info = run_rank(model, train, valid, rank, world, callback if want_callback else None, store)
    if rank == 0:
        conn.send(("result", {"state": _state_np(model), "history": model.history,
                              "eval_seconds": model.eval_seconds, "fit_seconds": model.fit_seconds,
                              "train_info": info}))
        conn.close()
    exit_quietly(0)



# ---------------------------------------------------------------------------------- the parent
def _load_state(model, state: dict) -> None:
    dev = model._torch_device()
    model.net.load_state_dict({k: torch.as_tensor(v, device=dev) for k, v in state.items()})
    model.net.eval()
    model._refresh_cache()


def _rank_error(procs, index: int) -> tuple[str, str | None]:
    """What happened to rank ``index`` (one line) and its traceback when it raised."""
    p = procs.processes[index]
    path = procs.error_files[index]
    if path and os.path.exists(path) and os.path.getsize(path):
        with open(path, "rb") as fh:
            tb = pickle.load(fh)
        return f"rank {index} raised {_exception_line(tb)}", tb
    if p.exitcode is not None and p.exitcode < 0:
        return f"rank {index} was killed by {signal.Signals(-p.exitcode).name}", None
    return f"rank {index} exited with code {p.exitcode}", None


def _exception_line(tb: str, width: int = 400) -> str:
    """The exception line of a formatted traceback (after its last frame), shortened."""
    lines = tb.rstrip().splitlines()
    last_frame = max((i for i, ln in enumerate(lines) if ln.startswith("  File ")), default=-1)
    line = next((ln for ln in lines[last_frame + 1:] if ln and not ln[0].isspace()), lines[-1] if lines else "")
    return line if len(line) <= width else line[:width] + " ..."


def _raise_diverged(model, lines: list) -> None:
    """Raise the ranks' :class:`TrainingDiverged` here when that is why every failed rank ended
    (the ranks share one all-reduced loss, so they diverge at the same epoch)."""
    found = [re.search(r"training diverged \((\S+) loss\) at epoch (\d+)", ln) for ln in lines]
    if found and all(found):
        loss, epoch = found[0].group(1), int(found[0].group(2))
        raise TrainingDiverged(type(model).__name__, epoch, float(loss),
                               training.step_sizes(model)) from None


def fit(model, train, valid=None, callback=None) -> None:
    """The trainer of ``workers > 1`` (``engines.trainer``): train the built ``model`` with
    ``model.workers`` spawned ranks; rank 0's weights, history and timings end up in ``model``.
    Raises RuntimeError when any rank fails."""
    backend = backend_for(model.device)
    _check_launch(model, backend)
    model._trained_mask = train.item_popularity() > 0
    t_start = time.perf_counter()
    store = dist.TCPStore("127.0.0.1", 0, None, True, timeout=datetime.timedelta(seconds=model.ddp_timeout),
                          wait_for_workers=False)
    parent_conn, child_conn = tmp.get_context("spawn").Pipe()
    # rank 0 draws the bar; the ranks share this machine's ``threads``: W ranks x threads / W
    # torch threads, so W workers get the cores one process would (not W times as many)
    params = {**model.get_params(), "progress": model.progress,
              "threads": max(1, int(model.threads) // model.workers)}
    procs = tmp.start_processes(_spawned, args=(model.workers, store.port, params, train, valid,
                                                child_conn, callback is not None),
                                nprocs=model.workers, join=False, start_method="spawn")
    child_conn.close()
    got = {}

    def handle(msg) -> None:
        if msg[0] == "epoch":
            _, epoch, state, history, eval_s = msg
            _load_state(model, state)
            model.history, model.eval_seconds = history, eval_s
            parent_conn.send(bool(callback(epoch, model)))
        else:
            got["result"] = msg[1]

    try:
        failed, running = _watch(procs, parent_conn, handle)
    finally:
        _end(procs)
        parent_conn.close()
    if failed or "result" not in got:
        _raise_failure(model, backend, procs, failed, running)
    _clean_error_files(procs)
    _take_result(model, got["result"], t_start)


def _check_launch(model, backend: str) -> None:
    """Refuse what the ranks could not run: ``sparse`` sync off gloo, fewer GPUs than ranks."""
    W = model.workers
    if model.table_sync == "sparse" and backend != "gloo":
        raise ValueError(f"{model.name}: table_sync='sparse' needs gloo (no sparse all-reduce on {backend})")
    if model.device == "cuda" and torch.cuda.device_count() < W:
        raise RuntimeError(f"{model.name}: workers={W} on CUDA needs {W} GPUs, torch sees "
                           f"{torch.cuda.device_count()}")


def _watch(procs, parent_conn, handle) -> tuple[list[int], list[int]]:
    """Serve rank 0's messages (``handle``) until every rank ended or one failed; returns the
    failed ranks and, after a failure, those still running (hung: ended by the caller)."""
    failed, running = [], []
    alive = {p.sentinel: i for i, p in enumerate(procs.processes)}
    conn_open = True
    while alive:
        for s in mpc.wait(list(alive) + ([parent_conn] if conn_open else []), timeout=1.0):
            if s is parent_conn:
                conn_open = _drain(parent_conn, handle)
                continue
            i = alive.pop(s)
            procs.processes[i].join()
            if procs.processes[i].exitcode != 0:
                failed.append(i)
        if failed:  # give the others a moment to report their own failure, then end them
            deadline = time.perf_counter() + GRACE_S
            while alive and time.perf_counter() < deadline:
                for s in mpc.wait(list(alive), timeout=max(0.0, deadline - time.perf_counter())):
                    i = alive.pop(s)
                    procs.processes[i].join()
                    if procs.processes[i].exitcode != 0:
                        failed.append(i)
            running = sorted(alive.values())  # still running: ended below (hung ranks)
            break
    if not failed and conn_open:
        _drain(parent_conn, handle)
    return failed, running


def _raise_failure(model, backend: str, procs, failed: list[int], running: list[int]) -> None:
    """Raise one error naming each failed rank's fate (the cause first) and the first traceback;
    the ranks' :class:`TrainingDiverged` as such."""
    parts, tb = [], None
    errors = [_rank_error(procs, i) for i in failed]
    # the cause first: a rank that failed by itself before one that lost its peers
    errors.sort(key=lambda e: any(w in e[0] for w in _PEER_ERRORS))
    for line, trace in errors:
        parts.append(line)
        tb = tb or trace
    if not failed:
        parts.append("rank 0 returned no result")
    if running:
        parts.append(f"still running (hung?) and stopped: rank {', '.join(map(str, running))}")
    _clean_error_files(procs)
    _raise_diverged(model, [line for line, _ in errors])
    msg = (f"{model.name}: data-parallel training failed ({model.workers} workers, {backend}): "
           + "; ".join(parts) + ".")
    if tb:
        msg += "\n\nFirst traceback:\n" + tb
    raise RuntimeError(msg)


def _take_result(model, result: dict, t_start: float) -> None:
    """Rank 0's weights, history, timings and ``train_info`` into ``model``."""
    _load_state(model, result["state"])
    model.history, model.eval_seconds = result["history"], result["eval_seconds"]
    model.fit_seconds = result["fit_seconds"]
    model._logits_buf = None
    info = dict(result["train_info"])
    info["launcher"] = "spawn"
    info["launch_seconds"] = round(time.perf_counter() - t_start - model.fit_seconds, 3)
    model.train_info = info


def _drain(conn, handle) -> bool:
    """Handle every message waiting on ``conn``; False once rank 0 closed it."""
    try:
        while conn.poll(0):
            handle(conn.recv())
    except EOFError:
        return False
    return True


def _end(procs) -> None:
    """Terminate (then kill) every rank still running and reap it."""
    for p in procs.processes:
        if p.is_alive():
            p.terminate()
    for p in procs.processes:
        p.join(5)
        if p.is_alive():
            p.kill()
            p.join()


def _clean_error_files(procs) -> None:
    for path in procs.error_files:
        if path and os.path.exists(path):
            os.unlink(path)
