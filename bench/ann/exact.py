"""The exact index: numpy matmul + argpartition over every item, the reference every recall is
measured against (no search parameter, nothing to sweep)."""

from __future__ import annotations

import numpy as np

from mfsoftmax.ranking import topk

from .base import AnnIndex

#: no construction parameter and no sweep
PARAMS: dict = {}
QUICK: dict = {}


def exact_topk(items: np.ndarray, queries: np.ndarray, k: int, batch: int | None = None) -> np.ndarray:
    """(B x k) ids of the top-k items by inner product, best first (batched matmul; a batch's
    scores stay near 128 MB)."""
    batch = batch or max(1, min(256, (1 << 25) // max(1, len(items))))
    out = []
    for s in range(0, len(queries), batch):
        out.append(topk(queries[s:s + batch] @ items.T, k)[0])
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)


class ExactIndex(AnnIndex):
    """Brute force: ``items @ q`` and argpartition (the reference every recall is against)."""

    family = "exact"
    params = PARAMS

    def _build(self, items):
        self.items = items

    def _search(self, q, k):
        return topk(q @ self.items.T, k)[0]

    @property
    def nbytes(self) -> int:
        return int(self.items.nbytes)

    def close(self):
        self.items = None
