"""hnswlib's HNSW graph (``M``, ``ef_construction``), swept over ``ef``; ``space="ip"`` or
``"l2"`` on the reduced vectors. hnswlib is imported when an index is built."""

from __future__ import annotations

import numpy as np

from .base import AnnIndex

#: ``sweeps.ann_params.hnswlib``: construction parameters and the ``ef`` values swept
PARAMS = {"M": 16, "ef_construction": 100, "ef": [10, 16, 32, 64, 128, 256, 512, 1024]}
#: what ``--quick`` sweeps
QUICK = {"ef": [10, 64, 256]}


class HnswlibIndex(AnnIndex):
    """hnswlib HNSW on inner product (``space="ip"``), swept over ``ef`` (>= k)."""

    family = "hnswlib"
    param_name = "ef"
    sweep_key = "ef"
    params = PARAMS
    label_format = "hnswlib-hnsw(M={M})"
    _ef = None

    def _build(self, items):
        import hnswlib  # optional: treated as optional (available() skips its rows without it)

        n, dim = items.shape
        self.index = hnswlib.Index(space=self.mips, dim=dim)
        self.index.init_index(max_elements=n, ef_construction=self.ef_construction, M=self.M,
                              random_seed=self.seed)
        self.index.set_num_threads(self.build_threads)
        self.index.add_items(items, np.arange(n), num_threads=self.build_threads)
        self.index.set_num_threads(1)
        self._ef = None

    def set_param(self, param, k=1):
        ef = max(int(param) if param is not None else self.ef_construction, int(k))  # ef >= k
        if ef != self._ef:
            self.index.set_ef(ef)
            self._ef = ef

    def _search(self, q, k):
        labels, _ = self.index.knn_query(q, k=k, num_threads=1)
        return labels.astype(np.int64)

    @property
    def nbytes(self) -> int:
        return int(self.index.index_file_size())

    def close(self):
        self.index = None
