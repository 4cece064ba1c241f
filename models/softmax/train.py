"""The softmax DNN's training loop (``SoftmaxDNN.fit``): the loss of a batch, optimizers, epochs
and early stopping.

Epochs visit the examples (``batches``) in a seeded order, in batches of ``batch_size``; the
sampled losses draw their negatives from the same seeded stream, history dropout from a stream
of its own. After every epoch the model is scored on the validation data and the best weights
are kept (``patience`` epochs without gain stop training). See ``model`` for the optimisation
notes, ``precision`` for bf16 training.

The loop runs on an engine: :class:`Local` (this process takes every step: :func:`fit`, the
trainer of ``workers = 1``) or a rank of a data-parallel job (``ddp.Rank``, ``workers > 1``),
which draws the same order and negatives as every other rank, takes its slice of each global
batch (``batches.Shard``) and synchronises the gradients; rank 0 validates and the ranks agree
on stopping. ``engines.trainer`` picks the trainer from the model's ``workers``.
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from mfsoftmax.evaluation import evaluate

from ..params import TrainingDiverged
from . import losses as L
from .batches import (
    BatchQueries,
    Examples,
    Sampling,
    Shard,
    batch_weights,
    example_weights,
    sampling_for,
)
from .optim import LazyRowOptimizer
from .precision import autocast


def _fused_ok(device: str) -> bool:
    return device in ("cpu", "cuda")


class _EarlyStopping:
    """The best validation metric so far, the weights that reached it, and the epochs since."""

    def __init__(self, patience: int):
        self.patience, self.best, self.state, self.bad = patience, -np.inf, None, 0

    def update(self, metric: float, net: torch.nn.Module) -> bool:
        """Record this epoch's ``metric``; True when ``patience`` epochs passed without a gain."""
        if metric > self.best:
            self.best, self.bad = metric, 0
            self.state = copy.deepcopy(net.state_dict())
            return False
        self.bad += 1
        return self.bad >= self.patience


def optimizers(model) -> list:
    """The dense optimizer and, when the item-id tables are sparse, their lazy row optimizer."""
    sparse = []
    if model.sparse_items and model.use_history:
        sparse.append(model.net.query.history.weight)
    if model.sparse_items and model.net.item.free is not None:
        sparse.append(model.net.item.free.weight)
    if model.sparse_items and model.net.item.bias is not None:
        sparse.append(model.net.item.bias.weight)
    ids = {id(p) for p in sparse}
    dense = [p for p in model.net.parameters() if id(p) not in ids]
    cls = torch.optim.Adam if model.optimizer == "adam" else torch.optim.Adagrad
    # fused: one kernel per step for all dense parameters (3-4x faster than the default)
    opts = [cls(dense, lr=model.lr, weight_decay=model.weight_decay, fused=_fused_ok(model.device))]
    if sparse:
        kind, lr = ((model.optimizer, model.lr) if model.table_optimizer is None
                    else (model.table_optimizer, model.table_lr or model.lr))
        opts.append(LazyRowOptimizer(sparse, kind, lr=lr, weight_decay=model.weight_decay))
    return opts


def init_bias(model, pop: np.ndarray) -> None:
    """b_j = log(1 + count_j), centred: scores start at the popularity ranking."""
    b = np.log1p(pop)
    b -= b.mean()
    with torch.no_grad():
        w = model.net.item.bias.weight
        ids = model.net.item.rows(torch.arange(model.n_items, device=w.device))
        acc = torch.zeros_like(w[:, 0]).index_add_(0, ids, torch.as_tensor(b, dtype=w.dtype, device=w.device))
        cnt = torch.zeros_like(w[:, 0]).index_add_(0, ids, torch.ones_like(ids, dtype=w.dtype))
        w[:, 0] = acc / cnt.clamp(min=1)


def logits_buffer(model, rows: int, cols: int, dev) -> torch.Tensor:
    """A (rows x cols) float32 view of one buffer kept on the model for a step's logits
    (``full``, the sampled and in-batch losses) and reused by every step: a fresh 16-64 MB tensor
    a step would be page-faulted in again each time. Its contents belong to the step's graph
    until ``backward``."""
    buf = model._logits_buf
    if buf is None or buf.numel() < rows * cols:
        buf = model._logits_buf = torch.empty(rows * cols, device=dev)
    return buf[:rows * cols].view(rows, cols)


def batch_loss(model, q, pos, rng, sampling: Sampling, w: torch.Tensor | None = None,
               shard: Shard | None = None) -> torch.Tensor:
    """The loss of a batch (queries ``q``, targets ``pos``), plus gravity when it is on.

    ``w``: per-example weights, the loss is ``sum(w * l)`` (None: the mean). ``shard``: the
    rows are one rank's slice of a global batch: in-batch scores them against every positive
    of the global batch, and gravity counts the shard's share of the global batch."""
    log_mq_t, cdf, pool_size = sampling
    dev, item, feats, k = q.device, model.net.item, model._if, model.n_negatives
    bias = item.biases  # None without item_bias
    V_all = None
    if model.loss == "full":
        q = q.float()  # the fused full loss writes fp32 logits into its buffer (no autocast)
        V_all = model._all_items()
        loss = L.full_softmax_loss(q, V_all, pos, bias(None), w=w,
                                   out=logits_buffer(model, len(pos), model.n_items, dev))
    elif model.loss in ("sampled-uniform", "sampled-popularity"):
        if model.loss == "sampled-uniform":
            neg_np = rng.integers(0, model.n_items, size=k)
        else:
            neg_np = np.minimum(np.searchsorted(cdf, rng.random(k), side="right"), model.n_items - 1)
        neg = torch.as_tensor(neg_np, device=dev)
        ids = torch.cat([pos, neg])
        both, b = item(ids, feats), bias(ids)
        b_pos, b_neg = (None, None) if b is None else (b[:len(pos)], b[len(pos):])
        loss = L.sampled_softmax_loss(q, both[:len(pos)], both[len(pos):], pos, neg,
                                      log_mq_t[pos], log_mq_t[neg], b_pos, b_neg, w=w,
                                      out=logits_buffer(model, len(pos), k, dev))
    elif model.loss == "in-batch":
        cols, start = (pos, 0) if shard is None else (shard.pos_all, shard.start)
        loss = L.in_batch_loss(q, item(cols, feats), cols, log_mq_t[cols], bias(cols), w=w,
                               offset=start, out=logits_buffer(model, len(pos), len(cols), dev))
    elif model.loss == "hard-negatives":
        pool = torch.as_tensor(rng.integers(0, model.n_items, size=pool_size), device=dev)
        ids = torch.cat([pos, pool])
        both, b = item(ids, feats), bias(ids)
        v_pool = both[len(pos):]
        if b is None:
            pool_scores, b_pos = q @ v_pool.T, None
        else:
            pool_scores, b_pos = torch.addmm(b[None, len(pos):], q, v_pool.T), b[:len(pos)]
        loss = L.hard_negative_loss(q, both[:len(pos)], pool_scores, pos, pool, k, b_pos, w=w)
    else:  # positives-only
        loss = L.positives_only_loss(q, item(pos, feats), bias(pos), w=w)
    if model.gravity > 0:
        if V_all is None:
            V_all = model._all_items()
        g = L.gravity(q, V_all)
        loss = loss + model.gravity * (g if shard is None else g * shard.frac)
    return loss


def _epoch(model, queries: BatchQueries, n_ex: int, rng, opts, sampling, dev,
           ex_w: torch.Tensor | None = None) -> float:
    """One pass over the examples in a fresh seeded order; returns the mean training loss."""
    B = model.batch_size
    perm = rng.permutation(n_ex)
    perm_t = torch.as_tensor(perm, device=dev)
    tot, cnt = 0.0, 0
    for s in range(0, n_ex, B):
        b = perm[s:s + B]
        b_t = perm_t[s:s + B]
        with autocast(model):  # bf16: the tower's and the loss's matmuls; fp32 reduction
            q, pos = queries(b, b_t)
            loss = batch_loss(model, q, pos, rng, sampling, w=batch_weights(ex_w, b_t)).float()
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in opts:
            opt.step()
        tot += float(loss.detach()) * len(b)
        cnt += len(b)
    return tot / cnt


def step_sizes(model) -> dict:
    """The learning rates that move the weights: ``lr``, and ``table_lr`` when the item tables
    take their own optimizer."""
    own = model.sparse_items and model.table_optimizer is not None and model.table_lr is not None
    return {"lr": model.lr, **({"table_lr": model.table_lr} if own else {})}


def _validate(model, valid, record: dict, stopping: _EarlyStopping) -> bool:
    """Score ``valid`` into ``record`` (time added to ``eval_seconds``); True: stop training."""
    if valid is None or not len(valid):
        return False
    t1 = time.perf_counter()
    metric = evaluate(model, valid, ks=(model.eval_k,))[f"recall@{model.eval_k}"]
    model.eval_seconds += time.perf_counter() - t1
    record["valid_recall@k"] = float(metric)
    return stopping.update(metric, model.net)


class Local:
    """The single-process engine of :func:`train`: this process takes every step of every batch
    (the data-parallel one is ``ddp.Rank``, with the same ``rank``, ``start``, ``epoch`` and
    ``agree``)."""

    rank = 0

    def start(self, model, opts) -> None:
        """Nothing to set up."""

    def epoch(self, model, queries, n_ex, rng, opts, sampling, dev, ex_w) -> float:
        return _epoch(model, queries, n_ex, rng, opts, sampling, dev, ex_w)

    def agree(self, stop: bool) -> bool:
        return stop


def fit(model, train_set, valid=None, callback=None) -> None:
    """The trainer of ``workers = 1`` (``engines.trainer``): train the built ``model`` in this
    process and set its ``train_info``."""
    train(model, train_set, valid, callback)
    model.train_info = {"workers": 1, "processes": 1, "backend": None, "table_sync": None,
                        "global_batch": model.batch_size, "rank_batch": model.batch_size,
                        "lr": model.lr, "table_lr": model.table_lr,
                        "epoch_seconds": [h["wall_s"] for h in model.history]}


def train(model, train, valid, callback, engine=None) -> None:
    """Train the built ``model`` (``SoftmaxDNN``) on ``train``, early stopping on ``valid``,
    with torch and BLAS limited to ``model.threads`` threads.

    Keeps the best validation weights and sets ``history`` (one record per epoch),
    ``eval_seconds`` and ``fit_seconds``; ``callback(epoch, model)`` returning True stops.
    ``engine``: who takes the steps, :class:`Local` (None) or this process's rank of a
    data-parallel job (``ddp.Rank``).
    """
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(model.threads)
    try:
        with threadpool_limits(limits=model.threads):
            _train(model, train, valid, callback, Local() if engine is None else engine)
    finally:
        torch.set_num_threads(prev_threads)


def _train(model, train, valid, callback, engine) -> None:
    dev = model._torch_device()
    rng = np.random.default_rng(model.seed)
    ex = Examples(train.matrix, model.max_history, rng)
    if len(ex) == 0:
        raise ValueError(f"{model.name}: training data has no interactions")
    pop = train.item_popularity().astype(np.float64)
    model._trained_mask = pop > 0
    sampling = sampling_for(model, pop, dev)
    queries = BatchQueries(model, ex, dev)
    if model.item_bias and model.bias_init == "log-popularity":
        init_bias(model, pop)
    opts = optimizers(model)
    ex_w = example_weights(ex.value, model.example_weight, model.alpha, model.eps)
    ex_w = None if ex_w is None else torch.as_tensor(ex_w, device=dev)
    lead = engine.rank == 0  # validates, keeps the best weights, calls back
    engine.start(model, opts)
    model._logits_buf = None  # the logits buffer every step reuses (logits_buffer)
    model.history, model.eval_seconds = [], 0.0
    stopping = _EarlyStopping(model.patience)
    t_fit = time.perf_counter()
    bar = None
    if model.progress and lead:
        bar = tqdm(total=model.epochs, desc=model.name, unit="epoch")
    for epoch in range(model.epochs):
        t0 = time.perf_counter()
        model.net.train()
        loss = engine.epoch(model, queries, len(ex), rng, opts, sampling, dev, ex_w)
        if not math.isfinite(loss):  # every later step and score would be NaN too
            raise TrainingDiverged(type(model).__name__, epoch + 1, loss, step_sizes(model))
        record = {"epoch": epoch, "loss": loss, "wall_s": time.perf_counter() - t0,
                  "valid_recall@k": None}
        model.net.eval()
        stop = False
        if lead:
            model._refresh_cache()
            stop = _validate(model, valid, record, stopping)
        model.history.append(record)
        if bar is not None:
            bar.set_postfix(loss=f"{record['loss']:.4f}", valid=record["valid_recall@k"])
            bar.update(1)
        if lead and callback is not None and callback(epoch, model):
            stop = True
        if engine.agree(stop):
            break
    if bar is not None:
        bar.close()
    if stopping.state is not None:
        model.net.load_state_dict(stopping.state)
    model.net.eval()
    model._logits_buf = None
    model._refresh_cache()
    model.fit_seconds = time.perf_counter() - t_fit
