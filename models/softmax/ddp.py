"""Data-parallel training of the softmax DNN with torch.distributed (``SoftmaxDNN(workers=W)``).

Launch
------
- ``SoftmaxDNN(workers=W).fit(train, valid)`` spawns W ranks (``torch.multiprocessing``, the
  spawn start method) joined by a gloo process group on 127.0.0.1 (NCCL with ``device="cuda"``,
  rank r on GPU r) whose rendezvous store the parent holds on a free port. Rank 0 sends the
  trained weights back; the fitted model in the parent is an ordinary single-process model.
  A ``callback`` runs in the parent: after each epoch rank 0 sends its weights, the parent's
  model takes them and calls ``callback(epoch, model)``, and its answer (stop or not) goes
  back to every rank.
- The standard way, torchrun (``torch.distributed.run``), with the environment it sets
  (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT)::

    torchrun --nproc_per_node=2 -m mfsoftmax.models.softmax.ddp --dataset synthetic \\
        --protocol holdout --set loss=in-batch --out runs/ddp-model

  Every rank loads the dataset and split (same seed, same data), rank 0 saves the model
  (``--out``) and prints the metrics of ``--split`` as JSON.

Step
----
Global batch = ``batch_size`` examples; rank r computes the contiguous slice
``[r n / W, (r + 1) n / W)`` of each batch of n. Every rank draws the same example order,
negatives, hard-negative pool and history dropout (the same seeded streams, consumed for the
whole global batch), so a rank's loss is its share ``sum_i w_i l_i`` of the single-process
batch loss (``w_i = 1 / n``, or the example weights normalised over the global batch); in-batch
scores the rank's rows against the positives of the whole global batch; gravity counts the
shard's share. The gradients of the ranks are summed, not averaged: the summed gradient is the
single-process gradient, so the learning rates are unchanged (``lr``, ``table_lr``). A global
batch smaller than W (the epoch's last, when ``n_examples % batch_size < W``) is skipped.

- Dense parameters (towers, feature tables, and the item tables when they are dense: ``full``
  or gravity) go through ``DistributedDataParallel`` (bucketed all-reduce overlapped with the
  backward pass, a summing communication hook).
- The sparse item-id tables (history, V, bias: every other loss) are left out of DDP and
  synchronised after the backward pass (``table_sync``, below); every rank then applies the
  same lazy row-wise update (``softmax_optim``) to the same summed rows, so the tables stay
  identical without a broadcast. After each epoch the ranks compare a checksum of all
  parameters and rank 0 re-broadcasts them if they drifted (counted in ``train_info``).
- Rank 0 validates after each epoch and keeps the best weights; the ranks agree on stopping.

Table synchronisation (``table_sync``)
--------------------------------------
- ``gather`` (default): all-gather each rank's touched rows (coalesced ids + gradient rows,
  all tables packed into one id and one value buffer); every rank builds the summed sparse
  gradient. Traffic W x rows touched x d per step, independent of the table size; works on
  gloo and NCCL (dense collectives only).
- ``touched``: all-gather the touched ids, then a dense all-reduce of the union of touched rows.
- ``dense``: a dense all-reduce of the whole n x (d + 1) table gradient (a touch-count column
  keeps the lazy semantics). O(n d) per step whatever the batch touches.
- ``sparse``: gloo's sparse all-reduce (CPU only; NCCL has no sparse all-reduce).
- TorchRec (``EmbeddingBagCollection`` with fused row-wise Adagrad, sharded tables): not usable
  here: torchrec 1.9.2 installs without changing torch 2.13, but its kernel library (fbgemm_gpu
  1.9.0, and fbgemm-gpu-cpu 1.9.0) fails to load against torch 2.13 (undefined symbol
  ``torch::autograd::_wrap_outputs``); no build for this torch existed when measured.

Measured (2 gloo ranks, one thread each, on this suite's loaded 2-core CPU runner; two sparse
tables of d = 64; per rank and step 128 history bags of 12 zipf-drawn items and 128 positives +
200 shared negatives, i.e. ~880 touched rows at 1e3 items, ~1730 at 1e5; the synchronisation
alone, median ms per step, two runs, methods interleaved)::

    items   gather    touched    sparse (gloo)   dense
    1e3     4.0-4.0   3.4-3.8    7.3-8.0         3.4-4.0
    1e5     6.2-6.6   7.4-12.6   12.3-31.9       215-243

In training (sampled-uniform, B = 256, 5000 users, 2 epochs) the seconds of synchronisation per
epoch were, at 1e5 items, gather 5.7-6.1, touched 5.1-5.3, sparse 7.2-7.8, dense 68-71 (epochs of
18-27 s against 92 s with dense); at 1e3 items 0.9-2.6 s for every method (the machine's noise).
``gather`` is the fastest or level at both sizes, its cost does not grow with the table, and it
needs only dense collectives (NCCL has all-gather but no sparse all-reduce): the default.
Limits: every rank holds a full copy of every table and its optimizer state (the memory bound of
this design; past it, sharded tables: TorchRec); the touched rows of all ranks are gathered to
every rank (W x rows x d per step), so traffic grows with W, and each rank applies the update of
the union of rows (the table update is not divided among the ranks, only the forward and
backward passes are).

Equivalence (measured): 2 ranks follow the 1-rank trajectory up to float rounding, which grows
over the epochs (epoch losses within 1e-7 for 4 epochs on a 60-user set, within 1e-4 relative
after 10 epochs on 5000 users). Validation Recall@20 per epoch: within 0.0034 on the 5000-user
synthetic set (1500 items, full and sampled-uniform, 10 epochs); on an 800-user set with 200
validation users (a user is 0.005 of the metric) within 0.016 over 8 epochs (0 for in-batch,
0.012 full, 0.016 sampled-uniform). Stated tolerance: |delta Recall@20| <= 0.03 on small data
(tests/test_softmax_ddp.py), <= 0.005 on the 5000-user set.
With early stopping such a difference can move the stopping epoch (seen: one run stopped an
epoch earlier, 0.017 apart). Parameters whose gradient is zero in exact arithmetic (the item
tower's output bias under any softmax loss: a shift of every item's embedding does not change
a softmax) are moved by Adam on rounding noise, so raw embeddings can differ by a common shift
that leaves every score ranking unchanged.

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
``MFSOFTMAX_DDP_FAULT=RANK:KIND[:STEP]`` (KIND raise, exit or hang) injects a failure on one
rank at one step (a test hook).
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing.connection as mpc
import os
import pickle
import re
import signal
import sys
import threading
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as tmp
from torch.nn.parallel import DistributedDataParallel

from ..params import TrainingDiverged
from . import train as softmax_train
from .optim import LazyRowOptimizer
from .train import Shard, batch_loss, batch_weights

SYNCS = ("gather", "touched", "dense", "sparse")
FAULT_ENV = "MFSOFTMAX_DDP_FAULT"
GRACE_S = 3.0  # after a rank fails: how long the parent waits for the others to report
START_S = 600.0  # spawned ranks: how long a rank waits for the others to start (imports)
_PEER_ERRORS = ("Connection closed", "Connection reset", "imed out", "Broken pipe", "NCCL")


def backend_for(device: str) -> str:
    """``nccl`` for CUDA, ``gloo`` otherwise."""
    return "nccl" if device == "cuda" else "gloo"


# ---------------------------------------------------------------------------------- one rank
class _StepModule(torch.nn.Module):
    """The network as DDP sees it: ``forward(fn, *args)`` runs ``fn(*args)`` (the batch loss),
    so DDP's reducer wraps the whole step."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, fn, *args):
        return fn(*args)


def _sum_hook(pg, bucket):
    """DDP communication hook: the sum of the ranks' gradients (DDP's default averages)."""
    fut = pg.allreduce([bucket.buffer()]).get_future()
    return fut.then(lambda f: f.value()[0])


def _shard_loss(model, queries, b, b_t, shard, rng, sampling, w):
    q, pos = queries(b, b_t, shard)
    return batch_loss(model, q, pos, rng, sampling, w=w, shard=shard)


def _fault(rank: int):
    """(kind, step) of the failure injected on this rank by ``MFSOFTMAX_DDP_FAULT``, or None."""
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return None
    parts = spec.split(":")
    if int(parts[0]) != rank:
        return None
    kind = parts[1] if len(parts) > 1 else "raise"
    if kind not in ("raise", "exit", "hang"):
        raise ValueError(f"{FAULT_ENV}={spec!r}: kind must be raise, exit or hang")
    return kind, int(parts[2]) if len(parts) > 2 else 0


class _Rank:
    """This process's part in a data-parallel fit: what ``softmax_train._train`` calls with
    ``dist`` (``start``, ``epoch``, ``agree``). ``pg``: the process group (default: the
    default group, set at ``start``); every collective goes through it."""

    def __init__(self, rank: int, world: int, backend: str, table_sync: str, pg=None):
        if table_sync not in SYNCS:
            raise ValueError(f"table_sync={table_sync!r}: choose one of {', '.join(SYNCS)}")
        if table_sync == "sparse" and backend != "gloo":
            raise ValueError(f"table_sync='sparse' needs gloo (backend {backend} has no sparse all-reduce)")
        self.rank, self.world, self.backend, self.table_sync = rank, world, backend, table_sync
        self.pg = pg
        self.fault = _fault(rank)
        self.steps = 0
        self.sync_seconds: list[float] = []
        self.resyncs = 0
        self.skipped = 0

    # ---------------------------------------------------------------- setup
    def start(self, model, opts) -> None:
        lazy = [o for o in opts if isinstance(o, LazyRowOptimizer)]
        self.tables = list(lazy[0].params) if lazy else []
        ids = {id(p) for p in self.tables}
        ignore = [f"net.{n}" for n, p in model.net.named_parameters() if id(p) in ids]
        if self.pg is None:
            self.pg = dist.group.WORLD
        self.step_module = _StepModule(model.net)
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(self.step_module, ignore)
        self.ddp = DistributedDataParallel(self.step_module, process_group=self.pg)
        self.ddp.register_comm_hook(self.pg, _sum_hook)
        self.params = list(model.net.parameters())
        self.dev = self.params[0].device

    # ---------------------------------------------------------------- epoch
    def epoch(self, model, queries, n_ex: int, rng, opts, sampling, dev, ex_w) -> float:
        """One pass over the global batches, this rank computing its shard of each; returns
        the mean training loss over all ranks' examples."""
        B, W, r = model.batch_size, self.world, self.rank
        perm = rng.permutation(n_ex)
        perm_t = torch.as_tensor(perm, device=dev)
        tot, cnt, sync_s = 0.0, 0, 0.0
        for s in range(0, n_ex, B):
            b, b_t = perm[s:s + B], perm_t[s:s + B]
            n = len(b)
            if n < W:  # a shard would be empty: skip the batch on every rank
                self.skipped += n
                continue
            self._maybe_fail()
            lo, hi = r * n // W, (r + 1) * n // W
            shard = Shard(lo, hi, queries.item_t[b_t])
            w = batch_weights(ex_w, b_t)
            w = torch.full((hi - lo,), 1.0 / n, device=dev) if w is None else w[lo:hi]
            loss = self.ddp(_shard_loss, model, queries, b, b_t, shard, rng, sampling, w)
            for opt in opts:
                opt.zero_grad(set_to_none=True)
            loss.backward()  # DDP sums the dense gradients during the backward pass
            t0 = time.perf_counter()
            self._sync_tables()
            sync_s += time.perf_counter() - t0
            for opt in opts:
                opt.step()
            tot += float(loss.detach()) * n
            cnt += n
            self.steps += 1
        out = torch.tensor([tot, float(cnt)], dtype=torch.float64, device=dev)
        self._all_reduce(out)
        self.sync_seconds.append(sync_s)
        self._check_drift()
        tot_all, _ = out.tolist()
        return tot_all / max(cnt, 1)  # cnt: examples of the global batches (same on every rank)

    def agree(self, stop: bool) -> bool:
        """Rank 0's stop decision, on every rank."""
        t = torch.tensor([1.0 if stop else 0.0], device=self.dev)
        self.pg.broadcast(t, 0).wait()
        return bool(t.item())

    def _maybe_fail(self) -> None:
        if self.fault is None or self.fault[1] != self.steps:
            return
        kind = self.fault[0]
        if kind == "raise":
            raise RuntimeError(f"injected failure on rank {self.rank} at step {self.steps} ({FAULT_ENV})")
        if kind == "exit":
            os._exit(3)
        time.sleep(10 ** 6)  # hang: the other ranks' next collective times out

    def _check_drift(self) -> None:
        """Compare a checksum of all parameters across ranks; re-broadcast rank 0's on drift."""
        with torch.no_grad():
            s = torch.stack([torch.stack([p.double().sum(), p.double().square().sum()])
                             for p in self.params]).sum(0)
            got = self._all_gather(s)
            if all(torch.equal(g, got[0]) for g in got):
                return
            for p in self.params:
                self.pg.broadcast(p.data, 0).wait()
            self.resyncs += 1

    # ---------------------------------------------------------------- tables
    def _local_grads(self) -> list[torch.Tensor]:
        out = []
        for p in self.tables:
            g = p.grad
            if g is None:
                g = torch.sparse_coo_tensor(torch.empty(1, 0, dtype=torch.long, device=p.device),
                                            p.new_empty((0,) + tuple(p.shape[1:])), p.shape,
                                            check_invariants=False)
            out.append(g.coalesce())
        return out

    def _sync_tables(self) -> None:
        """Replace each sparse table's gradient by the sum over ranks (``table_sync``)."""
        if not self.tables:
            return
        grads = self._local_grads()
        if self.table_sync == "sparse":
            for g in grads:
                self._all_reduce(g)  # gloo: in place, coalesced
            new = grads
        elif self.table_sync == "dense":
            new = [self._dense(p, g) for p, g in zip(self.tables, grads, strict=True)]
        else:
            new = self._gathered(grads)
        for p, g in zip(self.tables, new, strict=True):
            p.grad = g

    def _sparse(self, p: torch.Tensor, idx: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
        return torch.sparse_coo_tensor(idx[None], vals, p.shape, check_invariants=False)

    def _dense(self, p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        idx, vals = g.indices()[0], g.values()
        D = p.new_zeros(p.shape[0], vals.shape[1] + 1)
        D.index_add_(0, idx, torch.cat([vals, vals.new_ones(len(idx), 1)], 1))
        self._all_reduce(D)
        rows = torch.nonzero(D[:, -1]).flatten()
        return self._sparse(p, rows, D[rows, :-1])

    def _all_reduce(self, t: torch.Tensor) -> None:
        self.pg.allreduce([t]).wait()

    def _all_gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        out = [torch.empty_like(t) for _ in range(self.world)]
        self.pg.allgather([out], [t]).wait()
        return out

    def _gathered(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """``gather`` and ``touched``: every rank's touched ids (and, for ``gather``, rows)."""
        widths = [g.values().shape[1] for g in grads]
        idx = [g.indices()[0] for g in grads]
        vals = [g.values() for g in grads]
        counts = torch.tensor([len(i) for i in idx], dtype=torch.long, device=self.dev)
        all_counts = torch.stack(self._all_gather(counts)).cpu()  # (W, tables)
        n_ids = int(all_counts.sum(1).max())
        ibuf = torch.full((n_ids,), -1, dtype=torch.long, device=self.dev)
        ibuf[:int(counts.sum())] = torch.cat(idx)
        all_ids = self._all_gather(ibuf)
        per_rank_ids = [torch.split(all_ids[w][:int(all_counts[w].sum())], all_counts[w].tolist())
                        for w in range(self.world)]
        if self.table_sync == "gather":
            sizes = all_counts * torch.tensor(widths)
            n_vals = int(sizes.sum(1).max())
            vbuf = vals[0].new_zeros(n_vals)
            flat = torch.cat([v.reshape(-1) for v in vals])
            vbuf[:len(flat)] = flat
            all_vals = self._all_gather(vbuf)
            out = []
            for t, (p, width) in enumerate(zip(self.tables, widths, strict=True)):
                ids_t, vals_t = [], []
                for w in range(self.world):
                    pieces = torch.split(all_vals[w][:int(sizes[w].sum())], sizes[w].tolist())
                    ids_t.append(per_rank_ids[w][t])
                    vals_t.append(pieces[t].view(-1, width))
                out.append(self._sparse(p, torch.cat(ids_t), torch.cat(vals_t)))
            return out  # the optimizer coalesces (sums the ranks' rows)
        # touched: the union of the ranks' rows, one dense all-reduce of those rows
        unions, bufs = [], []
        for t in range(len(self.tables)):
            union = torch.unique(torch.cat([per_rank_ids[w][t] for w in range(self.world)]))
            buf = vals[t].new_zeros(len(union), widths[t])
            buf[torch.searchsorted(union, idx[t])] = vals[t]
            unions.append(union)
            bufs.append(buf)
        flat = torch.cat([b.reshape(-1) for b in bufs])
        self._all_reduce(flat)
        pieces = torch.split(flat, [b.numel() for b in bufs])
        return [self._sparse(p, u, piece.view(-1, width)) for p, u, piece, width
                in zip(self.tables, unions, pieces, widths, strict=True)]

    def info(self) -> dict:
        return {"sync_seconds": [round(s, 6) for s in self.sync_seconds], "resyncs": self.resyncs,
                "skipped_examples": self.skipped}


# ---------------------------------------------------------------------------------- a rank's run
def run_rank(model, train, valid, rank: int, world: int, callback=None, store=None) -> dict:
    """Train ``model`` (a ``SoftmaxDNN``, not yet built) as rank ``rank`` of ``world``; the
    process group comes from ``store`` or the torchrun environment. Returns ``train_info``."""
    backend = backend_for(model.device)
    if model.device == "cuda":
        if torch.cuda.device_count() < 1:
            raise RuntimeError("device='cuda' requested but torch sees no CUDA device")
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
    timeout = datetime.timedelta(seconds=model.ddp_timeout)
    kw = {} if store is None else {"store": store, "rank": rank, "world_size": world}
    dist.init_process_group(backend, timeout=timeout, **kw)
    try:
        model._prepare(train)
        ctx = _Rank(rank, world, backend, model.table_sync)
        softmax_train.train(model, train, valid, callback if rank == 0 else None, dist=ctx)
        info = _train_info(model, world, backend, ctx)
        dist.barrier()  # no rank tears its group down while a peer's collective is in flight
        return info
    finally:
        dist.destroy_process_group()


def _train_info(model, world: int, backend: str, ctx: _Rank | None) -> dict:
    B = model.batch_size
    info = {"workers": world, "processes": world, "backend": backend,
            "table_sync": model.table_sync if model.sparse_items else "ddp (dense tables)",
            "global_batch": B, "rank_batch": -(-B // world), "threads_per_rank": model.threads,
            "lr": model.lr, "table_lr": model.table_lr,
            "epoch_seconds": [h["wall_s"] for h in model.history]}
    if ctx is not None:
        info.update(ctx.info())
    return info


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
    from .model import SoftmaxDNN  # cycle: model imports this module

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
    _exit_quietly(0)


def _exit_quietly(code: int) -> None:
    """End a finished rank without the interpreter's teardown: under CPU oversubscription gloo's
    background threads can still be joinable when C++ statics are destroyed, which aborts the
    process (SIGABRT, "terminate called without an active exception") after its work is done."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


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
                               softmax_train.step_sizes(model)) from None


def fit(model, train, valid=None, callback=None) -> None:
    """Train the built ``model`` with ``model.workers`` spawned ranks; rank 0's weights,
    history and timings end up in ``model``. Raises RuntimeError when any rank fails."""
    W = model.workers
    backend = backend_for(model.device)
    if model.table_sync == "sparse" and backend != "gloo":
        raise ValueError(f"{model.name}: table_sync='sparse' needs gloo (no sparse all-reduce on {backend})")
    if model.device == "cuda" and torch.cuda.device_count() < W:
        raise RuntimeError(f"{model.name}: workers={W} on CUDA needs {W} GPUs, torch sees "
                           f"{torch.cuda.device_count()}")
    model._trained_mask = train.item_popularity() > 0
    t_start = time.perf_counter()
    store = dist.TCPStore("127.0.0.1", 0, None, True, timeout=datetime.timedelta(seconds=model.ddp_timeout),
                          wait_for_workers=False)
    ctx = tmp.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe()
    # rank 0 draws the bar; the ranks share this machine's ``threads``: W ranks x threads / W
    # torch threads, so W workers get the cores one process would (not W times as many)
    params = {**model.get_params(), "progress": model.progress,
              "threads": max(1, int(model.threads) // W)}
    procs = tmp.start_processes(_spawned, args=(W, store.port, params, train, valid, child_conn,
                                                callback is not None),
                                nprocs=W, join=False, start_method="spawn")
    child_conn.close()
    result, failed, running = None, [], []

    def handle(msg) -> None:
        nonlocal result
        if msg[0] == "epoch":
            _, epoch, state, history, eval_s = msg
            _load_state(model, state)
            model.history, model.eval_seconds = history, eval_s
            parent_conn.send(bool(callback(epoch, model)))
        else:
            result = msg[1]

    try:
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
    finally:
        _end(procs)
        parent_conn.close()
    if failed or result is None:
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
        msg = (f"{model.name}: data-parallel training failed ({W} workers, {backend}): "
               + "; ".join(parts) + ".")
        if tb:
            msg += "\n\nFirst traceback:\n" + tb
        raise RuntimeError(msg)
    _clean_error_files(procs)
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


# ---------------------------------------------------------------------------------- torchrun
def main(argv=None) -> int:
    """Entry point under torchrun: train on a dataset's split, rank 0 saves and reports."""
    from mfsoftmax.cli_datasets import (  # lazy: the torchrun entry point alone
        add_dataset_options,
        load_from_args,
        parse_params,
    )
    from mfsoftmax.datasets import make_split  # lazy: as above
    from mfsoftmax.evaluation import evaluate  # lazy: as above

    from .model import SoftmaxDNN  # cycle: model imports this module

    p = argparse.ArgumentParser(prog="python -m mfsoftmax.models.softmax.ddp",
                                description="Data-parallel SoftmaxDNN training; run under torchrun.")
    p.add_argument("--dataset", default="synthetic")
    add_dataset_options(p)
    p.add_argument("--protocol", default="holdout")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="SoftmaxDNN parameter")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the model")
    p.add_argument("--split", choices=("valid", "test"), default="test", help="eval set of the report")
    p.add_argument("--k", type=int, nargs="+", default=[20])
    p.add_argument("--out", help="folder where rank 0 saves the fitted model")
    args = p.parse_args(argv)
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        print("softmax_ddp: RANK/WORLD_SIZE not set; launch with torchrun (or use "
              "SoftmaxDNN(workers=W).fit, which spawns the ranks itself)", file=sys.stderr)
        return 2
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    params = {"seed": args.seed, **parse_params(args.set), "workers": world}
    model = SoftmaxDNN(**params)
    split = make_split(load_from_args(args, args.dataset), args.protocol, seed=args.seed)
    info = run_rank(model, split.train, split.valid, rank, world)
    if rank == 0:
        info["launcher"] = "torchrun"
        model.train_info = info
        model._logits_buf = None
        model._refresh_cache()
        evalset = split.valid if args.split == "valid" else split.test
        metrics = evaluate(model, evalset, ks=args.k)
        if args.out:
            model.save(args.out)
        print(json.dumps({"metrics": {k: v for k, v in metrics.items() if np.isscalar(v)},
                          "train_info": info}))
    return 0


if __name__ == "__main__":
    _exit_quietly(main())
