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
  users x items 0/1 matrix built once per fit (when it has at most ``DENSE_POOL_MAX`` cells):
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
"""

from __future__ import annotations

import copy
import io
import time
from pathlib import Path

import numpy as np
import torch

from mfsoftmax.datasets.core import check_users_items
from mfsoftmax.runtime import atomic_write_bytes

from . import softmax_losses as L
from .base import Queries, RecommenderBase
from .softmax_optim import KINDS, LazyRowOptimizer
from .softmax_towers import (
    DenseBags,
    ItemSide,
    QueryTower,
    feature_specs,
    init_embeddings,
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
DENSE_POOL_MAX = 2 ** 25  # cells of the dense users x items pooling matrix (128 MiB float32)


class _Net(torch.nn.Module):
    def __init__(self, query: QueryTower, item: ItemSide):
        super().__init__()
        self.query = query
        self.item = item


def _fused_ok(device: str) -> bool:
    return device in ("cpu", "cuda")


def _bags(items: np.ndarray, starts: np.ndarray, lens: np.ndarray, skip: np.ndarray | None,
          max_len: int | None):
    """Flat item ids, offsets and 1/len weights of bags ``items[starts[b] : starts[b] + lens[b]]``
    minus local position ``skip[b]`` (when given), truncated to ``max_len`` items."""
    B = len(starts)
    total = int(lens.sum())
    seg = np.repeat(np.arange(B), lens)
    local = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
    flat = items[np.repeat(starts, lens) + local]
    if skip is not None or max_len is not None:
        keep = np.ones(total, dtype=bool)
        rank = local
        if skip is not None:
            sk = skip[seg]
            keep = local != sk
            rank = local - (local > sk)
        if max_len is not None:
            keep &= rank < max_len
        flat, seg = flat[keep], seg[keep]
    counts = np.bincount(seg, minlength=B)
    offsets = np.zeros(B, dtype=np.int64)
    np.cumsum(counts[:-1], out=offsets[1:])
    weights = (1.0 / np.maximum(counts, 1))[seg].astype(np.float32)
    return flat.astype(np.int64), offsets, weights


def _dense_bags(A: torch.Tensor, inv_len: torch.Tensor, users: torch.Tensor, pos: torch.Tensor,
                keep: np.ndarray | None) -> DenseBags:
    """Each example's bag as row ``users[b]`` of the 0/1 matrix ``A`` minus its target
    ``pos[b]``, scaled by ``inv_len[users[b]]`` = 1 / (len - 1), or by 0 where ``keep[b]`` is
    False (an emptied bag). A user's row is gathered once per batch (:class:`DenseBags`)."""
    uniq, inv = torch.unique(users, return_inverse=True)
    scale = inv_len[users]
    if keep is not None:
        scale = scale * torch.as_tensor(keep, dtype=scale.dtype, device=scale.device)
    return DenseBags(A.index_select(0, uniq), inv, pos, scale)


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
    seed, device, threads, progress, name
        Determinism, ``"cpu"``/``"cuda"``, torch threads during fit, tqdm bar, result name.
    """

    family = "softmax"
    serving_modes = ("query-tower", None)
    ablation_switches = ("use_history", "use_user_features")
    one_pass = {"epochs": 1}
    quick_caps = {"epochs": 2, "patience": 1}
    new_item_params = {"item_tower": "add"}
    folding_sweep = "dim"

    def embedding_role(self) -> str:
        return "no-negatives" if self.loss == "positives-only" else "negatives"

    def __init__(self, dim=64, hidden=(256,), layer_norm=False, loss="full", n_negatives=200,
                 hard_pool=None, gravity=0.0, use_history=True, use_user_features=True,
                 item_tower=None, hash_buckets=None, hash_scope="all", optimizer="adam", lr=1e-3,
                 weight_decay=0.0, table_optimizer=TABLE_OPTIMIZER, table_lr=TABLE_LR,
                 batch_size=256, epochs=20, patience=3, eval_k=20, max_history=None,
                 history_dropout=HISTORY_DROPOUT, item_bias=False, bias_init="zero",
                 feature_dim=FEATURE_DIM, seed=0, device="cpu", threads=1, progress=False, name=None):
        if loss not in LOSSES:
            raise ValueError(f"loss={loss!r}: choose one of {', '.join(LOSSES)}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if table_optimizer is not None and table_optimizer not in KINDS:
            raise ValueError(f"table_optimizer={table_optimizer!r}: choose None or one of {', '.join(KINDS)}")
        if table_lr is not None and not float(table_lr) > 0:
            raise ValueError(f"table_lr={table_lr} must be > 0 or None")
        if item_tower not in ITEM_TOWER_MODES:
            raise ValueError(f"item_tower={item_tower!r}: choose None, 'add' or 'replace'")
        if not (use_history or use_user_features):
            raise ValueError("use_history and use_user_features are both False: the query tower needs an input")
        for key, val in (("dim", dim), ("feature_dim", feature_dim), ("n_negatives", n_negatives),
                         ("batch_size", batch_size), ("eval_k", eval_k), ("threads", threads)):
            if int(val) < 1:
                raise ValueError(f"{key}={val} must be >= 1")
        if gravity < 0 or weight_decay < 0 or lr <= 0:
            raise ValueError(f"gravity={gravity}, weight_decay={weight_decay} must be >= 0 and lr={lr} > 0")
        if not 0.0 <= float(history_dropout) < 1.0:
            raise ValueError(f"history_dropout={history_dropout} must be in [0, 1)")
        if hash_buckets is not None and int(hash_buckets) < 1:
            raise ValueError(f"hash_buckets={hash_buckets} must be >= 1 or None")
        if bias_init not in BIAS_INITS:
            raise ValueError(f"bias_init={bias_init!r}: choose one of {', '.join(BIAS_INITS)}")
        if hash_scope not in HASH_SCOPES:
            raise ValueError(f"hash_scope={hash_scope!r}: choose one of {', '.join(HASH_SCOPES)}")
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
        self.seed, self.device, self.threads, self.progress = int(seed), device, int(threads), progress
        self.name = name or f"softmax-{loss}" + ("-gravity" if self.gravity > 0 else "")
        self.net = None
        self.history: list[dict] = []
        self.eval_seconds = 0.0
        self.fit_seconds = 0.0
        self._V = None
        self._V_np = None
        self._b = None
        self._logits_buf = None
        self.cold_bias = 0.0  # bias given to new items: the mean bias of trained items

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
            "feature_dim": self.feature_dim, "seed": self.seed, "device": self.device,
            "threads": self.threads, "name": self.name,
        }

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

    def _set_features(self, user_features: dict, item_features: dict) -> None:
        dev = self._torch_device()

        def tensors(feats, specs):
            out = {}
            for spec in specs:
                arr = np.asarray(feats[spec["name"]])
                out[spec["name"]] = torch.as_tensor(
                    arr.astype(np.int64) if spec["kind"] == "cat" else arr.astype(np.float32), device=dev)
            return out

        self._uf_np = {s["name"]: np.asarray(user_features[s["name"]]) for s in self.user_specs}
        self._if_np = {s["name"]: np.asarray(item_features[s["name"]]) for s in self.item_specs}
        self._uf = tensors(user_features, self.user_specs)
        self._if = tensors(item_features, self.item_specs)

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
        return self.net.query(bags, self._user_feats(users))

    def _queries_forward(self, queries: Queries) -> torch.Tensor:
        h = queries.history
        if h.shape[1] != self.n_items:
            raise ValueError(f"{self.name}: queries have {h.shape[1]} items, model has {self.n_items}")
        if self.use_history:
            lens = np.diff(h.indptr)
            flat, offsets, weights = _bags(h.indices, h.indptr[:-1].astype(np.int64), lens, None, None)
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
        trained = getattr(self, "_trained_mask", None)
        if self._b is not None and trained is not None and trained.any():
            self.cold_bias = float(self._b.cpu().numpy()[trained].mean())

    # ------------------------------------------------------------------ training
    def fit(self, train, valid=None, callback=None) -> SoftmaxDNN:
        check_users_items(train.matrix, what="train.matrix")
        uf = train.user_features if self.use_user_features else {}
        self._build(train.n_users, train.n_items, feature_specs(uf),
                    feature_specs(train.item_features) if self.item_tower is not None else [])
        self._set_features(uf, train.item_features)
        prev_threads = torch.get_num_threads()
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(self.threads)
        try:
            with threadpool_limits(limits=self.threads):
                self._train(train, valid, callback)
        finally:
            torch.set_num_threads(prev_threads)
        return self

    def _optimizers(self):
        sparse = []
        if self.sparse_items and self.use_history:
            sparse.append(self.net.query.history.weight)
        if self.sparse_items and self.net.item.free is not None:
            sparse.append(self.net.item.free.weight)
        if self.sparse_items and self.net.item.bias is not None:
            sparse.append(self.net.item.bias.weight)
        ids = {id(p) for p in sparse}
        dense = [p for p in self.net.parameters() if id(p) not in ids]
        cls = torch.optim.Adam if self.optimizer == "adam" else torch.optim.Adagrad
        # fused: one kernel per step for all dense parameters (3-4x faster than the default)
        opts = [cls(dense, lr=self.lr, weight_decay=self.weight_decay, fused=_fused_ok(self.device))]
        if sparse:
            kind, lr = ((self.optimizer, self.lr) if self.table_optimizer is None
                        else (self.table_optimizer, self.table_lr or self.lr))
            opts.append(LazyRowOptimizer(sparse, kind, lr=lr, weight_decay=self.weight_decay))
        return opts

    def _train(self, train, valid, callback) -> None:
        from mfsoftmax.evaluation import evaluate

        dev = self._torch_device()
        rng = np.random.default_rng(self.seed)
        m = train.matrix
        n, B, k = self.n_items, self.batch_size, self.n_negatives
        lens = np.diff(m.indptr).astype(np.int64)
        rows = np.repeat(np.arange(m.shape[0]), lens)
        if self.max_history is not None:  # a fixed seeded order inside each row: bags = its prefix
            order = np.lexsort((rng.random(m.nnz), rows))
            row_items = m.indices[order].astype(np.int64)
        else:
            row_items = m.indices.astype(np.int64)
        starts = m.indptr[:-1].astype(np.int64)
        ex_user = rows
        ex_pos = np.arange(m.nnz) - starts[rows]
        ex_item = row_items
        n_ex = len(ex_user)
        if n_ex == 0:
            raise ValueError(f"{self.name}: training data has no interactions")

        pop = train.item_popularity().astype(np.float64)
        self._trained_mask = pop > 0
        q_freq = pop / pop.sum()
        with np.errstate(divide="ignore"):
            if self.loss == "sampled-uniform":
                log_mq = np.full(n, np.log(k / n))
            elif self.loss == "sampled-popularity":
                log_mq = np.log(k * q_freq)
            else:  # in-batch: log(B Q); unused otherwise
                log_mq = np.log(B * q_freq)
        log_mq_t = torch.as_tensor(log_mq, dtype=torch.float32, device=dev)
        cdf = np.cumsum(q_freq)
        cdf /= cdf[-1]
        pool_size = min(n, 4 * k) if self.hard_pool is None else int(self.hard_pool)

        ex_user_t = torch.as_tensor(ex_user, device=dev)
        ex_item_t = torch.as_tensor(ex_item, device=dev)
        dense_pool = (self.use_history and not self.sparse_items and self.max_history is None
                      and self.net.query.buckets is None and self.n_users * n <= DENSE_POOL_MAX)
        if dense_pool:  # 0/1 users x items; a batch's mean weights are a row gather of it
            A = torch.zeros(self.n_users, n, device=dev)
            A[ex_user_t, ex_item_t] = 1.0
            inv_len = torch.as_tensor(1.0 / np.maximum(lens - 1, 1), dtype=torch.float32, device=dev)
        p_drop = self.history_dropout if self.use_history else 0.0
        drop_rng = np.random.default_rng([self.seed, 1])  # own stream: negatives stay the same

        if self.item_bias and self.bias_init == "log-popularity":
            self._init_bias(pop)
        opts = self._optimizers()
        self._logits_buf = None  # full: (B x n) logits buffer reused by every step
        self.history, self.eval_seconds = [], 0.0
        best, best_state, bad = -np.inf, None, 0
        t_fit = time.perf_counter()
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.epochs, desc=self.name, unit="epoch")
        for epoch in range(self.epochs):
            t0 = time.perf_counter()
            self.net.train()
            perm = rng.permutation(n_ex)
            perm_t = torch.as_tensor(perm, device=dev)
            tot, cnt = 0.0, 0
            for s in range(0, n_ex, B):
                b = perm[s:s + B]
                b_t = perm_t[s:s + B]
                pos = ex_item_t[b_t]
                keep = drop_rng.random(len(b)) >= p_drop if p_drop > 0 else None
                if dense_pool:
                    u_t = ex_user_t[b_t]
                    q = self.net.query(_dense_bags(A, inv_len, u_t, pos, keep), self._user_feats(u_t))
                else:
                    u = ex_user[b]
                    if self.use_history:
                        ul = lens[u] if keep is None else np.where(keep, lens[u], 0)
                        flat, offsets, weights = _bags(row_items, starts[u], ul, ex_pos[b], self.max_history)
                    else:
                        flat = offsets = weights = None
                    q = self._query(flat, offsets, weights, u)
                loss = self._batch_loss(q, pos, rng, log_mq_t, cdf, pool_size)
                for opt in opts:
                    opt.zero_grad(set_to_none=True)
                loss.backward()
                for opt in opts:
                    opt.step()
                tot += float(loss.detach()) * len(b)
                cnt += len(b)
            wall = time.perf_counter() - t0
            record = {"epoch": epoch, "loss": tot / cnt, "wall_s": wall, "valid_recall@k": None}
            self.net.eval()
            self._refresh_cache()
            stop = False
            if valid is not None and len(valid):
                t1 = time.perf_counter()
                metric = evaluate(self, valid, ks=(self.eval_k,))[f"recall@{self.eval_k}"]
                self.eval_seconds += time.perf_counter() - t1
                record["valid_recall@k"] = float(metric)
                if metric > best:
                    best, bad = metric, 0
                    best_state = copy.deepcopy(self.net.state_dict())
                else:
                    bad += 1
                    stop = bad >= self.patience
            self.history.append(record)
            if bar is not None:
                bar.set_postfix(loss=f"{record['loss']:.4f}", valid=record["valid_recall@k"])
                bar.update(1)
            if callback is not None and callback(epoch, self):
                stop = True
            if stop:
                break
        if bar is not None:
            bar.close()
        if best_state is not None:
            self.net.load_state_dict(best_state)
        self.net.eval()
        self._logits_buf = None
        self._refresh_cache()
        self.fit_seconds = time.perf_counter() - t_fit

    def _init_bias(self, pop: np.ndarray) -> None:
        """b_j = log(1 + count_j), centred: scores start at the popularity ranking."""
        b = np.log1p(pop)
        b -= b.mean()
        with torch.no_grad():
            w = self.net.item.bias.weight
            ids = self.net.item.rows(torch.arange(self.n_items, device=w.device))
            acc = torch.zeros_like(w[:, 0]).index_add_(0, ids, torch.as_tensor(b, dtype=w.dtype, device=w.device))
            cnt = torch.zeros_like(w[:, 0]).index_add_(0, ids, torch.ones_like(ids, dtype=w.dtype))
            w[:, 0] = acc / cnt.clamp(min=1)

    def _batch_loss(self, q, pos, rng, log_mq_t, cdf, pool_size) -> torch.Tensor:
        dev, item, feats, k = q.device, self.net.item, self._if, self.n_negatives
        bias = item.biases  # None without item_bias
        V_all = None
        if self.loss == "full":
            V_all = self._all_items()
            buf = self._logits_buf
            if buf is None or len(buf) < len(pos):
                buf = self._logits_buf = torch.empty(len(pos), self.n_items, device=dev)
            loss = L.full_softmax_loss(q, V_all, pos, bias(None), out=buf[:len(pos)])
        elif self.loss in ("sampled-uniform", "sampled-popularity"):
            if self.loss == "sampled-uniform":
                neg_np = rng.integers(0, self.n_items, size=k)
            else:
                neg_np = np.minimum(np.searchsorted(cdf, rng.random(k), side="right"), self.n_items - 1)
            neg = torch.as_tensor(neg_np, device=dev)
            ids = torch.cat([pos, neg])
            both, b = item(ids, feats), bias(ids)
            b_pos, b_neg = (None, None) if b is None else (b[:len(pos)], b[len(pos):])
            loss = L.sampled_softmax_loss(q, both[:len(pos)], both[len(pos):], pos, neg,
                                          log_mq_t[pos], log_mq_t[neg], b_pos, b_neg)
        elif self.loss == "in-batch":
            loss = L.in_batch_loss(q, item(pos, feats), pos, log_mq_t[pos], bias(pos))
        elif self.loss == "hard-negatives":
            pool = torch.as_tensor(rng.integers(0, self.n_items, size=pool_size), device=dev)
            ids = torch.cat([pos, pool])
            both, b = item(ids, feats), bias(ids)
            v_pool = both[len(pos):]
            if b is None:
                pool_scores, b_pos = q @ v_pool.T, None
            else:
                pool_scores, b_pos = torch.addmm(b[None, len(pos):], q, v_pool.T), b[:len(pos)]
            loss = L.hard_negative_loss(q, both[:len(pos)], pool_scores, pos, pool, k, b_pos)
        else:  # positives-only
            loss = L.positives_only_loss(q, item(pos, feats), bias(pos))
        if self.gravity > 0:
            if V_all is None:
                V_all = self._all_items()
            loss = loss + self.gravity * L.gravity(q, V_all)
        return loss

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
        with torch.inference_mode():
            idx = torch.as_tensor(items, device=self._V.device)
            t = self.net.item.tower({k: v[idx] for k, v in self._if.items()})
            q = self._queries_forward(queries)
            s = q @ t.T
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
        self._check_fitted()
        path = Path(path)
        buf = io.BytesIO()
        torch.save({k: v.cpu() for k, v in self.net.state_dict().items()}, buf)
        atomic_write_bytes(path / "state.pt", buf.getvalue())
        arrays = {f"user__{k}": v for k, v in self._uf_np.items()}
        arrays.update({f"item__{k}": v for k, v in self._if_np.items()})
        fbuf = io.BytesIO()
        np.savez(fbuf, **arrays)
        atomic_write_bytes(path / "features.npz", fbuf.getvalue())
        meta = {"n_users": self.n_users, "n_items": self.n_items, "user_specs": self.user_specs,
                "item_specs": self.item_specs, "history": self.history,
                "eval_seconds": self.eval_seconds, "fit_seconds": self.fit_seconds,
                "cold_bias": self.cold_bias}
        self._write_params(path, {"class": "SoftmaxDNN", "params": self.get_params(), "meta": meta})

    @classmethod
    def load(cls, path) -> SoftmaxDNN:
        path = Path(path)
        doc = cls._read_params(path)
        params = dict(doc["params"])
        params["hidden"] = tuple(params["hidden"])
        params.setdefault("item_bias", False)  # saved before these options existed
        params.setdefault("history_dropout", 0.0)
        params.setdefault("feature_dim", params["dim"])  # feature embeddings were dim wide
        params.setdefault("hash_scope", "all")
        params.setdefault("table_optimizer", None)  # tables used ``optimizer`` and ``lr``
        params.setdefault("table_lr", None)
        params.setdefault("bias_init", "zero")
        model = cls(**params)
        meta = doc["meta"]
        model._build(meta["n_users"], meta["n_items"], meta["user_specs"], meta["item_specs"])
        with np.load(path / "features.npz") as z:
            uf = {k[len("user__"):]: z[k] for k in z.files if k.startswith("user__")}
            itf = {k[len("item__"):]: z[k] for k in z.files if k.startswith("item__")}
        model._set_features(uf, itf)
        state = torch.load(path / "state.pt", map_location=model._torch_device(), weights_only=True)
        model.net.load_state_dict(state)
        model.net.eval()
        model.history, model.eval_seconds = meta["history"], meta["eval_seconds"]
        model.fit_seconds = meta.get("fit_seconds", 0.0)
        model.cold_bias = float(meta.get("cold_bias", 0.0))
        model._refresh_cache()
        return model
