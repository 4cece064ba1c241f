"""The softmax DNN's training examples and the queries of a batch of them.

One example per training (user, item) pair; its query pools the user's *other* items (with
``max_history`` a fixed, seeded subsample of at most that many) plus the user's features. Bags
are EmbeddingBag inputs built in numpy per batch, or, for ``full`` and gravity without hashing
or ``max_history``, rows of a dense users x items 0/1 matrix. Example weights
(``example_weight``) weight each example's loss by its interaction value.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from .bags import bag_inputs, dense_bags

DENSE_POOL_MAX = 2 ** 25  # cells of the dense users x items pooling matrix (128 MiB float32)
EXAMPLE_WEIGHTS = ("none", "linear", "log")


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
    """One rank's slice ``start:stop`` of a global batch (``ddp``) and the global
    batch's positives ``pos_all`` (in-batch negatives come from every shard)."""

    start: int
    stop: int
    pos_all: torch.Tensor

    @property
    def frac(self) -> float:
        return (self.stop - self.start) / len(self.pos_all)



class Examples:
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


class Sampling(NamedTuple):
    """What the sampled losses need: log(m Q_j) of each item (logQ correction; B Q_j for
    in-batch), the popularity CDF (sampled-popularity) and the hard-negatives pool size."""

    log_mq: torch.Tensor
    cdf: np.ndarray
    pool_size: int


def sampling_for(model, pop: np.ndarray, dev: torch.device) -> Sampling:
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
    return Sampling(torch.as_tensor(log_mq, dtype=torch.float32, device=dev), cdf, pool_size)


class BatchQueries:
    """Query embeddings of a batch of examples: the history bag (emptied with probability
    ``history_dropout``) and the user's features.

    Bags are EmbeddingBag inputs built in numpy, or, for ``full`` and gravity without hashing or
    ``max_history``, rows of a dense users x items 0/1 matrix (at most ``DENSE_POOL_MAX`` cells).
    """

    def __init__(self, model, ex: Examples, dev: torch.device):
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


def batch_weights(ex_w: torch.Tensor | None, b_t: torch.Tensor) -> torch.Tensor | None:
    """Weights of batch ``b_t`` normalised to sum 1 (the weighted mean); None unweighted."""
    if ex_w is None:
        return None
    w = ex_w[b_t]
    return w / w.sum()
