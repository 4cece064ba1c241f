"""faiss's HNSW graph, ``IndexHNSWFlat`` (``M``, ``efConstruction``), swept over ``efSearch``."""

from __future__ import annotations

from .faiss_common import FaissIndex

#: ``sweeps.ann_params.faiss-hnsw``: construction parameters and the ``ef_search`` values swept
PARAMS = {"M": 32, "ef_construction": 80, "ef_search": [16, 32, 64, 128, 256, 512, 1024]}
#: what ``--quick`` sweeps
QUICK = {"ef_search": [16, 64, 256]}


class FaissHnswIndex(FaissIndex):
    """faiss ``IndexHNSWFlat(d, M, METRIC_INNER_PRODUCT)``, swept over ``efSearch``."""

    family = "faiss-hnsw"
    param_name = "efSearch"
    sweep_key = "ef_search"
    params = PARAMS
    label_format = "faiss-hnsw(M={M})"

    def _make(self, faiss, items):
        metric = faiss.METRIC_INNER_PRODUCT if self.mips == "ip" else faiss.METRIC_L2
        index = faiss.IndexHNSWFlat(items.shape[1], self.M, metric)
        index.hnsw.efConstruction = self.ef_construction
        index.add(items)
        return index

    def set_param(self, param, k=1):
        ef = int(param) if param is not None else 16
        if ef != self._param:
            self.index.hnsw.efSearch = ef
            self._param = ef
