"""Data-parallel training of the softmax DNN with torch.distributed (``SoftmaxDNN(workers=W)``):
one rank's part (:class:`Rank`, the engine ``train.train`` runs on), :func:`run_rank`, and the
torchrun entry point. ``spawn`` launches the ranks from ``fit``; ``table_sync`` combines the
sparse item-table gradients.

Launch
------
- ``SoftmaxDNN(workers=W).fit(train, valid)`` spawns the ranks itself (``spawn``).
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
  same lazy row-wise update (``optim``) to the same summed rows, so the tables stay
  identical without a broadcast. After each epoch the ranks compare a checksum of all
  parameters and rank 0 re-broadcasts them if they drifted (counted in ``train_info``).
- Rank 0 validates after each epoch and keeps the best weights; the ranks agree on stopping.
- Precision (``precision``): with bf16 each rank runs its shard's forward under the same
  ``precision.autocast`` as the single-process step (the tower's and the loss's matmuls in
  bf16, the loss cast to float32); the parameters, tables, optimiser state, the all-reduced
  gradients (DDP's buckets and ``table_sync``'s rows) and the epoch's loss sum stay float32 /
  float64, so nothing goes through gloo or NCCL in bf16. Each rank records the autocast
  state its steps ran under and the dtypes it all-reduced; ``train_info`` has them per rank
  (``rank_precision``, ``reduce_dtypes``) and a rank that trained in another precision than
  the model's resolved one fails the fit with a RuntimeError naming it (never a silent fp32).

- The sparse tables' synchronisation, its measurements and limits: ``table_sync``.

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

``MFSOFTMAX_DDP_FAULT=RANK:KIND[:STEP]`` (KIND raise, exit or hang) injects a failure on one
rank at one step (a test hook; ``spawn``, "Failures").
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from . import table_sync
from . import train as training
from .batches import Shard, batch_weights
from .optim import LazyRowOptimizer
from .precision import autocast
from .table_sync import SYNCS
from .train import batch_loss

FAULT_ENV = "MFSOFTMAX_DDP_FAULT"


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


class _HookState:
    """The state of :func:`_sum_hook`: the process group and the dtypes it all-reduced."""

    def __init__(self, pg, dtypes: set):
        self.pg, self.dtypes = pg, dtypes


def _sum_hook(state: _HookState, bucket):
    """DDP communication hook: the sum of the ranks' gradients (DDP's default averages)."""
    buf = bucket.buffer()
    state.dtypes.add(str(buf.dtype).removeprefix("torch."))
    fut = state.pg.allreduce([buf]).get_future()
    return fut.then(lambda f: f.value()[0])


def active_precision(device_type: str) -> str:
    """``bf16`` when a bf16 ``torch.autocast`` is on for ``device_type`` in this thread, else
    ``fp32``: the precision a forward run now computes its matmuls in."""
    on = torch.is_autocast_enabled(device_type)
    return "bf16" if on and torch.get_autocast_dtype(device_type) == torch.bfloat16 else "fp32"


def _shard_loss(model, queries, b, b_t, shard, rng, sampling, w, seen: set):
    q, pos = queries(b, b_t, shard)
    seen.add(active_precision(q.device.type))  # inside DDP's forward: what this step ran in
    return batch_loss(model, q, pos, rng, sampling, w=w, shard=shard).float()


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


class Rank:
    """This process's part in a data-parallel fit: the engine ``train.train`` runs on
    (``start``, ``epoch``, ``agree``, as ``train.Local``). ``pg``: the process group (default: the
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
        self.precisions: set[str] = set()  # the autocast state of this rank's forwards
        self.reduce_dtypes: set[str] = set()  # the dtypes of the gradients it all-reduced

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
        self.ddp.register_comm_hook(_HookState(self.pg, self.reduce_dtypes), _sum_hook)
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
            with autocast(model):  # bf16: the tower's and the loss's matmuls; fp32 reduction
                loss = self.ddp(_shard_loss, model, queries, b, b_t, shard, rng, sampling, w,
                                self.precisions)
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
        self.all_reduce(out)
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
            got = self.all_gather(s)
            if all(torch.equal(g, got[0]) for g in got):
                return
            for p in self.params:
                self.pg.broadcast(p.data, 0).wait()
            self.resyncs += 1

    # ---------------------------------------------------------------- tables
    def _sync_tables(self) -> None:
        """Replace each sparse table's gradient by the sum over ranks (``table_sync``)."""
        self.reduce_dtypes.update(str(p.grad.dtype).removeprefix("torch.") for p in self.tables
                                  if p.grad is not None)
        table_sync.sync(self)

    def all_reduce(self, t: torch.Tensor) -> None:
        self.pg.allreduce([t]).wait()

    def all_gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        out = [torch.empty_like(t) for _ in range(self.world)]
        self.pg.allgather([out], [t]).wait()
        return out

    def info(self) -> dict:
        """This rank's figures, and every rank's precision and all-reduced dtypes (a collective:
        every rank calls it)."""
        mine = ("+".join(sorted(self.precisions)) or None, sorted(self.reduce_dtypes))
        ranks = [None] * self.world
        dist.all_gather_object(ranks, mine, group=self.pg)
        return {"sync_seconds": [round(s, 6) for s in self.sync_seconds], "resyncs": self.resyncs,
                "skipped_examples": self.skipped, "rank_precision": [p for p, _ in ranks],
                "reduce_dtypes": [d for _, d in ranks]}


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
        ctx = Rank(rank, world, backend, model.table_sync)
        training.train(model, train, valid, callback if rank == 0 else None, engine=ctx)
        info = _train_info(model, world, backend, ctx)
        _check_precision(model, info["rank_precision"])
        dist.barrier()  # no rank tears its group down while a peer's collective is in flight
        return info
    finally:
        dist.destroy_process_group()


def _train_info(model, world: int, backend: str, ctx: Rank | None) -> dict:
    B = model.batch_size
    info = {"workers": world, "processes": world, "backend": backend,
            "table_sync": model.table_sync if model.sparse_items else "ddp (dense tables)",
            "global_batch": B, "rank_batch": -(-B // world), "threads_per_rank": model.threads,
            "lr": model.lr, "table_lr": model.table_lr, "precision": model.precision_resolved,
            "epoch_seconds": [h["wall_s"] for h in model.history]}
    if ctx is not None:
        info.update(ctx.info())
    return info


def _check_precision(model, rank_precision: list) -> None:
    """RuntimeError when a rank trained in another precision than ``model``'s resolved one
    (None: a rank that took no step)."""
    want = model.precision_resolved
    off = [f"rank {r}: {p}" for r, p in enumerate(rank_precision) if p is not None and p != want]
    if off:
        raise RuntimeError(f"{model.name}: precision={model.precision!r} resolves to {want}, but "
                           f"data-parallel ranks trained in another precision ({'; '.join(off)})")


def exit_quietly(code: int) -> None:
    """End a finished rank without the interpreter's teardown: under CPU oversubscription gloo's
    background threads can still be joinable when C++ statics are destroyed, which aborts the
    process (SIGABRT, "terminate called without an active exception") after its work is done."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# ---------------------------------------------------------------------------------- torchrun
def main(argv=None) -> int:
    """Entry point under torchrun: train on a dataset's split, rank 0 saves and reports."""
    from mfsoftmax.dataset_args import (  # lazy: the torchrun entry point alone
        add_dataset_options,
        load_from_args,
        parse_params,
    )
    from mfsoftmax.datasets import make_split  # lazy: as above
    from mfsoftmax.evaluation import evaluate  # lazy: as above

    from .model import SoftmaxDNN  # lazy: the model picks this engine (``engines``)

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
        print("mfsoftmax.models.softmax.ddp: RANK/WORLD_SIZE not set; launch with torchrun (or use "
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
    exit_quietly(main())
