"""Approximate nearest-neighbour indexes for maximum-inner-product search (MIPS), one module
per index with its parameter grid beside it, behind one factory (:func:`make_index`,
:func:`available`).

Indexes (:data:`INDEXES`, the sweep's default order):

- ``exact`` (``exact.py``): numpy matmul + argpartition over every item (the reference).
- ``hnswlib`` (``hnswlib.py``): hnswlib HNSW (``M``, ``ef_construction``), swept over ``ef``.
- ``faiss-hnsw`` (``faiss_hnsw.py``): faiss ``IndexHNSWFlat`` (``M``, ``efConstruction``),
  swept over ``efSearch``.
- ``faiss-ivf`` (``faiss_ivf.py``): faiss ``IndexIVFFlat``, ``nlist ~ nlist_factor * sqrt(n)``,
  swept over ``nprobe``.

Each index module's ``PARAMS`` (construction parameters and the values swept) and ``QUICK``
(the ``--quick`` sweep) are the ``sweeps.ann_params`` defaults (:func:`default_params`).
``base.py`` holds the interface and the two ways to search by inner product (:data:`MIPS`:
``ip``, the library's own inner-product metric; ``l2``, the exact reduction of MIPS to L2
nearest neighbours, one extra item coordinate); ``measure.py`` the ann-benchmarks style
measurement (recall@k against exact top-k, single-query p50/p99 of wall and CPU time, per
value of the search parameter; Pareto frontier, operating point); ``catalogue.py`` the vectors
searched. Searches run on one thread; a build may use ``build_threads``. faiss and hnswlib are
optional: :func:`available` says why an index cannot be built.
"""

from __future__ import annotations

import copy

from . import exact, faiss_hnsw, faiss_ivf, hnswlib
from .base import MIPS, AnnIndex, faiss_or_none

__all__ = ["INDEXES", "MIPS", "available", "default_params", "make_index"]

#: index family -> its module (the grids) and class; the order is the sweep's default order
MODULES = {"exact": exact, "hnswlib": hnswlib, "faiss-hnsw": faiss_hnsw, "faiss-ivf": faiss_ivf}
INDEXES: dict = {"exact": exact.ExactIndex, "hnswlib": hnswlib.HnswlibIndex,
                 "faiss-hnsw": faiss_hnsw.FaissHnswIndex, "faiss-ivf": faiss_ivf.FaissIvfIndex}
#: the keys of ``sweeps.ann_params.<index>`` that hold the values swept (ef, ef_search, nprobe)
SWEEP_KEYS = tuple(cls.sweep_key for cls in INDEXES.values() if cls.sweep_key)


def default_params(quick: bool = False) -> dict:
    """``sweeps.ann_params``: each index's ``PARAMS`` (or, ``quick``, its ``QUICK`` sweep),
    for the indexes that have any (a copy)."""
    return {family: copy.deepcopy(mod.QUICK if quick else mod.PARAMS)
            for family, mod in MODULES.items() if mod.PARAMS}


def available(family: str) -> str | None:
    """Why index ``family`` cannot be built here (None when it can)."""
    if family not in INDEXES:
        return f"unknown ANN index {family!r} (known: {', '.join(INDEXES)})"
    if family.startswith("faiss") and faiss_or_none() is None:
        return "faiss is not installed (pip install faiss-cpu); its rows are skipped"
    if family == "hnswlib":
        try:
            import hnswlib  # noqa: F401  optional: probed here, its rows are skipped without it
        except ImportError:
            return "hnswlib is not installed; its rows are skipped"
    return None


def make_index(family: str, params: dict | None = None, build_threads: int = 1,
               seed: int = 0, mips: str = "ip") -> AnnIndex:
    """An unbuilt index of ``family`` searching by inner product the ``mips`` way (:data:`MIPS`);
    ``params`` holds its construction parameters and, under the key of its search parameter's
    sweep (``ef``, ``ef_search``, ``nprobe``), the values to sweep."""
    if family not in INDEXES:
        raise ValueError(f"unknown ANN index {family!r} (known: {', '.join(INDEXES)})")
    params = dict(params or {})
    sweep = None
    for key in SWEEP_KEYS:
        if key in params:
            sweep = params.pop(key)
    try:
        return INDEXES[family](sweep=sweep, build_threads=build_threads, seed=seed, mips=mips,
                               **params)
    except TypeError as exc:
        raise ValueError(f"sweeps.ann_params.{family}: {exc}") from None
