"""The softmax DNN recommender, :class:`SoftmaxDNN` (DEFINITIONS.md, "Softmax DNN"): a query
tower and item embeddings trained with one of six losses (``losses``), optionally plus gravity.

Training examples are the training (user, item) pairs; the query of a pair is the user's features
plus the mean embedding of the user's *other* training items (the target is left out; with
``max_history`` a fixed, seeded subsample of at most that many items). Bags are built per batch
in numpy (EmbeddingBag offsets), so an epoch costs O(sum of bag sizes) plus the loss.

Optimisation notes
------------------
- When the loss only touches gathered rows (every loss except ``full``, and no gravity) the two
  item-id tables (history, V) have sparse gradients, stepped by lazy row-wise updates
  (``optim``): a sampled step costs O(rows touched), not O(n), and the moments of an
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
  users x items 0/1 matrix built once per fit (at most ``batches.DENSE_POOL_MAX`` cells):
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

Serving one request and data parallelism
----------------------------------------
- ``recommend_one`` is a lean single-query path whose query tower runs eager or as a
  TorchScript trace (``serve_runtime``): ``serving``.
- ``workers = 1`` trains in this process (``train``); ``workers > 1`` with torch.distributed
  (``spawn`` launches the ranks of ``ddp``, or run ``python -m mfsoftmax.models.softmax.ddp``
  under torchrun). ``engines.trainer`` picks one from ``workers``. Global batch =
  ``batch_size`` (each rank computes ``batch_size / workers`` examples of it), the same ``lr``:
  every rank draws the same order, negatives and dropout, the gradients of the rank shards are
  summed, so a step is the single-process step up to float rounding (``ddp`` for the tolerance,
  ``table_sync`` for the tables' synchronisation and the limits).
"""

from __future__ import annotations

import inspect

import numpy as np
import torch

from mfsoftmax.datasets.core import check_users_items

from ..base import Queries, RecommenderBase, SuiteSpec
from . import engines, hparams, memory, persist
from . import train as training
from .bags import bag_inputs
from .hparams import (
    DDP_TIMEOUT,
    FEATURE_DIM,
    HISTORY_DROPOUT,
    TABLE_LR,
    TABLE_OPTIMIZER,
    TABLE_SYNC,
)
from .precision import autocast, cpu_bf16_flags, model_precision
from .serving import LeanServing
from .towers import ItemSide, QueryTower, feature_specs, init_embeddings


class _Net(torch.nn.Module):
    def __init__(self, query: QueryTower, item: ItemSide):
        super().__init__()
        self.query = query
        self.item = item


class SoftmaxDNN(LeanServing, RecommenderBase):
    """Two-tower softmax recommender: scores ``s_j(x) = <psi(x), V_j> (+ b_j)``.

    Parameters
    ----------
    The flat keywords of the signature, in groups (types, ranges and meaning in ``hparams``):

    - the network, ``hparams.TOWER``: ``dim``, ``hidden``, ``layer_norm``, ``use_history``,
      ``use_user_features``, ``item_tower``, ``hash_buckets``, ``hash_scope``, ``item_bias``,
      ``bias_init``, ``feature_dim``;
    - the fit, ``hparams.TRAINING``: ``loss``, ``n_negatives``, ``hard_pool``, ``gravity``,
      ``optimizer``, ``lr``, ``weight_decay``, ``table_optimizer``, ``table_lr``,
      ``batch_size``, ``epochs``, ``patience``, ``eval_k``, ``max_history``,
      ``history_dropout``, ``example_weight``, ``alpha``, ``eps``, ``workers``, ``table_sync``,
      ``ddp_timeout``, ``precision``;
    - one request, ``hparams.SERVING``: ``serve_runtime``;
    - the run, ``hparams.RUN``: ``seed``, ``device``, ``threads``, ``progress``, ``name``.

    Attributes
    ----------
    precision_resolved : str
        ``fp32`` or ``bf16``: what ``precision`` means on this machine (:meth:`precision_info`).
    train_info : dict
        Set by ``fit``: workers, processes, backend, table_sync, global and per-rank batch, lr,
        per-epoch seconds (and seconds in table synchronisation, launch seconds with workers).
    """

    family = "softmax"
    suite = SuiteSpec(
        serving_modes=("query-tower", None), ablation_switches=("use_history", "use_user_features"),
        one_pass={"epochs": 1}, quick_caps={"epochs": 2, "patience": 1},
        new_item_params={"item_tower": "add"}, folding_sweep="dim",
        # what sets a fit's size: dim, and workers (a copy per rank) when > 1 (the full loss's
        # batch x items logits show as a part of their own)
        memory_params=lambda model: ("dim", *(("workers",) if model.workers > 1 else ())))

    PARAMS = hparams.PARAMS

    def embedding_role(self) -> str:
        return "no-negatives" if self.loss == "positives-only" else "negatives"

    def __init__(self, dim=64, hidden=(256,), layer_norm=False, loss="full", n_negatives=200,
                 hard_pool=None, gravity=0.0, use_history=True, use_user_features=True,
                 item_tower=None, hash_buckets=None, hash_scope="all", optimizer="adam", lr=1e-3,
                 weight_decay=0.0, table_optimizer=TABLE_OPTIMIZER, table_lr=TABLE_LR,
                 batch_size=256, epochs=20, patience=3, eval_k=20, max_history=None,
                 history_dropout=HISTORY_DROPOUT, item_bias=False, bias_init="zero",
                 feature_dim=FEATURE_DIM, example_weight="none", alpha=1.0, eps=1.0, workers=1,
                 table_sync=TABLE_SYNC, ddp_timeout=DDP_TIMEOUT, serve_runtime="auto",
                 precision="fp32", seed=0, device="cpu", threads=1, progress=False, name=None):
        p = self.checked_params(locals())  # type and range of each (PARAMS), converted
        hparams.check_trainable(type(self).__name__, p)
        for key, value in p.items():  # the hyper-parameters are the signature's names
            setattr(self, key, value)
        self.hidden = tuple(self.hidden)
        self.feature_dim = min(self.feature_dim, self.dim)
        self.precision_resolved = model_precision(precision, device)
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
        """The hyper-parameters, JSON-serialisable: the value of each constructor parameter
        (the signature's names, as scikit-learn derives them; tuples as lists), all but
        ``hparams.NOT_SAVED``."""
        names = inspect.signature(type(self).__init__).parameters
        return {name: list(v) if isinstance(v := getattr(self, name), tuple) else v
                for name in names if name != "self" and name not in hparams.NOT_SAVED}

    def param_groups(self) -> dict[str, dict]:
        """:meth:`get_params` by group (``hparams.GROUPS``): ``{"tower": {...}, "training":
        {...}, "serving": {...}, "run": {...}}``."""
        params = self.get_params()
        return {group: {k: params[k] for k in specs if k in params} for group, specs in hparams.GROUPS.items()}

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
        each epoch (True stops). The engine comes from ``workers`` (``engines.trainer``): with
        ``workers > 1`` the ranks train in child processes and the fitted model here is an
        ordinary single-process model."""
        self.check_memory(train)  # before any array: refuse what cannot fit, saying how much
        self._prepare(train)
        engines.trainer(self.workers)(self, train, valid, callback)
        return self

    def memory_parts(self, n_users: int, n_items: int, nnz: int) -> dict:
        return memory.memory_parts(self, n_users, n_items)

    def _prepare(self, train) -> None:
        """Check ``train``, build the network and set the feature tensors (before training)."""
        check_users_items(train.matrix, what="train.matrix")
        uf = train.user_features if self.use_user_features else {}
        self._build(train.n_users, train.n_items, feature_specs(uf),
                    feature_specs(train.item_features) if self.item_tower is not None else [])
        self._set_features(uf, train.item_features)

    def _optimizers(self) -> list:
        return training.optimizers(self)

    def _init_bias(self, pop: np.ndarray) -> None:
        training.init_bias(self, pop)

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
        persist.save(self, path)

    @classmethod
    def load(cls, path) -> SoftmaxDNN:
        return persist.load(cls, path)
