"""faiss's inverted file, ``IndexIVFFlat`` with ``nlist ~ nlist_factor * sqrt(n)`` lists,
swept over ``nprobe``."""

from __future__ import annotations

import math

from .faiss_common import FaissIndex

#: ``sweeps.ann_params.faiss-ivf``: construction parameters and the ``nprobe`` values swept
PARAMS = {"nlist_factor": 4.0, "nprobe": [1, 2, 4, 8, 16, 32, 64, 128, 256]}
#: what ``--quick`` sweeps
QUICK = {"nprobe": [1, 8, 64]}


class FaissIvfIndex(FaissIndex):
    """faiss ``IndexIVFFlat`` on inner product (coarse quantizer ``IndexFlatIP``), ``nlist =
    round(nlist_factor * sqrt(n))`` (at most n / 39, faiss's training minimum), swept over
    ``nprobe`` (capped at nlist)."""

    family = "faiss-ivf"
    param_name = "nprobe"
    sweep_key = "nprobe"
    params = PARAMS
    nlist: int | None = None  # set by the build

    def nlist_for(self, n: int) -> int:
        return int(max(1, min(round(self.nlist_factor * math.sqrt(n)), n // 39)))

    @property
    def label(self) -> str:
        return self._tag(f"faiss-ivf(nlist={self.nlist})" if self.nlist else "faiss-ivf")

    def sweep(self, n=None):
        cap = self.nlist or (self.nlist_for(n) if n else None)
        vals = [int(p) for p in self._sweep if cap is None or int(p) <= cap]
        if cap is not None and (not vals or vals[-1] < cap) and any(int(p) > cap for p in self._sweep):
            vals.append(cap)  # the exhaustive end when the sweep reaches past nlist
        return vals

    def exhaustive(self, n):
        return self.nlist or self.nlist_for(n)

    def _make(self, faiss, items):
        n, dim = items.shape
        self.nlist = self.nlist_for(n)
        ip = self.mips == "ip"
        # the quantizer is kept: the IVF index does not own it
        self._quantizer = faiss.IndexFlatIP(dim) if ip else faiss.IndexFlatL2(dim)
        index = faiss.IndexIVFFlat(self._quantizer, dim, self.nlist,
                                   faiss.METRIC_INNER_PRODUCT if ip else faiss.METRIC_L2)
        index.cp.seed = self.seed
        index.train(items)
        index.add(items)
        return index

    def set_param(self, param, k=1):
        p = int(param) if param is not None else 1
        if p != self._param:
            self.index.nprobe = p
            self._param = p

    def close(self):
        self.index = None
        self._quantizer = None
