"""Softmax DNN recommender (DEFINITIONS.md, "Softmax DNN"): a query tower and item embeddings
trained with one of six losses (``softmax_losses``), optionally plus gravity.

Training examples are the training (user, item) pairs; the query of a pair is the user's features
plus the mean embedding of the user's *other* training items (the target is left out; with
``max_history`` a fixed, seeded subsample of at most that many items). Bags are built per batch
in numpy (EmbeddingBag offsets), so an epoch costs O(sum of bag sizes) plus the loss.

Optimisation notes
------------------
- When the loss only touches gathered rows (every loss except ``full``, and no gravity) the two
  item-id tables (history, V) have sparse gradients, stepped by lazy row-wise updates
  (``softmax_optim``): a sampled step costs O(rows touched), not O(n), and the moments of an
  untouched row are not updated. ``full`` and gravity are O(B n) per step anyway: dense tables,
  plain Adam/Adagrad, and history pooling as a (B x n) @ (n x d) matmul.
- The sparse tables default to row-wise Adagrad (``table_optimizer``, one float of state per
  row, its own ``table_lr``): measured on 1e5-item synthetic data a sampled epoch costs less than
  with lazy Adam (a touched row moves ~d floats instead of ~3d), and on ml-100k every sampled
  variant scored higher (README, "Table optimizer").
- ``weight_decay`` is L2 added to the gradient (coupled, as ``torch.optim.Adam``): every step on
  dense parameters, and on the touched rows of sparse tables (lazy L2).
- Scoring (``score``) uses a query's full history (``max_history`` only subsamples training bags).
- ``item_cold_scores`` scores items through the item tower alone: interactions revealed after
  training are ignored (no retraining, no fold-in).
- ``full`` (and gravity) without hashing or ``max_history`` pools the history from a dense
  users x items 0/1 matrix built once per fit (at most ``softmax_train.DENSE_POOL_MAX`` cells):
  a batch gathers the rows of its U distinct users and pools them with one (U x n) @ (n x d)
  matmul; each example then subtracts its target's embedding and scales by 1 / (len - 1). No
  per-batch bag building in Python, and U < B (U/B ~ 0.8 on ml-100k at B = 256) saves a fifth
  of the pooling FLOPs forward and backward.

Cold start
----------
- ``history_dropout`` p: during training each example's history bag is emptied with probability
  p (a seeded stream of its own, so the other random draws do not change), so the feature path
  learns to serve users with an empty history (new users, DEFINITIONS "Cold start"). An empty
  bag pools to the zero vector, in training and at scoring time alike.
- ``item_bias``: a learned per-item bias, ``s_j(x) = <psi(x), V_j> + b_j`` in every loss (before
  the logQ correction of the sampled losses; positives-only includes it; gravity uses the
  embeddings only) and in ``score``. ``query_embeddings`` / ``item_embeddings`` stay the pure
  embeddings and ``item_biases`` returns b, so ``scores = Q V^T + b`` (for a dot-product index
  use ``[psi, 1]`` and ``[V, b]``). ``item_cold_scores`` gives new items the mean trained bias.

Weighted implicit feedback
--------------------------
- ``example_weight``: each training example (a user's positive item) is weighted by its
  interaction value c in the training matrix (plays, clicks), with WALS's functions: ``linear``
  ``1 + alpha c``, ``log`` ``1 + alpha log(1 + c / eps)``; a batch's loss is the weighted mean
  (history bags stay unweighted means). ``none`` (default) is the unweighted training, bit for
  bit. On binarized data (every c = 1) the weighted mean is the mean (up to rounding).

Serving one request (``recommend_one``, ``serve_runtime``)
---------------------------------------------------------
- ``recommend_one(user, history_items, k)`` is the lean single-query path: no CSR ``Queries``,
  no batch bag building; the history ids become the tower's bag tensors directly (one bag:
  ``offsets = [0]``, weights ``1 / len``), then ``V @ q`` (+ b) in numpy, history to -inf by
  index, ``argpartition`` and a sort of the ``k`` (``base.topk_one``: ``recommend``'s order).
- ``serve_runtime`` picks how that path runs the query tower: ``eager`` (the module itself,
  under ``torch.inference_mode``), ``torchscript`` (``torch.jit.trace`` of a one-query tower
  that pools the bag with ``embedding_bag``, frozen and ``optimize_for_inference``), or
  ``auto`` (default): TorchScript when it builds, its output equals eager's within
  :data:`SERVE_TOLERANCE` on a few queries (empty, short and long histories, several users)
  and it is not slower *inside the lean path* at the current torch thread count (both runtimes
  timed end to end through ``recommend_one`` on those queries; eager wins only when
  :data:`AUTO_MARGIN` times faster; timed again when the thread count changes), else eager
  with the reason kept (:meth:`SoftmaxDNN.serve_info`: ``lean_us`` per runtime, ``threads``). Built lazily on the first
  request after ``fit``/``load`` (the trace bakes the weights in; a refit drops it). Explicit
  ``torchscript`` raises instead of falling back. Measured on ml-100k, one thread: the tower
  2.3-3.7x faster through TorchScript, the lean path's p50 1.5-2.0x lower (docs/models.md).
- Only on CPU; on CUDA ``recommend_one`` takes the generic path.

Data-parallel training (``workers``)
------------------------------------
- ``workers = 1`` is the single-process training above, unchanged. ``workers > 1`` trains with
  torch.distributed (``softmax_ddp``): ``fit`` spawns the ranks itself (gloo on CPU, NCCL on
  CUDA, one GPU per rank), or run ``python -m mfsoftmax.models.softmax.ddp`` under torchrun.
  Global batch = ``batch_size`` (each rank computes ``batch_size / workers`` examples of it),
  the same ``lr``: every rank draws the same order, negatives and dropout, the gradients of
  the rank shards are summed, so a step is the single-process step up to float rounding
  (``softmax_ddp`` for the table synchronisation, the tolerance and the limits).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from mfsoftmax.datasets.core import check_users_items

from ..base import Queries, RecommenderBase, topk_one
from ..params import Choice, Flag, ListOf, Num, ParamError, Text, Whole
from . import persist as softmax_persist
from . import train as softmax_train
from .bags import bag_inputs
from .optim import KINDS
from .towers import (
    ItemSide,
    QueryTower,
    feature_specs,
    hash_ids,
    init_embeddings,
)
from .train import (
    EXAMPLE_WEIGHTS,
    PRECISIONS,
    autocast,
    cpu_bf16_flags,
    model_precision,
)

LOSSES = ("full", "sampled-uniform", "sampled-popularity", "in-batch", "hard-negatives", "positives-only")
OPTIMIZERS = ("adam", "adagrad")
ITEM_TOWER_MODES = (None, "add", "replace")
HASH_SCOPES = ("all", "inputs")
BIAS_INITS = ("zero", "log-popularity")
HISTORY_DROPOUT = 0.1  # measured: most of the new-user gain for the least warm cost
TABLE_OPTIMIZER = "rowwise-adagrad"  # measured: faster at 1e5 items and better on ml-100k
TABLE_LR = 0.05
FEATURE_DIM = 16  # width of each feature embedding (capped at dim): gender has 2 values
TABLE_SYNCS = ("gather", "touched", "dense", "sparse")  # softmax_ddp
TABLE_SYNC = "gather"  # measured: softmax_ddp, "Table synchronisation"
SERVE_RUNTIMES = ("auto", "eager", "torchscript")
#: TorchScript's tower output must be within this of eager's (times max(1, |eager|)).
SERVE_TOLERANCE = 1e-5
#: the same in bf16 (``precision``): the trace's frozen matmul-then-add rounds apart from eager's
#: fused ``addmm`` by about one bf16 step (2^-8 relative)
SERVE_TOLERANCE_BF16 = 2.0 ** -6
#: under ``auto`` eager replaces TorchScript only when this many times faster inside the lean path
AUTO_MARGIN = 1.25
AUTO_ROUNDS = 3  # rounds of the lean-path timing behind ``auto`` (min over rounds of the median)
SERVE_WEIGHT_CACHE = 512  # the lean path keeps the 1/len weight tensors of bags up to this long
DDP_TIMEOUT = 600.0  # seconds a rank waits for the others


class _Net(torch.nn.Module):
    def __init__(self, query: QueryTower, item: ItemSide):
        super().__init__()
        self.query = query
        self.item = item


class OneQueryTower(torch.nn.Module):
    """The query tower for one request as a module of flat tensors ``(flat, offsets, weights,
    *features)`` (no history: the features alone): the history bag pooled by ``embedding_bag``
    whatever regime the tower was trained in (the dense regime's scatter-then-matmul computes
    the same weighted sum, but a trace of it would bake in the traced bag's length)."""

    def __init__(self, query: QueryTower, names: list[str]):
        super().__init__()
        self.query = query
        self.names = list(names)
        self.use_history = bool(query.use_history)

    def forward(self, *args):
        parts = []
        rest = args
        if self.use_history:
            flat, offsets, weights = args[0], args[1], args[2]
            rest = args[3:]
            rows = hash_ids(flat, self.query.buckets, 7)
            parts.append(torch.nn.functional.embedding_bag(
                rows, self.query.history.weight, offsets, mode="sum", per_sample_weights=weights))
        if self.query.features is not None:
            parts.append(self.query.features(dict(zip(self.names, rest, strict=True))))
        return self.query.mlp(torch.cat(parts, dim=1))


def trace_tower(module: torch.nn.Module, example: tuple):
    """TorchScript of a one-request tower ``module`` (trace on ``example``, freeze,
    ``optimize_for_inference``): the model's serving runtime and ``bench/tower_runtime``'s."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.freeze(torch.jit.trace(module, example, check_trace=False))
        return torch.jit.optimize_for_inference(traced)


def lean_timings(model: SoftmaxDNN, fns: dict, requests: list, rounds: int = AUTO_ROUNDS,
                 reps: int = 5) -> dict:
    """µs of one lean request (``recommend_one`` end to end: tower, ``V @ q``, top-k) with each
    tower runtime of ``fns`` ({name: fn}) over ``requests`` ((user, history) pairs), at the
    current thread count: the minimum over ``rounds`` interleaved rounds of the round's median.
    Module level, so a test can replace it."""
    reqs = [(int(u), model._history_set(h)) for u, h in requests]
    best = {name: float("inf") for name in fns}
    for fn in fns.values():  # warm-up
        for u, h in reqs:
            model._lean(fn, u, h, 10)
    for _ in range(max(1, int(rounds))):
        for name, fn in fns.items():
            t = []
            for _ in range(reps):
                for u, h in reqs:
                    t0 = time.perf_counter()
                    model._lean(fn, u, h, 10)
                    t.append(time.perf_counter() - t0)
            best[name] = min(best[name], float(np.median(t)) * 1e6)
    return {name: round(v, 3) for name, v in best.items()}


def _trace_query_tower(model: SoftmaxDNN, example: tuple):
    """TorchScript of :class:`OneQueryTower` traced on ``example`` (one request's tensors).
    Module level, so a test can replace it."""
    names = [sp["name"] for sp in model.user_specs]
    with autocast(model):  # bf16: the trace records the casts and the bf16 matmuls
        return trace_tower(OneQueryTower(model.net.query, names).eval(), example)


class SoftmaxDNN(RecommenderBase):
    """Two-tower softmax recommender: scores ``s_j(x) = <psi(x), V_j> (+ b_j)``.

    Parameters
    ----------
    dim : int
        Embedding dimension d (query output, item embeddings, feature embeddings).
    hidden : tuple of int
        Hidden widths of the query MLP (ReLU, optional LayerNorm).
    loss : str
        One of :data:`LOSSES`.
    n_negatives : int
        m, negatives per batch (sampled) or per row (hard-negatives).
    hard_pool : int or None
        Uniform candidate pool for ``hard-negatives`` (default ``min(n_items, 4 m)``).
    gravity : float
        lambda_g; adds ``lambda_g * sum((Q^T Q) * (V^T V)) / (B n)`` to the loss.
    use_history, use_user_features : bool
        Query inputs (at least one must be on).
    item_tower : {None, "add", "replace"}
        Item-feature tower added to or replacing the free item embedding.
    hash_buckets : int or None
        Hash item ids and large categorical features into this many rows.
    hash_scope : {"all", "inputs"}
        What ``hash_buckets`` hashes: every table (``all``), or only the query tower's inputs
        (history items, user features; ``inputs``) with the item side (V, bias, item tower)
        exact, so every item keeps a score of its own.
    optimizer, lr, weight_decay, batch_size, epochs, patience, eval_k
        Training; early stopping on validation Recall@eval_k (``patience`` epochs).
    table_optimizer : {"rowwise-adagrad", "adam", "adagrad"} or None
        Optimizer of the item-id tables (history, V, bias) when their gradients are sparse (every
        loss but ``full``, no gravity): lazy updates of the touched rows (``softmax_optim``).
        ``rowwise-adagrad`` keeps one float of state per row, so a step moves a third of Adam's
        bytes per touched row; None: the tables use ``optimizer`` and ``lr``. Dense tables always
        use ``optimizer``.
    table_lr : float or None
        Learning rate of ``table_optimizer`` (None: ``lr``).
    max_history : int or None
        Cap on training bag size (seeded subsample).
    history_dropout : float
        Probability in [0, 1) that a training example's history bag is emptied (cold start).
    item_bias : bool
        Learn a per-item bias b_j added to every logit and score.
    bias_init : {"zero", "log-popularity"}
        Start of b: zeros, or centred log(1 + training count) so scores start at the
        popularity ranking (measured on ml-100k new users: no better than zero).
    feature_dim : int
        Width of each user/item feature embedding (capped at ``dim``); the query MLP's input is
        ``dim + feature_dim * n_features``.
    example_weight : {"none", "linear", "log"}
        Weight of each training example from its interaction value c: ``1 + alpha c``
        (``linear``), ``1 + alpha log(1 + c / eps)`` (``log``), 1 (``none``); weighted mean loss.
    alpha, eps : float
        Constants of ``example_weight`` (as WALS's ``alpha``, ``eps``).
    workers : int
        Data-parallel ranks (1: single process). Global batch ``batch_size``, per-rank batch
        ``batch_size / workers``, learning rates unchanged; ``threads`` per rank.
    table_sync : {"gather", "touched", "dense", "sparse"}
        How ranks combine the sparse item-table gradients (``softmax_ddp``): all-gather the
        touched rows (default, measured), all-reduce the union of touched rows, all-reduce the
        whole table, gloo's sparse all-reduce (CPU only).
    ddp_timeout : float
        Seconds any rank waits for the others (process-group timeout): a hung or dead rank ends
        the fit with a RuntimeError after at most this long. Must exceed rank 0's validation.
    serve_runtime : {"auto", "eager", "torchscript"}
        How :meth:`recommend_one` (the lean single-query path) runs the query tower: eager, a
        TorchScript trace (checked equal to eager within :data:`SERVE_TOLERANCE`; raises if it
        cannot be built or differs), or ``auto``: TorchScript when correct, else eager (the
        reason in :meth:`serve_info`). Does not change ``fit``, ``score`` or ``recommend``.
    precision : {"fp32", "bf16", "auto"}
        Precision of the matmuls of training and of the query tower (``torch.autocast``
        bfloat16; tables, parameters, optimiser state and the loss's reduction stay float32):
        ``auto`` is bf16 on a CPU with AMX or AVX-512 BF16 or a bf16 CUDA device, else fp32
        (``precision_resolved``, :meth:`precision_info`). ``workers > 1`` trains in fp32.
    seed, device, threads, progress, name
        Determinism, ``"cpu"``/``"cuda"``, torch threads during fit, tqdm bar, result name.

    Attributes
    ----------
    train_info : dict
        Set by ``fit``: workers, processes, backend, table_sync, global and per-rank batch, lr,
        per-epoch seconds (and seconds in table synchronisation, launch seconds with workers).
    """

    family = "softmax"
    serving_modes = ("query-tower", None)
    ablation_switches = ("use_history", "use_user_features")
    one_pass = {"epochs": 1}
    quick_caps = {"epochs": 2, "patience": 1}
    new_item_params = {"item_tower": "add"}
    folding_sweep = "dim"

    PARAMS = {
        "dim": Whole(low=1), "hidden": ListOf(item=Whole(low=1)), "layer_norm": Flag(),
        "loss": Choice(values=LOSSES), "n_negatives": Whole(low=1),
        "hard_pool": Whole(low=1, none=True), "gravity": Num(low=0),
        "use_history": Flag(), "use_user_features": Flag(),
        "item_tower": Choice(values=ITEM_TOWER_MODES), "hash_buckets": Whole(low=1, none=True),
        "hash_scope": Choice(values=HASH_SCOPES), "optimizer": Choice(values=OPTIMIZERS),
        "lr": Num(low=0, open_low=True), "weight_decay": Num(low=0),
        "table_optimizer": Choice(values=(None, *KINDS)),
        "table_lr": Num(low=0, open_low=True, none=True),
        "batch_size": Whole(low=1), "epochs": Whole(low=1), "patience": Whole(low=0),
        "eval_k": Whole(low=1), "max_history": Whole(low=1, none=True),
        "history_dropout": Num(low=0, high=1, open_high=True), "item_bias": Flag(),
        "bias_init": Choice(values=BIAS_INITS), "feature_dim": Whole(low=1),
        "example_weight": Choice(values=EXAMPLE_WEIGHTS), "alpha": Num(low=0),
        "eps": Num(low=0, open_low=True), "workers": Whole(low=1),
        "table_sync": Choice(values=TABLE_SYNCS), "ddp_timeout": Num(low=0, open_low=True),
        "serve_runtime": Choice(values=SERVE_RUNTIMES), "precision": Choice(values=PRECISIONS),
        "seed": Whole(low=0),
        "device": Choice(values=("cpu", "cuda")), "threads": Whole(low=1), "progress": Flag(),
        "name": Text(none=True),
    }

    @property
    def memory_params(self) -> tuple:
        """What sets a fit's size: ``dim``, and ``workers`` (a copy per rank) when > 1 (the
        ``full`` loss's batch x items logits show as a part of their own)."""
        return ("dim", *(("workers",) if self.workers > 1 else ()))

    def embedding_role(self) -> str:
        return "no-negatives" if self.loss == "positives-only" else "negatives"

    @classmethod
    def _check_trainable(cls, p: dict) -> None:
        """Refuse the combinations that train nothing (each parameter is in range)."""
        owner = cls.__name__
        if not (p["use_history"] or p["use_user_features"]):
            raise ParamError(owner, "use_history", False, "use_history and use_user_features "
                             "are both false: the query tower needs an input")
        if p["loss"] == "in-batch" and p["batch_size"] < 2:
            raise ParamError(owner, "batch_size", p["batch_size"], "loss='in-batch' needs "
                             "batch_size >= 2: a batch's other items are its negatives")
        if p["batch_size"] < p["workers"]:
            raise ParamError(owner, "batch_size", p["batch_size"], f"workers={p['workers']} need "
                             "batch_size >= workers: each rank computes a share of every batch")

    def __init__(self, dim=64, hidden=(256,), layer_norm=False, loss="full", n_negatives=200,
                 hard_pool=None, gravity=0.0, use_history=True, use_user_features=True,
                 item_tower=None, hash_buckets=None, hash_scope="all", optimizer="adam", lr=1e-3,
                 weight_decay=0.0, table_optimizer=TABLE_OPTIMIZER, table_lr=TABLE_LR,
                 batch_size=256, epochs=20, patience=3, eval_k=20, max_history=None,
                 history_dropout=HISTORY_DROPOUT, item_bias=False, bias_init="zero",
                 feature_dim=FEATURE_DIM, example_weight="none", alpha=1.0, eps=1.0, workers=1,
                 table_sync=TABLE_SYNC, ddp_timeout=DDP_TIMEOUT, serve_runtime="auto",
                 precision="fp32", seed=0, device="cpu", threads=1, progress=False, name=None):
        p = self.checked_params(locals())  # type and range of each (PARAMS)
        self._check_trainable(p)
        self.dim, self.hidden, self.layer_norm = int(dim), tuple(int(h) for h in hidden), bool(layer_norm)
        self.loss, self.n_negatives, self.hard_pool = loss, int(n_negatives), hard_pool
        self.gravity = float(gravity)
        self.use_history, self.use_user_features = bool(use_history), bool(use_user_features)
        self.item_tower = item_tower
        self.hash_buckets = None if hash_buckets is None else int(hash_buckets)
        self.hash_scope = hash_scope
        self.optimizer, self.lr, self.weight_decay = optimizer, float(lr), float(weight_decay)
        self.table_optimizer = table_optimizer
        self.table_lr = None if table_lr is None else float(table_lr)
        self.batch_size, self.epochs, self.patience = int(batch_size), int(epochs), int(patience)
        self.eval_k = int(eval_k)
        self.max_history = None if max_history is None else int(max_history)
        self.history_dropout, self.item_bias = float(history_dropout), bool(item_bias)
        self.bias_init = bias_init
        self.feature_dim = min(int(feature_dim), self.dim)
        self.example_weight, self.alpha, self.eps = example_weight, float(alpha), float(eps)
        self.workers, self.table_sync = int(workers), table_sync
        self.ddp_timeout = float(ddp_timeout)
        self.serve_runtime = serve_runtime
        self.precision, self.precision_resolved = precision, model_precision(precision, workers, device)
        self.seed, self.device, self.threads, self.progress = int(seed), device, int(threads), progress
        self.name = name or f"softmax-{loss}" + ("-gravity" if self.gravity > 0 else "")
        self.net = None
        self.history: list[dict] = []
        self.eval_seconds = 0.0
        self.fit_seconds = 0.0
        self._V = None
        self._V_np = None
        self._b = None
        self._b_np = None
        self._serve = None  # the lean path's tower runtimes, built on the first request
        self._logits_buf = None
        self.cold_bias = 0.0  # bias given to new items: the mean bias of trained items
        self.train_info: dict = {}

    # ------------------------------------------------------------------ params
    def get_params(self) -> dict:
        return {
            "dim": self.dim, "hidden": list(self.hidden), "layer_norm": self.layer_norm,
            "loss": self.loss, "n_negatives": self.n_negatives, "hard_pool": self.hard_pool,
            "gravity": self.gravity, "use_history": self.use_history,
            "use_user_features": self.use_user_features, "item_tower": self.item_tower,
            "hash_buckets": self.hash_buckets, "hash_scope": self.hash_scope,
            "optimizer": self.optimizer, "lr": self.lr,
            "table_optimizer": self.table_optimizer, "table_lr": self.table_lr,
            "weight_decay": self.weight_decay, "batch_size": self.batch_size, "epochs": self.epochs,
            "patience": self.patience, "eval_k": self.eval_k, "max_history": self.max_history,
            "history_dropout": self.history_dropout, "item_bias": self.item_bias,
            "bias_init": self.bias_init,
            "feature_dim": self.feature_dim, "example_weight": self.example_weight,
            "alpha": self.alpha, "eps": self.eps, "workers": self.workers,
            "table_sync": self.table_sync, "ddp_timeout": self.ddp_timeout,
            "serve_runtime": self.serve_runtime, "precision": self.precision,
            "seed": self.seed, "device": self.device,
            "threads": self.threads, "name": self.name,
        }

    def precision_info(self) -> dict:
        """``{"precision" (requested), "resolved" ("fp32" | "bf16"), "native" (the CPU's bf16
        flags, or the CUDA device)}``: what training and the query tower run in."""
        native = ("cuda" if self.device == "cuda" else ",".join(cpu_bf16_flags()) or None)
        return {"precision": self.precision, "resolved": self.precision_resolved, "native": native}

    @property
    def sparse_items(self) -> bool:
        """Whether the item-id tables (history, V) get sparse gradients and lazy updates: when the
        loss only touches gathered rows (every loss but ``full``, and no gravity)."""
        return self.loss != "full" and self.gravity == 0

    # ------------------------------------------------------------------ build
    def _torch_device(self) -> torch.device:
        if self.device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device='cuda' requested but torch sees no CUDA device")
        return torch.device(self.device)

    def _build(self, n_users: int, n_items: int, user_specs: list[dict], item_specs: list[dict]) -> None:
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.user_specs, self.item_specs = user_specs, item_specs
        if not self.use_history and not user_specs:
            raise ValueError("use_history=False needs user features, but the training data has none")
        if self.item_tower is not None and not item_specs:
            raise ValueError(f"item_tower={self.item_tower!r} needs item features, but the training data has none")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            query = QueryTower(n_items, self.dim, self.hidden, self.layer_norm, user_specs,
                               self.use_history, self.hash_buckets, sparse=self.sparse_items,
                               feature_dim=self.feature_dim)
            item_buckets = self.hash_buckets if self.hash_scope == "all" else None
            item = ItemSide(n_items, self.dim, item_specs, self.item_tower, item_buckets,
                            sparse=self.sparse_items, bias=self.item_bias, feature_dim=self.feature_dim)
            self.net = _Net(query, item)
            init_embeddings(self.net)
        self.net.to(self._torch_device())

    def _feature_tensors(self, feats: dict, specs: list[dict]) -> dict:
        """Tensors of ``feats`` for the layers of ``specs``: codes int64, multi-hot float32."""
        dev = self._torch_device()
        out = {}
        for spec in specs:
            arr = np.asarray(feats[spec["name"]])
            out[spec["name"]] = torch.as_tensor(
                arr.astype(np.int64) if spec["kind"] == "cat" else arr.astype(np.float32), device=dev)
        return out

    def _set_features(self, user_features: dict, item_features: dict) -> None:
        self._uf_np = {s["name"]: np.asarray(user_features[s["name"]]) for s in self.user_specs}
        self._if_np = {s["name"]: np.asarray(item_features[s["name"]]) for s in self.item_specs}
        self._uf = self._feature_tensors(user_features, self.user_specs)
        self._if = self._feature_tensors(item_features, self.item_specs)

    # ------------------------------------------------------------------ forward helpers
    def _user_feats(self, users) -> dict | None:
        """Feature tensors of ``users`` (numpy indices are checked; tensors come from fit)."""
        if not self.user_specs:
            return None
        if not isinstance(users, torch.Tensor):
            users = np.asarray(users, dtype=np.int64)
            if len(users) and (users.min() < 0 or users.max() >= self.n_users):
                raise IndexError(f"{self.name}: user index out of range 0..{self.n_users - 1} (features unknown)")
        idx = torch.as_tensor(users, device=self._uf[self.user_specs[0]["name"]].device)
        return {k: v[idx] for k, v in self._uf.items()}

    def _query(self, flat, offsets, weights, users) -> torch.Tensor:
        dev = self._torch_device()
        bags = None
        if self.use_history:
            bags = (torch.as_tensor(flat, device=dev), torch.as_tensor(offsets, device=dev),
                    torch.as_tensor(weights, device=dev))
        with autocast(self):  # bf16: the tower's matmuls (float32 out of training's loss anyway)
            return self.net.query(bags, self._user_feats(users)).float()

    def _queries_forward(self, queries: Queries) -> torch.Tensor:
        h = queries.history
        if h.shape[1] != self.n_items:
            raise ValueError(f"{self.name}: queries have {h.shape[1]} items, model has {self.n_items}")
        if self.use_history:
            lens = np.diff(h.indptr)
            flat, offsets, weights = bag_inputs(h.indices, h.indptr[:-1].astype(np.int64), lens, None, None)
        else:
            flat = offsets = weights = None
        return self._query(flat, offsets, weights, queries.users)

    def _all_items(self) -> torch.Tensor:
        return self.net.item(None, self._if)

    def _refresh_cache(self) -> None:
        with torch.inference_mode():
            self._V = self._all_items().detach().clone()
            b = self.net.item.biases(None)
            self._b = None if b is None else b.detach().clone()
        self._V_np = self._V.cpu().numpy()
        self._b_np = None if self._b is None else self._b.cpu().numpy()
        self._serve = None  # new weights: the serving trace (weights baked in) is rebuilt
        trained = getattr(self, "_trained_mask", None)
        if self._b is not None and trained is not None and trained.any():
            self.cold_bias = float(self._b.cpu().numpy()[trained].mean())

    # ------------------------------------------------------------------ training
    def fit(self, train, valid=None, callback=None) -> SoftmaxDNN:
        """Train on ``train``, early stopping on ``valid``; ``callback(epoch, model)`` after
        each epoch (True stops). With ``workers > 1`` the ranks train in child processes and
        the fitted model here is an ordinary single-process model (``softmax_ddp.fit``)."""
        self.check_memory(train)  # before any array: refuse what cannot fit, saying how much
        self._prepare(train)
        if self.workers > 1:
            from . import ddp as softmax_ddp  # lazy: only with workers > 1

            softmax_ddp.fit(self, train, valid, callback)
            return self
        softmax_train.train(self, train, valid, callback)
        self.train_info = {"workers": 1, "processes": 1, "backend": None, "table_sync": None,
                           "global_batch": self.batch_size, "rank_batch": self.batch_size,
                           "lr": self.lr, "table_lr": self.table_lr,
                           "epoch_seconds": [h["wall_s"] for h in self.history]}
        return self

    def memory_parts(self, n_users: int, n_items: int, nnz: int) -> dict:
        return softmax_train.memory_parts(self, n_users, n_items)

    def _prepare(self, train) -> None:
        """Check ``train``, build the network and set the feature tensors (before training)."""
        check_users_items(train.matrix, what="train.matrix")
        uf = train.user_features if self.use_user_features else {}
        self._build(train.n_users, train.n_items, feature_specs(uf),
                    feature_specs(train.item_features) if self.item_tower is not None else [])
        self._set_features(uf, train.item_features)

    def _optimizers(self) -> list:
        return softmax_train.optimizers(self)

    def _init_bias(self, pop: np.ndarray) -> None:
        softmax_train.init_bias(self, pop)

    # ------------------------------------------------------------------ inference
    def _check_fitted(self) -> None:
        if self.net is None or self._V is None:
            raise RuntimeError(f"{self.name}: call fit() (or load()) first")

    def query_embeddings(self, queries: Queries) -> np.ndarray:
        """psi(x) of each query (B x d, float32)."""
        self._check_fitted()
        with torch.inference_mode():
            return self._queries_forward(queries).cpu().numpy()

    def item_embeddings(self) -> np.ndarray:
        """Item embeddings V (n_items x d, float32), free table and/or tower; the item bias is
        separate (:meth:`item_biases`): ``score = query_embeddings @ V.T + item_biases``."""
        self._check_fitted()
        return self._V_np

    def item_biases(self) -> np.ndarray:
        """Per-item biases b (n_items, float32); zeros when ``item_bias`` is off."""
        self._check_fitted()
        if self._b is None:
            return np.zeros(self.n_items, dtype=np.float32)
        return self._b.cpu().numpy()

    def score(self, queries: Queries) -> np.ndarray:
        self._check_fitted()
        with torch.inference_mode():
            q = self._queries_forward(queries)
            s = q @ self._V.T if self._b is None else torch.addmm(self._b[None, :], q, self._V.T)
            scores = s.cpu().numpy()
        return self._check_scores(scores, queries)

    # ------------------------------------------------------------------ one request
    def recommend_one(self, user: int, history_items=(), k: int = 10, known: bool = True,
                      runtime: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The lean single-query path (:meth:`RecommenderBase.recommend_one`: ``recommend``'s
        items for the one-row query), its query tower run by ``runtime`` (default
        ``serve_runtime``; see :meth:`serve_info` for what ``auto`` chose). ``known`` changes
        nothing: the tower embeds every query the same way."""
        self._check_fitted()
        hist = self._history_set(history_items)
        if self._V.device.type != "cpu" or (hist.size and (hist[0] < 0 or hist[-1] >= self.n_items)):
            return self._recommend_one_generic(user, hist, k, known)  # its own checks and errors
        return self._lean(self._serve_fn(runtime or self.serve_runtime), int(user), hist, k)

    def _lean(self, fn, user: int, hist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The lean path with tower runtime ``fn`` (``hist`` sorted unique ids in range)."""
        q = fn(*self._one_inputs(user, hist))
        scores = self._V_np @ q
        if self._b_np is not None:
            scores += self._b_np
        if hist.size:
            scores[hist] = -np.inf
        return topk_one(scores, k)

    def query_embedding_one(self, user: int, history_items=(), runtime: str | None = None) -> np.ndarray:
        """psi(x) of one request (d,), through the lean path's tower runtime (``runtime``,
        default ``serve_runtime``): the embed step of :meth:`recommend_one` alone."""
        self._check_fitted()
        hist = self._history_set(history_items)
        if self._V.device.type != "cpu" or (hist.size and (hist[0] < 0 or hist[-1] >= self.n_items)):
            return self.query_embeddings(self._one_query(user, hist, True))[0]
        return self._serve_fn(runtime or self.serve_runtime)(*self._one_inputs(int(user), hist))

    @staticmethod
    def _history_set(history_items) -> np.ndarray:
        """The request's history as sorted unique int64 ids (the CSR row ``recommend`` pools)."""
        hist = np.asarray(history_items, dtype=np.int64).reshape(-1)
        if hist.size > 1:
            hist = np.sort(hist)
            if (hist[1:] == hist[:-1]).any():
                hist = np.unique(hist)
        return hist

    def _one_inputs(self, user: int, hist: np.ndarray) -> tuple:
        """One request's tower inputs ``(flat, offsets, weights, *features)`` (history off:
        the features alone); ``hist`` sorted unique item ids."""
        args = ()
        if self.use_history:
            n = len(hist)
            w = self._serve_weights.get(n)
            if w is None:
                w = torch.full((n,), 1.0 / n, dtype=torch.float32)
                if n <= SERVE_WEIGHT_CACHE:
                    self._serve_weights[n] = w
            args = (torch.from_numpy(hist), self._serve_offsets, w)
        if self.user_specs:
            if not 0 <= user < self.n_users:
                raise IndexError(f"{self.name}: user index out of range 0..{self.n_users - 1} (features unknown)")
            args += tuple(self._uf[sp["name"]][user:user + 1] for sp in self.user_specs)
        return args

    def _eager_one(self, *args) -> np.ndarray:
        """The tower's own forward on one request's inputs (the generic path's computation)."""
        bags, rest = (args[:3], args[3:]) if self.use_history else (None, args)
        feats = ({sp["name"]: x for sp, x in zip(self.user_specs, rest, strict=True)}
                 if self.user_specs else None)
        with torch.inference_mode(), autocast(self):
            return self.net.query(bags, feats)[0].float().numpy()

    def _serve_fn(self, runtime: str):
        if runtime not in SERVE_RUNTIMES:
            raise ValueError(f"runtime={runtime!r}: choose one of {', '.join(SERVE_RUNTIMES)}")
        serve = self._serving()
        if runtime == "eager":
            return self._eager_one
        if runtime == "torchscript" and serve["torchscript"] is None:
            serve = self._serving(trace=True)
            if serve["torchscript"] is None:
                raise RuntimeError(f"{self.name}: serve_runtime='torchscript' unavailable: {serve['reason']}")
        if runtime == "auto":  # built, and chosen at the current thread count
            serve = self._serving(trace=True)
        return serve["torchscript"] if runtime == "torchscript" else serve["auto"]

    def _serving(self, trace: bool = False) -> dict:
        """The lean path's runtimes, built once per set of weights: preallocated inputs, and
        with ``trace`` the TorchScript tower checked against eager on a few requests."""
        serve = self._serve
        if serve is None:
            self._serve_offsets = torch.zeros(1, dtype=torch.int64)
            self._serve_weights = {0: torch.zeros(0, dtype=torch.float32)}  # bag length -> 1/len
            serve = self._serve = {"torchscript": None, "auto": None, "reason": None,
                                   "max_abs_diff": None, "checked": 0, "lean_us": None,
                                   "threads": None}
        if trace and serve["auto"] is None:
            self._build_trace(serve)
        elif trace and serve["torchscript"] is not None and serve["threads"] != torch.get_num_threads():
            self._choose_auto(serve)  # the choice was timed at another thread count
        return serve

    def _choose_auto(self, serve: dict) -> None:
        """``auto``'s runtime: TorchScript unless eager is :data:`AUTO_MARGIN` times faster
        through the whole lean path at the current thread count (:func:`lean_timings`)."""
        fns = {"torchscript": serve["torchscript"], "eager": self._eager_one}
        us = lean_timings(self, fns, self._check_requests())
        threads = torch.get_num_threads()
        serve.update(lean_us=us, threads=threads)
        if us["eager"] * AUTO_MARGIN < us["torchscript"]:
            serve.update(auto=self._eager_one,
                         reason=f"eager faster inside the lean path at {threads} thread(s) "
                                f"({us['eager']:.0f} vs {us['torchscript']:.0f} us)")
        else:
            serve.update(auto=serve["torchscript"], reason=None)

    def _check_requests(self) -> list[tuple]:
        """A few requests the trace must agree with eager on: empty, one-item, short and long
        histories, first, middle and last users."""
        rng = np.random.default_rng(self.seed)
        n = self.n_items
        hists = [np.zeros(0, np.int64), np.array([n - 1]), np.arange(min(n, 3)),
                 np.sort(rng.choice(n, size=min(n, 25), replace=False))]
        users = [0, self.n_users // 2, max(0, self.n_users - 1)]
        return [(users[i % len(users)], h) for i, h in enumerate(hists)]

    def _build_trace(self, serve: dict) -> None:
        def fail(reason):
            serve.update(torchscript=None, auto=self._eager_one, reason=reason)

        checks = [self._one_inputs(u, h) for u, h in self._check_requests()]
        try:
            traced = _trace_query_tower(self, checks[-1])

            def torchscript(*args):
                # no grad-mode context: the frozen trace's weights are constants and the inputs
                # never require grad, so no graph is recorded (the context costs a few µs)
                return traced(*args)[0].float().numpy()

            worst = 0.0
            for args in checks:
                ref = self._eager_one(*args)
                out = torchscript(*args)
                if out.shape != ref.shape:
                    return fail(f"TorchScript output shape {out.shape} != eager {ref.shape}")
                worst = max(worst, float(np.max(np.abs(out - ref)) / max(1.0, float(np.max(np.abs(ref))))))
        except Exception as exc:  # noqa: BLE001 - a runtime that does not build falls back
            return fail(f"TorchScript failed: {type(exc).__name__}: {exc}"[:300])
        serve.update(max_abs_diff=worst, checked=len(checks))
        tol = SERVE_TOLERANCE_BF16 if self.precision_resolved == "bf16" else SERVE_TOLERANCE
        if not worst <= tol:
            return fail(f"TorchScript output differs from eager by {worst:.3g} (> {tol:g})")
        serve.update(torchscript=torchscript, auto=torchscript, reason=None)
        self._choose_auto(serve)

    def serve_info(self, runtime: str | None = None) -> dict:
        """What :meth:`recommend_one` runs the tower with: ``{"requested", "runtime"
        ("eager" | "torchscript"), "reason" (why not TorchScript, when not), "max_abs_diff"
        (TorchScript vs eager, relative to max(1, |eager|), on ``checked`` requests)}``;
        builds the runtime if it is not built yet."""
        self._check_fitted()
        requested = runtime or self.serve_runtime
        if self._V.device.type != "cpu":
            return {"requested": requested, "runtime": "generic", "reason": "not on CPU",
                    "max_abs_diff": None, "checked": 0}
        if requested == "eager":
            serve = self._serving()
            chosen = "eager"
            reason = "serve_runtime='eager'"
        else:
            serve = self._serving(trace=True)
            chosen = "torchscript" if serve["auto"] is serve["torchscript"] and serve["torchscript"] else "eager"
            reason = serve["reason"]
        return {"requested": requested, "runtime": chosen, "reason": reason,
                "max_abs_diff": serve["max_abs_diff"], "checked": serve["checked"],
                "lean_us": serve.get("lean_us"), "threads": serve.get("threads")}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_serve"] = None  # TorchScript functions do not pickle; rebuilt on the next request
        return state

    def item_cold_scores(self, queries: Queries, items, revealed=None) -> np.ndarray:
        """Scores (B x len(items)) of (new) items from the item tower alone.

        ``revealed`` (interactions of the new items seen after training) is ignored: the DNN is
        not retrained and has no fold-in for items; the tower output is the item's embedding.
        With ``item_bias`` every new item gets the mean bias of the trained items (its own row
        was never trained), which keeps cold scores on the scale of :meth:`score`.
        """
        self._check_fitted()
        if self.net.item.tower is None:
            raise ValueError(f"{self.name}: item_cold_scores needs item_tower='add' or 'replace'")
        items = np.asarray(items, dtype=np.int64)
        idx = torch.as_tensor(items, device=self._V.device)
        return self._tower_scores(queries, {k: v[idx] for k, v in self._if.items()})

    def feature_item_scores(self, queries: Queries, features: dict) -> np.ndarray:
        """Scores (B x m) of m items outside the catalogue (no index, no interactions) from
        their item features alone (``features``: name -> m rows, coded as the training data's),
        through the item tower; as :meth:`item_cold_scores` otherwise."""
        self._check_fitted()
        if self.net.item.tower is None:
            raise ValueError(f"{self.name}: feature_item_scores needs item_tower='add' or 'replace'")
        for spec in self.item_specs:
            arr = np.asarray(features[spec["name"]]) if spec["name"] in features else None
            if arr is None or (spec["kind"] == "multi" and arr.shape[1:] != (spec["size"],)):
                raise ValueError(f"{self.name}: item feature {spec['name']!r} missing or not "
                                 f"{spec['size']} columns wide as in training")
        return self._tower_scores(queries, self._feature_tensors(features, self.item_specs))

    def _tower_scores(self, queries: Queries, item_feats: dict) -> np.ndarray:
        with torch.inference_mode():
            t = self.net.item.tower(item_feats)
            s = self._queries_forward(queries) @ t.T
            if self._b is not None:
                s = s + self.cold_bias
            return s.cpu().numpy()

    def embedding_bytes(self) -> int:
        """Bytes of all embedding tables (history items, item V, categorical features), float32."""
        self._check_built()
        return 4 * (self.net.query.embedding_params() + self.net.item.embedding_params())

    def n_parameters(self) -> int:
        """All trainable parameters (towers included)."""
        self._check_built()
        return sum(p.numel() for p in self.net.parameters())

    def _check_built(self) -> None:
        if self.net is None:
            raise RuntimeError(f"{self.name}: call fit() (or load()) first")

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """``params.json`` (hyper-parameters, sizes, feature specs), ``state.pt``, ``features.npz``."""
        softmax_persist.save(self, path)

    @classmethod
    def load(cls, path) -> SoftmaxDNN:
        return softmax_persist.load(cls, path)
