"""Towers of the softmax DNN: hashed/exact embedding tables, the query tower and the item tower.

Feature columns follow :class:`~mfsoftmax.datasets.Interactions`: a 1-D int64 array is a
categorical code (one embedding table), a 2-D array is multi-hot (a linear layer). Item-id tables
are exact (one row per item) or hashed into ``hash_buckets`` rows with the fixed hash
``(id * 2654435761 + salt) % buckets``: colliding ids share a row, which is the scaling lever
(memory ``buckets x d`` instead of ``n x d``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

PRIME = 2654435761
INIT_STD = 0.05
POOL_UNIQUE_MIN_CELLS = 1 << 19  # bag entries x d from which training uses pool_unique


def hash_ids(ids: torch.Tensor, buckets: int | None, salt: int) -> torch.Tensor:
    """Map ids to rows: identity when ``buckets`` is None, else the fixed multiplicative hash."""
    if buckets is None:
        return ids
    return (ids * PRIME + salt) % buckets


def table_rows(size: int, buckets: int | None) -> int:
    """Rows of a table for ``size`` ids: ``size`` (exact) or ``min(size, buckets)`` (hashed)."""
    return size if buckets is None or buckets >= size else int(buckets)


def feature_specs(features: dict) -> list[dict]:
    """Metadata to rebuild feature layers: name, kind (``cat``/``multi``) and size, sorted."""
    specs = []
    for name in sorted(features):
        arr = np.asarray(features[name])
        if arr.ndim == 1:
            if arr.size and arr.min() < 0:
                raise ValueError(f"feature {name!r}: categorical codes must be >= 0")
            specs.append({"name": name, "kind": "cat", "size": int(arr.max()) + 1 if arr.size else 1})
        elif arr.ndim == 2:
            specs.append({"name": name, "kind": "multi", "size": int(arr.shape[1])})
        else:
            raise ValueError(f"feature {name!r} has {arr.ndim} dimensions; expected 1 (codes) or 2 (multi-hot)")
    return specs


class FeatureEncoder(nn.Module):
    """Concatenated embeddings of categorical features and linear maps of multi-hot ones."""

    def __init__(self, specs: list[dict], width: int, buckets: int | None, salt: int):
        super().__init__()
        self.specs = specs
        self.buckets = None if buckets is None else int(buckets)
        self.salt = salt
        self.layers = nn.ModuleDict()
        for i, spec in enumerate(specs):
            if spec["kind"] == "cat":
                rows = table_rows(spec["size"], self.buckets)
                self.layers[spec["name"]] = nn.Embedding(rows, width)
            else:
                self.layers[spec["name"]] = nn.Linear(spec["size"], width, bias=False)
            spec.setdefault("salt", salt + 17 * i)
        self.out_dim = width * len(specs)

    def hashed(self, spec: dict) -> bool:
        return spec["kind"] == "cat" and self.buckets is not None and self.buckets < spec["size"]

    def forward(self, feats: dict) -> torch.Tensor:
        parts = []
        for spec in self.specs:
            x = feats[spec["name"]]
            layer = self.layers[spec["name"]]
            if spec["kind"] == "cat":
                x = x.clamp(0, spec["size"] - 1)  # codes unseen at fit time share the last row
                if self.hashed(spec):
                    x = hash_ids(x, self.buckets, spec["salt"])
                parts.append(layer(x))
            else:
                parts.append(layer(x))
        return torch.cat(parts, dim=1)

    def embedding_params(self) -> int:
        return sum(p.numel() for spec in self.specs if spec["kind"] == "cat"
                   for p in self.layers[spec["name"]].parameters())


def mlp(in_dim: int, hidden, out_dim: int, layer_norm: bool) -> nn.Sequential:
    """Linear -> [LayerNorm] -> ReLU for each hidden width, then a final Linear to ``out_dim``."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers.append(nn.Linear(in_dim, int(width)))
        if layer_norm:
            layers.append(nn.LayerNorm(int(width)))
        layers.append(nn.ReLU())
        in_dim = int(width)
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class DenseBags(NamedTuple):
    """History bags of a batch as ``scale[b] * (rows[inv[b]] - onehot(pos[b]))``: ``rows`` (U x n)
    the 0/1 history rows of the batch's U distinct users, ``inv`` (B,) each example's row,
    ``pos`` (B,) its target (left out of its bag), ``scale`` (B,) 1 / bag size (0: emptied)."""

    rows: torch.Tensor
    inv: torch.Tensor
    pos: torch.Tensor
    scale: torch.Tensor


def pool_dense(bags: DenseBags, W: torch.Tensor) -> torch.Tensor:
    """Mean history embeddings (B x d) of :class:`DenseBags`: one (U x n) @ (n x d) matmul for
    the batch's distinct users, then each example drops its target and scales."""
    pooled = (bags.rows @ W).index_select(0, bags.inv) - W.index_select(0, bags.pos)
    return pooled.mul_(bags.scale[:, None])


def pool_unique(W: torch.Tensor, rows: torch.Tensor, offsets: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
    """The weighted bag sums of ``rows`` (B x d) whose gradient on ``W`` has one row per
    *distinct* row: the batch's distinct rows are gathered once (a sparse gradient of u rows,
    sorted and unique) and bagged from that u x d block with a dense backward.

    ``nn.EmbeddingBag(sparse=True)`` instead materialises one d-vector of gradient per bag
    entry (8192 examples x 30 history items x 256 floats = 250 MB a step), which the lazy
    optimizer then has to sort and sum; this builds u x d (u <= the table's rows) directly.
    The forward is the same gather and sum; the gradient equals it up to float summation order.
    """
    uniq, inv = torch.unique(rows, return_inverse=True)
    block = F.embedding(uniq, W, sparse=True)
    return F.embedding_bag(inv, block, offsets, mode="sum", per_sample_weights=weights)


def unique_pays(entries: int, dim: int) -> bool:
    """Whether a training batch pools through :func:`pool_unique`: when the plain sparse bag's
    gradient, one d-vector per bag entry, would have at least :data:`POOL_UNIQUE_MIN_CELLS`
    floats. Below that the extra ``torch.unique`` pass costs more than the smaller gradient
    saves (one epoch at d 32, batch 256: x1.02-1.06 slower); measured crossover in
    docs/models.md, ``pool-unique`` group of bench/test_bench_softmax.py."""
    return entries * dim >= POOL_UNIQUE_MIN_CELLS


class QueryTower(nn.Module):
    """psi(x) = MLP([mean of history item embeddings, user feature embeddings])."""

    def __init__(self, n_items: int, dim: int, hidden, layer_norm: bool, user_specs: list[dict],
                 use_history: bool, buckets: int | None, sparse: bool = True,
                 feature_dim: int | None = None):
        super().__init__()
        self.use_history = use_history
        self.n_items = n_items
        self.buckets = buckets if buckets is not None and buckets < n_items else None
        in_dim = 0
        if use_history:
            # sum-mode bag with 1/len weights = mean; ``sparse``: gradients on touched rows only
            self.history = nn.EmbeddingBag(table_rows(n_items, self.buckets), dim, mode="sum",
                                           sparse=sparse)
            in_dim += dim
        self.features = (FeatureEncoder(user_specs, feature_dim or dim, buckets, salt=101)
                         if user_specs else None)
        if self.features is not None:
            in_dim += self.features.out_dim
        self.mlp = mlp(in_dim, hidden, dim, layer_norm)

    def forward(self, bags, feats: dict | None) -> torch.Tensor:
        """``bags``: ``(flat, offsets, weights)`` of the history bags, or :class:`DenseBags`
        (pooled by one matmul); None without history."""
        parts = []
        if self.use_history:
            parts.append(self.pool(bags))
        if self.features is not None:
            parts.append(self.features(feats))
        return self.mlp(torch.cat(parts, dim=1))

    def pool(self, bags) -> torch.Tensor:
        """Weighted sum of history-item embeddings per query (B x d)."""
        W = self.history.weight
        if isinstance(bags, DenseBags):
            return pool_dense(bags, W)
        flat, offsets, weights = bags
        rows = hash_ids(flat, self.buckets, 7)
        if self.history.sparse:
            if torch.is_grad_enabled() and unique_pays(rows.numel(), W.shape[1]):
                return pool_unique(W, rows, offsets, weights)
            return self.history(rows, offsets, per_sample_weights=weights)
        # dense regime: (B x rows) weights @ table, a matmul forward and backward
        B = len(offsets)
        counts = torch.diff(offsets, append=offsets.new_tensor([len(rows)]))
        seg = torch.repeat_interleave(torch.arange(B, device=rows.device), counts)
        S = torch.zeros(B, W.shape[0], device=rows.device)
        S.index_put_((seg, rows), weights, accumulate=True)
        return S @ W

    def embedding_params(self) -> int:
        n = self.history.weight.numel() if self.use_history else 0
        return n + (self.features.embedding_params() if self.features is not None else 0)


class ItemTower(nn.Module):
    """Item embedding from item features: MLP over categorical and multi-hot features."""

    def __init__(self, specs: list[dict], dim: int, buckets: int | None, feature_dim: int | None = None):
        super().__init__()
        self.features = FeatureEncoder(specs, feature_dim or dim, buckets, salt=503)
        self.mlp = mlp(self.features.out_dim, (dim,), dim, layer_norm=False)

    def forward(self, feats: dict) -> torch.Tensor:
        return self.mlp(self.features(feats))


class ItemSide(nn.Module):
    """Item embeddings: free table V (exact or hashed), optionally plus ("add") or replaced by
    ("replace") the item tower's output; optionally a per-item bias ``b`` (a 1-column table,
    zero-initialised, hashed like V)."""

    def __init__(self, n_items: int, dim: int, item_specs: list[dict], mode: str | None,
                 buckets: int | None, sparse: bool, bias: bool = False, feature_dim: int | None = None):
        super().__init__()
        self.n_items = n_items
        self.mode = mode
        self.buckets = buckets if buckets is not None and buckets < n_items else None
        self.free = None
        if mode != "replace":
            self.free = nn.Embedding(table_rows(n_items, self.buckets), dim, sparse=sparse)
        self.tower = ItemTower(item_specs, dim, buckets, feature_dim) if mode is not None else None
        self.bias = nn.Embedding(table_rows(n_items, self.buckets), 1, sparse=sparse) if bias else None

    def biases(self, ids: torch.Tensor | None) -> torch.Tensor | None:
        """Bias of ``ids`` (all items when None), shape (len,); None without a bias table."""
        if self.bias is None:
            return None
        if ids is None:
            if self.buckets is None:
                return self.bias.weight[:, 0]
            ids = torch.arange(self.n_items, device=self.bias.weight.device)
        return self.bias(self.rows(ids))[:, 0]

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows of the item-side tables (V, bias) for item ids (hashed when they are)."""
        return hash_ids(ids, self.buckets, 3)

    def free_rows(self, ids: torch.Tensor) -> torch.Tensor:
        return self.free(self.rows(ids))

    def forward(self, ids: torch.Tensor | None, item_feats: dict | None) -> torch.Tensor:
        """Embeddings of ``ids`` (all items when None); ``item_feats`` are the feature tensors of
        all items (rows picked here)."""
        all_items = ids is None
        if all_items and self.free is not None and self.buckets is None:
            out = self.free.weight
        elif self.free is not None:
            idx = torch.arange(self.n_items, device=self._device()) if all_items else ids
            out = self.free_rows(idx)
        else:
            out = None
        if self.tower is not None:
            feats = item_feats if all_items else {k: v[ids] for k, v in item_feats.items()}
            t = self.tower(feats)
            out = t if out is None else out + t
        return out

    def _device(self):
        return next(self.parameters()).device

    def embedding_params(self) -> int:
        n = self.free.weight.numel() if self.free is not None else 0
        n += self.bias.weight.numel() if self.bias is not None else 0
        return n + (self.tower.features.embedding_params() if self.tower is not None else 0)


def init_embeddings(module: nn.Module, std: float = INIT_STD) -> None:
    """Normal(0, std) init of every embedding table (the default N(0, 1) is far too large);
    item-bias tables (``ItemSide.bias``) start at zero."""
    for mod in module.modules():
        if isinstance(mod, (nn.Embedding, nn.EmbeddingBag)):
            nn.init.normal_(mod.weight, 0.0, std)
    for mod in module.modules():
        if isinstance(mod, ItemSide) and mod.bias is not None:
            nn.init.zeros_(mod.bias.weight)
