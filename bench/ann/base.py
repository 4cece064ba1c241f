"""What every ANN index shares: the :class:`AnnIndex` interface (build, search, the sweep of
its search parameter), the two ways to search by inner product (:data:`MIPS`, with
:func:`l2_reduction`), and the thread limits of builds and searches (:func:`single_thread`)."""

from __future__ import annotations

import time

import numpy as np
from threadpoolctl import threadpool_limits

#: how an index searches by inner product: ``ip`` natively; ``l2`` through the reduction of MIPS
#: to nearest neighbours (:func:`l2_reduction`)
MIPS = ("ip", "l2")


def f32(x: np.ndarray) -> np.ndarray:
    """``x`` as a C-contiguous float32 array (what the libraries take)."""
    return np.ascontiguousarray(x, dtype=np.float32)


def l2_reduction(items: np.ndarray) -> np.ndarray:
    """MIPS as L2 nearest neighbours (Bachrach et al. 2014): ``v -> [v, sqrt(R^2 - |v|^2)]``
    with ``R`` the largest item norm, and ``q -> [q, 0]``; then ``|q' - v'|^2 = |q|^2 + R^2 -
    2 q.v``, so the L2-nearest items are exactly the largest inner products."""
    items = np.asarray(items, dtype=np.float64)
    sq = np.einsum("ij,ij->i", items, items)
    extra = np.sqrt(np.maximum(sq.max() - sq, 0.0))
    return f32(np.hstack([items, extra[:, None]]))


def faiss_or_none():
    """The faiss module, or None when it cannot be imported."""
    try:
        import faiss  # optional: faiss-cpu (the ann extra)
    except ImportError:
        return None
    return faiss


def single_thread(n: int = 1) -> None:
    """Limit every BLAS / OpenMP pool loaded so far (faiss brings its own) to ``n`` threads."""
    threadpool_limits(limits=int(n))
    faiss = faiss_or_none()
    if faiss is not None:
        faiss.omp_set_num_threads(int(n))


class AnnIndex:
    """One index family. ``build(items)``, then ``search(queries, k, param)`` -> (B x k) ids;
    ``nbytes`` after building; ``sweep(n)`` the search-parameter values to measure (weakly
    increasing effort); ``exhaustive(n)`` a value at which the search is exact on a small
    catalogue (tests). ``sweep_key``: the key of the sweep in its ``sweeps.ann_params`` table;
    the other keys of ``params`` are construction parameters, set as attributes."""

    family = ""
    param_name: str | None = None
    sweep_key: str | None = None
    #: the index module's grid (``PARAMS``): construction parameters and, under ``sweep_key``,
    #: the values swept by default
    params: dict = {}

    def __init__(self, sweep=None, build_threads: int = 1, seed: int = 0, mips: str = "ip",
                 **construction):
        if mips not in MIPS:
            raise ValueError(f"{self.family}: mips must be one of {', '.join(MIPS)}, got {mips!r}")
        defaults = {k: v for k, v in self.params.items() if k != self.sweep_key}
        unknown = sorted(set(construction) - set(defaults))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no parameter {', '.join(unknown)}; it "
                            f"takes {', '.join(defaults) or 'none'} and {self.sweep_key}")
        for key, default in defaults.items():  # M, ef_construction, nlist_factor: their type
            setattr(self, key, type(default)(construction.get(key, default)))
        self.mips = mips if self.family != "exact" else "ip"
        self._sweep = tuple(sweep) if sweep else tuple(self.params.get(self.sweep_key, ()))
        self.build_threads = max(1, int(build_threads))
        self.seed = int(seed)
        self.n = 0
        self.dim = 0
        self.build_s: float | None = None
        self.build_cpu_s: float | None = None

    #: the row label, formatted with the index's attributes (``{M}``); the family when unset
    label_format = ""

    @property
    def label(self) -> str:
        return self._tag(self.label_format.format(**vars(self))) if self.label_format else self.family

    def _tag(self, label: str) -> str:
        """``label`` with the MIPS method when it is the reduction to L2."""
        if self.mips != "l2":
            return label
        return label[:-1] + ",l2-reduction)" if label.endswith(")") else label + "(l2-reduction)"

    @property
    def metric(self) -> str:
        """The metric the index itself searches: ``ip`` or ``l2`` (on augmented vectors)."""
        return self.mips

    def sweep(self, n: int | None = None) -> list:
        return list(self._sweep)

    def exhaustive(self, n: int):
        """A value of the search parameter at which the search is exact on ``n`` items (an
        HNSW graph's ``ef`` = n; None without a parameter)."""
        return int(n) if self.param_name else None

    def build(self, items: np.ndarray) -> AnnIndex:
        items = f32(items)
        self.n, self.dim = items.shape
        t0, c0 = time.perf_counter(), time.process_time()
        if self.mips == "l2":
            items = l2_reduction(items)
            self._radius = float(np.linalg.norm(items[0]))
        self._build(items)
        self.build_s = time.perf_counter() - t0
        self.build_cpu_s = time.process_time() - c0  # all threads: wall on a shared machine lies
        return self

    def _build(self, items: np.ndarray) -> None:
        raise NotImplementedError

    def search(self, queries: np.ndarray, k: int, param=None) -> np.ndarray:
        """(B x k) item ids by descending inner product (``queries``: B x d, or one d-vector)."""
        q = f32(np.atleast_2d(queries))
        self.set_param(param, k)
        return self.query(q, k)

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        """(B x k) ids for float32 (B x d) ``q`` at the parameter set last (the timed call)."""
        if self.mips == "l2":  # [q, 0], scaled onto the items' sphere (the same ranking)
            out = np.zeros((len(q), q.shape[1] + 1), dtype=np.float32)
            norms = np.sqrt(np.einsum("ij,ij->i", q, q))[:, None]
            np.multiply(q, self._radius / np.maximum(norms, 1e-30), out=out[:, :-1])
            q = out
        return self._search(q, k)

    def set_param(self, param, k: int = 1) -> None:
        """Set the search parameter once (outside a timed loop); ``search`` calls it too."""

    def _search(self, q: np.ndarray, k: int) -> np.ndarray:
        raise NotImplementedError

    @property
    def nbytes(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        """Free the index."""
