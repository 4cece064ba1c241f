"""What the two faiss indexes share: the build on ``build_threads`` OpenMP threads (searches on
one), the search call, the serialised size."""

from __future__ import annotations

import numpy as np

from .base import AnnIndex, faiss_or_none, single_thread


class FaissIndex(AnnIndex):
    """A faiss index; a subclass makes it (``_make(faiss, items)``) and sets its parameter."""

    def _faiss(self):
        faiss = faiss_or_none()
        if faiss is None:
            raise ImportError("faiss is not installed (pip install faiss-cpu)")
        return faiss

    def _build(self, items):
        faiss = self._faiss()
        single_thread(self.build_threads)
        try:
            self.index = self._make(faiss, items)
        finally:
            single_thread()
        self._param = None

    def _search(self, q, k):
        _, ids = self.index.search(q, k)
        return ids.astype(np.int64)

    @property
    def nbytes(self) -> int:
        faiss = self._faiss()
        return int(faiss.serialize_index(self.index).nbytes)

    def close(self):
        self.index = None
