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

Data-parallel training (``workers``)
------------------------------------
- ``workers = 1`` is the single-process training above, unchanged. ``workers > 1`` trains with
  torch.distributed (``softmax_ddp``): ``fit`` spawns the ranks itself (gloo on CPU, NCCL on
  CUDA, one GPU per rank), or run ``python -m mfsoftmax.models.softmax_ddp`` under torchrun.
  Global batch = ``batch_size`` (each rank computes ``batch_size / workers`` examples of it),
  the same ``lr``: every rank draws the same order, negatives and dropout, the gradients of
  the rank shards are summed, so a step is the single-process step up to float rounding
  (``softmax_ddp`` for the table synchronisation, the tolerance and the limits).
"""

from __future__ import annotations

import numpy as np
import torch

from mfsoftmax.datasets.core import check_users_items

from . import softmax_persist, softmax_train
from .base import Queries, RecommenderBase
from .softmax_bags import bag_inputs
from .softmax_optim import KINDS
from .softmax_towers import (
    ItemSide,
    QueryTower,
    feature_specs,
    init_embeddings,
)
from .softmax_train import EXAMPLE_WEIGHTS

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
DDP_TIMEOUT = 600.0  # seconds a rank waits for the others


class _Net(torch.nn.Module):
    def __init__(self, query: QueryTower, item: ItemSide):
        super().__init__()
        self.query = query
        self.item = item


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

    def embedding_role(self) -> str:
        return "no-negatives" if self.loss == "positives-only" else "negatives"

    def __init__(self, dim=64, hidden=(256,), layer_norm=False, loss="full", n_negatives=200,
                 hard_pool=None, gravity=0.0, use_history=True, use_user_features=True,
                 item_tower=None, hash_buckets=None, hash_scope="all", optimizer="adam", lr=1e-3,
                 weight_decay=0.0, table_optimizer=TABLE_OPTIMIZER, table_lr=TABLE_LR,
                 batch_size=256, epochs=20, patience=3, eval_k=20, max_history=None,
                 history_dropout=HISTORY_DROPOUT, item_bias=False, bias_init="zero",
                 feature_dim=FEATURE_DIM, example_weight="none", alpha=1.0, eps=1.0, workers=1,
                 table_sync=TABLE_SYNC, ddp_timeout=DDP_TIMEOUT, seed=0, device="cpu", threads=1,
                 progress=False, name=None):
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
        if example_weight not in EXAMPLE_WEIGHTS:
            raise ValueError(f"example_weight={example_weight!r}: choose one of {', '.join(EXAMPLE_WEIGHTS)}")
        if not (float(alpha) >= 0 and float(eps) > 0):
            raise ValueError(f"alpha={alpha} must be >= 0 and eps={eps} > 0")
        if int(workers) < 1:
            raise ValueError(f"workers={workers} must be >= 1")
        if table_sync not in TABLE_SYNCS:
            raise ValueError(f"table_sync={table_sync!r}: choose one of {', '.join(TABLE_SYNCS)}")
        if not float(ddp_timeout) > 0:
            raise ValueError(f"ddp_timeout={ddp_timeout} must be > 0 seconds")
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
            "seed": self.seed, "device": self.device,
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
        trained = getattr(self, "_trained_mask", None)
        if self._b is not None and trained is not None and trained.any():
            self.cold_bias = float(self._b.cpu().numpy()[trained].mean())

    # ------------------------------------------------------------------ training
    def fit(self, train, valid=None, callback=None) -> SoftmaxDNN:
        """Train on ``train``, early stopping on ``valid``; ``callback(epoch, model)`` after
        each epoch (True stops). With ``workers > 1`` the ranks train in child processes and
        the fitted model here is an ordinary single-process model (``softmax_ddp.fit``)."""
        self._prepare(train)
        if self.workers > 1:
            from . import softmax_ddp

            softmax_ddp.fit(self, train, valid, callback)
            return self
        softmax_train.train(self, train, valid, callback)
        self.train_info = {"workers": 1, "processes": 1, "backend": None, "table_sync": None,
                           "global_batch": self.batch_size, "rank_batch": self.batch_size,
                           "lr": self.lr, "table_lr": self.table_lr,
                           "epoch_seconds": [h["wall_s"] for h in self.history]}
        return self

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
        softmax_persist.save(self, path)

    @classmethod
    def load(cls, path) -> SoftmaxDNN:
        return softmax_persist.load(cls, path)
