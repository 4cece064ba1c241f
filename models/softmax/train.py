"""The softmax DNN's training loop (``SoftmaxDNN.fit``): examples, batches, the loss of a batch,
optimizers and early stopping.

One example per training (user, item) pair; its query pools the user's *other* items. Epochs
visit the examples in a seeded order, in batches of ``batch_size``; the sampled losses draw
their negatives from the same seeded stream, history dropout from a stream of its own. After
every epoch the model is scored on the validation data and the best weights are kept
(``patience`` epochs without gain stop training). See ``softmax_dnn`` for the optimisation notes.

Example weights (``example_weight``): each example's loss is weighted by a function of its
interaction value ``c`` (``linear``: ``1 + alpha c``, ``log``: ``1 + alpha log(1 + c / eps)``,
the WALS observed weights) and a batch's loss is the weighted mean. ``none`` runs the unweighted
code unchanged.

Precision (``precision``): with bf16 (``auto`` on a CPU with AMX or AVX-512 BF16, or a bf16
CUDA device) each step's forward runs under ``torch.autocast(dtype=bfloat16)``: the query MLP's
and the loss's matmuls in bf16, the logits promoted back to float32 by the logQ/bias terms, so
the log-softmax and the batch's reduction are float32; the embedding tables, every parameter,
the optimiser state and the backward's accumulation stay float32. ``full`` keeps its fused
float32 logits (the query tower in bf16).

Data-parallel training (``workers > 1``, ``softmax_ddp``) runs this loop on every rank with a
``dist`` object: each rank draws the same order and negatives, takes its slice of each global
batch (:class:`Shard`) and ``dist.step`` synchronises the gradients; rank 0 validates and the
ranks agree on stopping.
"""

from __future__ import annotations

import copy
import math
import time
from typing import NamedTuple

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from mfsoftmax.evaluation import evaluate

from ..params import TrainingDiverged
from . import losses as L
from .bags import bag_inputs, dense_bags
from .optim import LazyRowOptimizer
from .towers import table_rows

DENSE_POOL_MAX = 2 ** 25  # cells of the dense users x items pooling matrix (128 MiB float32)
EXAMPLE_WEIGHTS = ("none", "linear", "log")
#: a spawned rank's own interpreter with torch and the models imported (283 MiB RSS measured
#: on the 2-core development machine; counted low)
RANK_PROCESS_BYTES = 250 * 2**20


def memory_parts(model, n_users: int, n_items: int) -> dict:
    """Bytes a fit of ``model`` (``SoftmaxDNN``) on ``n_users x n_items`` allocates at least:
    the item tables and the query MLP (feature embeddings left out), their gradients and
    optimizer state, the ``full`` loss's logits buffer and dense pooling matrix, all per copy of
    the model (each rank and the parent with ``workers > 1``), and the ranks' interpreters."""
    d, B, W = model.dim, model.batch_size, model.workers
    v_rows = table_rows(n_items, model.hash_buckets if model.hash_scope == "all" else None)
    rows = v_rows + (table_rows(n_items, model.hash_buckets) if model.use_history else 0)
    widths = [d, *model.hidden, d]
    mlp = 4.0 * sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))
    adam = 2 if model.optimizer == "adam" else 1
    if model.sparse_items and model.table_optimizer is not None:  # lazy row updates
        state = 4.0 * rows if model.table_optimizer == "rowwise-adagrad" else \
            4.0 * rows * d * (2 if model.table_optimizer == "adam" else 1)
    else:  # dense gradients and the dense optimizer's state
        state = 4.0 * rows * d * (1 + adam)
    copies = W + 1 if W > 1 else 1
    parts = {"item tables": 4.0 * rows * d * copies, "table optimizer state": state * copies,
             "query MLP with gradients and state": mlp * (2 + adam) * copies}
    if model.loss == "full":
        parts["full-softmax logits"] = 4.0 * B * n_items * copies
        if model.hash_buckets is None and model.max_history is None:
            parts["dense pooling matrix"] = 4.0 * min(n_users * n_items, DENSE_POOL_MAX) * copies
    if W > 1:
        parts["rank processes"] = float(RANK_PROCESS_BYTES * W)
    return parts


PRECISIONS = ("fp32", "bf16", "auto")
#: /proc/cpuinfo flags of a CPU with native bfloat16 matmuls (Intel AMX, AVX-512 BF16)
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_bf16_flags(cpuinfo: str | None = None) -> list[str]:
    """The :data:`BF16_CPU_FLAGS` this CPU has (``cpuinfo``: the text of /proc/cpuinfo, read
    when None; empty where it cannot be read)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as fh:
                cpuinfo = fh.read()
        except OSError:
            return []
    line = next((ln for ln in cpuinfo.splitlines() if ln.startswith("flags")), "")
    have = set(line.split(":", 1)[-1].split())
    return [f for f in BF16_CPU_FLAGS if f in have]


def resolve_precision(precision: str, device: str = "cpu", cpuinfo: str | None = None) -> str:
    """``fp32`` or ``bf16``: ``auto`` is bf16 where the hardware has native bf16 matmuls (a
    CUDA device that supports bf16; a CPU with AMX or AVX-512 BF16, :func:`cpu_bf16_flags`),
    else fp32."""
    if precision != "auto":
        return precision
    if device == "cuda":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_bf16_flags(cpuinfo) else "fp32"


def model_precision(precision: str, workers: int = 1, device: str = "cpu") -> str:
    """The resolved precision of a ``SoftmaxDNN(precision=...)`` (:func:`resolve_precision`;
    data-parallel ranks, ``workers > 1``, train in fp32); ValueError naming a bad value."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: choose one of {', '.join(PRECISIONS)}")
    return "fp32" if int(workers) > 1 else resolve_precision(precision, device)


def autocast(model):
    """The mixed-precision context of ``model``'s forward passes: bf16 matmuls (``torch.autocast``)
    when its resolved precision is bf16, a no-op otherwise. Parameters, optimiser state,
    embedding tables and the loss's reduction stay float32."""
    dev = "cuda" if str(model.device).startswith("cuda") else "cpu"
    return torch.autocast(dev, dtype=torch.bfloat16, enabled=model.precision_resolved == "bf16")


def example_weights(values: np.ndarray, kind: str, alpha: float, eps: float) -> np.ndarray | None:
    """Weights of examples with interaction ``values`` (WALS's observed weights): ``linear``
    ``1 + alpha c``, ``log`` ``1 + alpha log(1 + c / eps)``; None for ``none``."""
    if kind == "none":
        return None
    c = np.asarray(values, dtype=np.float32)
    if kind == "log":
        return (1.0 + alpha * np.log1p(c / np.float32(eps))).astype(np.float32)
    return (1.0 + alpha * c).astype(np.float32)


class Shard(NamedTuple):
    """One rank's slice ``start:stop`` of a global batch (``softmax_ddp``) and the global
    batch's positives ``pos_all`` (in-batch negatives come from every shard)."""

    start: int
    stop: int
    pos_all: torch.Tensor

    @property
    def frac(self) -> float:
        return (self.stop - self.start) / len(self.pos_all)


def _fused_ok(device: str) -> bool:
    return device in ("cpu", "cuda")


class _Examples:
    """The training examples, one per (user, item) pair of ``matrix``, in row order.

    ``row_items`` are each row's items (with ``max_history`` in a fixed seeded order, so a bag
    is a prefix of it); example e is user ``user[e]``, target ``item[e]`` at position ``pos[e]``
    of its row, interaction value ``value[e]``.
    """

    def __init__(self, matrix, max_history: int | None, rng: np.random.Generator):
        m = matrix
        self.lens = np.diff(m.indptr).astype(np.int64)
        self.user = np.repeat(np.arange(m.shape[0]), self.lens)
        if max_history is not None:  # a fixed seeded order inside each row: bags = its prefix
            order = np.lexsort((rng.random(m.nnz), self.user))
            self.row_items = m.indices[order].astype(np.int64)
            self.value = m.data[order]
        else:
            self.row_items = m.indices.astype(np.int64)
            self.value = m.data
        self.starts = m.indptr[:-1].astype(np.int64)
        self.pos = np.arange(m.nnz) - self.starts[self.user]
        self.item = self.row_items

    def __len__(self) -> int:
        return len(self.user)


class _Sampling(NamedTuple):
    """What the sampled losses need: log(m Q_j) of each item (logQ correction; B Q_j for
    in-batch), the popularity CDF (sampled-popularity) and the hard-negatives pool size."""

    log_mq: torch.Tensor
    cdf: np.ndarray
    pool_size: int


def _sampling(model, pop: np.ndarray, dev: torch.device) -> _Sampling:
    n, B, k = model.n_items, model.batch_size, model.n_negatives
    q_freq = pop / pop.sum()
    with np.errstate(divide="ignore"):
        if model.loss == "sampled-uniform":
            log_mq = np.full(n, np.log(k / n))
        elif model.loss == "sampled-popularity":
            log_mq = np.log(k * q_freq)
        else:  # in-batch: log(B Q); unused otherwise
            log_mq = np.log(B * q_freq)
    cdf = np.cumsum(q_freq)
    cdf /= cdf[-1]
    pool_size = min(n, 4 * k) if model.hard_pool is None else int(model.hard_pool)
    return _Sampling(torch.as_tensor(log_mq, dtype=torch.float32, device=dev), cdf, pool_size)


class _BatchQueries:
    """Query embeddings of a batch of examples: the history bag (emptied with probability
    ``history_dropout``) and the user's features.

    Bags are EmbeddingBag inputs built in numpy, or, for ``full`` and gravity without hashing or
    ``max_history``, rows of a dense users x items 0/1 matrix (at most ``DENSE_POOL_MAX`` cells).
    """

    def __init__(self, model, ex: _Examples, dev: torch.device):
        self.model, self.ex = model, ex
        self.user_t = torch.as_tensor(ex.user, device=dev)
        self.item_t = torch.as_tensor(ex.item, device=dev)
        n = model.n_items
        self.dense = (model.use_history and not model.sparse_items and model.max_history is None
                      and model.net.query.buckets is None and model.n_users * n <= DENSE_POOL_MAX)
        if self.dense:  # 0/1 users x items; a batch's mean weights are a row gather of it
            self.A = torch.zeros(model.n_users, n, device=dev)
            self.A[self.user_t, self.item_t] = 1.0
            self.inv_len = torch.as_tensor(1.0 / np.maximum(ex.lens - 1, 1), dtype=torch.float32,
                                           device=dev)
        self.p_drop = model.history_dropout if model.use_history else 0.0
        self.drop_rng = np.random.default_rng([model.seed, 1])  # own stream: negatives stay the same

    def __call__(self, b: np.ndarray, b_t: torch.Tensor,
                 shard: Shard | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(queries, target items) of examples ``b`` (``b_t``: the same on the device); with
        ``shard``, ``b`` is the global batch and only the shard's slice is computed (the
        dropout draws are the global batch's, so every rank stays on the same stream)."""
        model, ex = self.model, self.ex
        keep = self.drop_rng.random(len(b)) >= self.p_drop if self.p_drop > 0 else None
        if shard is not None:
            b, b_t = b[shard.start:shard.stop], b_t[shard.start:shard.stop]
            keep = None if keep is None else keep[shard.start:shard.stop]
        pos = self.item_t[b_t]
        if self.dense:
            u_t = self.user_t[b_t]
            bag = dense_bags(self.A, self.inv_len, u_t, pos, keep)
            return model.net.query(bag, model._user_feats(u_t)), pos
        u = ex.user[b]
        if model.use_history:
            ul = ex.lens[u] if keep is None else np.where(keep, ex.lens[u], 0)
            flat, offsets, weights = bag_inputs(ex.row_items, ex.starts[u], ul, ex.pos[b], model.max_history)
        else:
            flat = offsets = weights = None
        return model._query(flat, offsets, weights, u), pos


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


def batch_loss(model, q, pos, rng, sampling: _Sampling, w: torch.Tensor | None = None,
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
        buf = model._logits_buf
        if buf is None or len(buf) < len(pos):
            buf = model._logits_buf = torch.empty(len(pos), model.n_items, device=dev)
        loss = L.full_softmax_loss(q, V_all, pos, bias(None), out=buf[:len(pos)], w=w)
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
                                      log_mq_t[pos], log_mq_t[neg], b_pos, b_neg, w=w)
    elif model.loss == "in-batch" and shard is not None:
        cols = shard.pos_all
        loss = L.in_batch_loss(q, item(cols, feats), cols, log_mq_t[cols], bias(cols), w=w,
                               offset=shard.start)
    elif model.loss == "in-batch":
        loss = L.in_batch_loss(q, item(pos, feats), pos, log_mq_t[pos], bias(pos), w=w)
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


def batch_weights(ex_w: torch.Tensor | None, b_t: torch.Tensor) -> torch.Tensor | None:
    """Weights of batch ``b_t`` normalised to sum 1 (the weighted mean); None unweighted."""
    if ex_w is None:
        return None
    w = ex_w[b_t]
    return w / w.sum()


def _epoch(model, queries: _BatchQueries, n_ex: int, rng, opts, sampling, dev,
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


def train(model, train, valid, callback, dist=None) -> None:
    """Train the built ``model`` (``SoftmaxDNN``) on ``train``, early stopping on ``valid``,
    with torch and BLAS limited to ``model.threads`` threads.

    Keeps the best validation weights and sets ``history`` (one record per epoch),
    ``eval_seconds`` and ``fit_seconds``; ``callback(epoch, model)`` returning True stops.
    ``dist``: this process is one rank of a data-parallel job (``softmax_ddp._Rank``).
    """
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(model.threads)
    try:
        with threadpool_limits(limits=model.threads):
            _train(model, train, valid, callback, dist)
    finally:
        torch.set_num_threads(prev_threads)


def _train(model, train, valid, callback, dist=None) -> None:
    dev = model._torch_device()
    rng = np.random.default_rng(model.seed)
    ex = _Examples(train.matrix, model.max_history, rng)
    if len(ex) == 0:
        raise ValueError(f"{model.name}: training data has no interactions")
    pop = train.item_popularity().astype(np.float64)
    model._trained_mask = pop > 0
    sampling = _sampling(model, pop, dev)
    queries = _BatchQueries(model, ex, dev)
    if model.item_bias and model.bias_init == "log-popularity":
        init_bias(model, pop)
    opts = optimizers(model)
    ex_w = example_weights(ex.value, model.example_weight, model.alpha, model.eps)
    ex_w = None if ex_w is None else torch.as_tensor(ex_w, device=dev)
    lead = dist is None or dist.rank == 0  # validates, keeps the best weights, calls back
    if dist is not None:
        dist.start(model, opts)
    model._logits_buf = None  # full: (B x n) logits buffer reused by every step
    model.history, model.eval_seconds = [], 0.0
    stopping = _EarlyStopping(model.patience)
    t_fit = time.perf_counter()
    bar = None
    if model.progress and lead:
        bar = tqdm(total=model.epochs, desc=model.name, unit="epoch")
    for epoch in range(model.epochs):
        t0 = time.perf_counter()
        model.net.train()
        if dist is None:
            loss = _epoch(model, queries, len(ex), rng, opts, sampling, dev, ex_w)
        else:
            loss = dist.epoch(model, queries, len(ex), rng, opts, sampling, dev, ex_w)
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
        if dist is not None:
            stop = dist.agree(stop)
        if stop:
            break
    if bar is not None:
        bar.close()
    if stopping.state is not None:
        model.net.load_state_dict(stopping.state)
    model.net.eval()
    model._logits_buf = None
    model._refresh_cache()
    model.fit_seconds = time.perf_counter() - t_fit
