"""History bags of the softmax DNN's query tower: which items each query pools, and with what
weights (mean pooling).

Two forms: EmbeddingBag inputs (flat item ids, offsets, 1/len weights), built in numpy, and
:class:`~.towers.DenseBags`, rows of a dense users x items 0/1 matrix gathered on the
device (``full`` and gravity training, see ``train``).
"""

from __future__ import annotations

import numpy as np
import torch

from .towers import DenseBags


def bag_inputs(items: np.ndarray, starts: np.ndarray, lens: np.ndarray, skip: np.ndarray | None,
               max_len: int | None):
    """Flat item ids, offsets and 1/len weights of bags ``items[starts[b] : starts[b] + lens[b]]``
    minus local position ``skip[b]`` (when given), truncated to ``max_len`` items.

    Only a bag's first ``max_len + 1`` positions can survive the truncation (one of them may be
    the skipped one), so longer rows are cut to that before anything is expanded: a batch of
    heavy users (ML-20M's shape: ~400 items per example's user, ``max_len`` 30) expands ~31
    positions per example instead of the whole row."""
    B = len(starts)
    if max_len is not None:
        lens = np.minimum(lens, max_len + 1)
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


def dense_bags(A: torch.Tensor, inv_len: torch.Tensor, users: torch.Tensor, pos: torch.Tensor,
               keep: np.ndarray | None) -> DenseBags:
    """Each example's bag as row ``users[b]`` of the 0/1 matrix ``A`` minus its target
    ``pos[b]``, scaled by ``inv_len[users[b]]`` = 1 / (len - 1), or by 0 where ``keep[b]`` is
    False (an emptied bag). A user's row is gathered once per batch (:class:`DenseBags`)."""
    uniq, inv = torch.unique(users, return_inverse=True)
    scale = inv_len[users]
    if keep is not None:
        scale = scale * torch.as_tensor(keep, dtype=scale.dtype, device=scale.device)
    return DenseBags(A.index_select(0, uniq), inv, pos, scale)
