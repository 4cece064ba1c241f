"""Approximate nearest-neighbour indexes for maximum-inner-product search (MIPS), behind one
interface, and the ann-benchmarks style measurement of one index: recall@k against exact top-k,
single-query latency (p50/p99, wall and the thread's CPU time), build seconds and index bytes,
per value of its search parameter.

Families (:data:`INDEXES`):

- ``exact``: numpy matmul + argpartition over every item (the reference; no parameter).
- ``hnswlib``: hnswlib HNSW (``M``, ``ef_construction``), swept over ``ef``.
- ``faiss-hnsw``: faiss ``IndexHNSWFlat`` (``M``, ``efConstruction``), swept over ``efSearch``.
- ``faiss-ivf``: faiss ``IndexIVFFlat``, ``nlist ~ nlist_factor * sqrt(n)``, swept over
  ``nprobe``.

Two ways to search by inner product (``mips``, :data:`MIPS`): ``ip``, the library's own
inner-product metric (hnswlib ``space="ip"``, faiss ``METRIC_INNER_PRODUCT`` with an
``IndexFlatIP`` coarse quantizer); ``l2``, the exact reduction of MIPS to L2 nearest neighbours
(:func:`l2_reduction`: one extra item coordinate, the query scaled onto the items' sphere), then
hnswlib ``space="l2"`` / faiss ``METRIC_L2``. Both return the largest inner products; which one
an index navigates better depends on the vectors (the sweep measures both). Searches run on one
thread (``faiss.omp_set_num_threads(1)``, hnswlib ``num_threads=1``); a build may use
``build_threads`` (recorded with its figures). faiss is optional: :func:`available` says why an
index cannot be built.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from mfsoftmax.ranking import topk

from .serving import percentiles_us

#: index family -> class; the order is the sweep's default order
INDEXES: dict = {}
#: how an index searches by inner product: ``ip`` natively; ``l2`` through the reduction of MIPS
#: to nearest neighbours (:func:`l2_reduction`)
MIPS = ("ip", "l2")


def _register(cls):
    INDEXES[cls.family] = cls
    return cls


def _f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def l2_reduction(items: np.ndarray) -> np.ndarray:
    """MIPS as L2 nearest neighbours (Bachrach et al. 2014): ``v -> [v, sqrt(R^2 - |v|^2)]``
    with ``R`` the largest item norm, and ``q -> [q, 0]``; then ``|q' - v'|^2 = |q|^2 + R^2 -
    2 q.v``, so the L2-nearest items are exactly the largest inner products."""
    items = np.asarray(items, dtype=np.float64)
    sq = np.einsum("ij,ij->i", items, items)
    extra = np.sqrt(np.maximum(sq.max() - sq, 0.0))
    return _f32(np.hstack([items, extra[:, None]]))


def exact_topk(items: np.ndarray, queries: np.ndarray, k: int, batch: int | None = None) -> np.ndarray:
    """(B x k) ids of the top-k items by inner product, best first (batched matmul; a batch's
    scores stay near 128 MB)."""
    batch = batch or max(1, min(256, (1 << 25) // max(1, len(items))))
    out = []
    for s in range(0, len(queries), batch):
        out.append(topk(queries[s:s + batch] @ items.T, k)[0])
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)


class AnnIndex:
    """One index family. ``build(items)``, then ``search(queries, k, param)`` -> (B x k) ids;
    ``nbytes`` after building; ``sweep(n)`` the search-parameter values to measure (weakly
    increasing effort); ``exhaustive(n)`` a value at which the search is exact on a small
    catalogue (tests)."""

    family = ""
    param_name: str | None = None
    default_sweep: tuple = ()

    def __init__(self, sweep=None, build_threads: int = 1, seed: int = 0, mips: str = "ip"):
        if mips not in MIPS:
            raise ValueError(f"{self.family}: mips must be one of {', '.join(MIPS)}, got {mips!r}")
        self.mips = mips if self.family != "exact" else "ip"
        self._sweep = tuple(sweep) if sweep else self.default_sweep
        self.build_threads = max(1, int(build_threads))
        self.seed = int(seed)
        self.n = 0
        self.dim = 0
        self.build_s: float | None = None
        self.build_cpu_s: float | None = None

    @property
    def label(self) -> str:
        return self.family

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
        return None

    def build(self, items: np.ndarray) -> AnnIndex:
        items = _f32(items)
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
        q = _f32(np.atleast_2d(queries))
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


@_register
class ExactIndex(AnnIndex):
    """Brute force: ``items @ q`` and argpartition (the reference every recall is against)."""

    family = "exact"

    def _build(self, items):
        self.items = items

    def _search(self, q, k):
        return topk(q @ self.items.T, k)[0]

    @property
    def nbytes(self) -> int:
        return int(self.items.nbytes)

    def close(self):
        self.items = None


@_register
class HnswlibIndex(AnnIndex):
    """hnswlib HNSW on inner product (``space="ip"``), swept over ``ef`` (>= k)."""

    family = "hnswlib"
    param_name = "ef"
    default_sweep = (10, 16, 32, 64, 128, 256, 512, 1024)

    def __init__(self, M: int = 16, ef_construction: int = 100, **kw):
        super().__init__(**kw)
        self.M, self.ef_construction = int(M), int(ef_construction)
        self._ef = None

    @property
    def label(self) -> str:
        return self._tag(f"hnswlib-hnsw(M={self.M})")

    def exhaustive(self, n):
        return int(n)

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


def faiss_or_none():
    """The faiss module, or None when it cannot be imported."""
    try:
        import faiss  # optional: faiss-cpu (the ann extra)
    except ImportError:
        return None
    return faiss


class _FaissIndex(AnnIndex):
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


@_register
class FaissHnswIndex(_FaissIndex):
    """faiss ``IndexHNSWFlat(d, M, METRIC_INNER_PRODUCT)``, swept over ``efSearch``."""

    family = "faiss-hnsw"
    param_name = "efSearch"
    default_sweep = (16, 32, 64, 128, 256, 512, 1024)

    def __init__(self, M: int = 32, ef_construction: int = 80, **kw):
        super().__init__(**kw)
        self.M, self.ef_construction = int(M), int(ef_construction)

    @property
    def label(self) -> str:
        return self._tag(f"faiss-hnsw(M={self.M})")

    def exhaustive(self, n):
        return int(n)

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


@_register
class FaissIvfIndex(_FaissIndex):
    """faiss ``IndexIVFFlat`` on inner product (coarse quantizer ``IndexFlatIP``), ``nlist =
    round(nlist_factor * sqrt(n))`` (at most n / 39, faiss's training minimum), swept over
    ``nprobe`` (capped at nlist)."""

    family = "faiss-ivf"
    param_name = "nprobe"
    default_sweep = (1, 2, 4, 8, 16, 32, 64, 128, 256)

    def __init__(self, nlist_factor: float = 4.0, **kw):
        super().__init__(**kw)
        self.nlist_factor = float(nlist_factor)
        self.nlist: int | None = None

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


def single_thread(n: int = 1) -> None:
    """Limit every BLAS / OpenMP pool loaded so far (faiss brings its own) to ``n`` threads."""
    threadpool_limits(limits=int(n))
    faiss = faiss_or_none()
    if faiss is not None:
        faiss.omp_set_num_threads(int(n))


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
    for key in ("ef", "ef_search", "nprobe"):
        if key in params:
            sweep = params.pop(key)
    try:
        return INDEXES[family](sweep=sweep, build_threads=build_threads, seed=seed, mips=mips,
                               **params)
    except TypeError as exc:
        raise ValueError(f"sweeps.ann_params.{family}: {exc}") from None


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """Per-query share of the exact top-k found (ids < 0, faiss's padding, never count)."""
    k = exact.shape[1]
    return np.array([len(set(f[f >= 0].tolist()) & set(e.tolist())) / k
                     for f, e in zip(found, exact, strict=True)])


def time_queries(index: AnnIndex, queries: np.ndarray, k: int, param, warmup: int = 20):
    """Per-query wall seconds and CPU seconds of this thread (one query per call, after
    ``warmup`` untimed calls; searches run on the calling thread) and the ids found. The CPU
    time is what the search costs when the machine is shared: a preempted query's wall time
    grows, its CPU time does not."""
    q = _f32(queries)
    index.set_param(param, k)
    for i in range(min(warmup, len(q))):
        index.query(q[i:i + 1], k)
    secs, cpu = np.empty(len(q)), np.empty(len(q))
    ids = np.empty((len(q), k), dtype=np.int64)
    for i in range(len(q)):
        c0, t0 = time.thread_time(), time.perf_counter()
        found = index.query(q[i:i + 1], k)
        secs[i], cpu[i] = time.perf_counter() - t0, time.thread_time() - c0
        ids[i, :found.shape[1]] = found[0]
        ids[i, found.shape[1]:] = -1
    return secs, cpu, ids


def measure_index(index: AnnIndex, queries: np.ndarray, exact_ids: np.ndarray, k: int,
                  warmup: int = 20) -> list[dict]:
    """One row per value of the index's sweep: param, p50/p95/p99/mean (µs, wall), p50/p99 of
    the thread's CPU time (``p50_cpu_us``, ``p99_cpu_us``), recall@k vs exact."""
    rows = []
    params = index.sweep(index.n) if index.param_name else [None]
    for p in params:
        if index.family == "hnswlib" and p is not None and int(p) < k:
            continue  # hnswlib needs ef >= k
        secs, cpu, ids = time_queries(index, queries, k, p, warmup)
        cpu_us = np.asarray(cpu) * 1e6
        rows.append({"param": index.param_name, "param_value": p, **percentiles_us(secs),
                     "p50_cpu_us": float(np.percentile(cpu_us, 50)),
                     "p99_cpu_us": float(np.percentile(cpu_us, 99)),
                     "recall_vs_exact": float(recall_at_k(ids, exact_ids).mean())})
    return rows


def pareto(points: list[dict], x: str = "p50_us", y: str = "recall_vs_exact") -> list[dict]:
    """The points no other point beats on both ``x`` (lower) and ``y`` (higher), by ``x``."""
    pts = sorted((p for p in points if p.get(x) is not None and p.get(y) is not None),
                 key=lambda p: (p[x], -p[y]))
    out, best = [], -math.inf
    for p in pts:
        if p[y] > best:
            out.append(p)
            best = p[y]
    return out


def operating_point(points: list[dict], target_recall: float) -> dict | None:
    """The fastest point (p50) with recall >= ``target_recall``, else the most accurate one."""
    pts = [p for p in points if p.get("p50_us") is not None and p.get("recall_vs_exact") is not None]
    if not pts:
        return None
    ok = [p for p in pts if p["recall_vs_exact"] >= target_recall]
    if ok:
        return min(ok, key=lambda p: p["p50_us"])
    return max(pts, key=lambda p: (p["recall_vs_exact"], -p["p50_us"]))


# ----------------------------------------------------------------------------- catalogues
def unique_rows(x: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct row of ``x`` (byte-exact), in order."""
    x = np.ascontiguousarray(x)
    view = x.view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))).ravel()
    _, first = np.unique(view, return_index=True)
    return np.sort(first)


def n_duplicate_rows(x: np.ndarray) -> int:
    """How many rows of ``x`` repeat an earlier row exactly."""
    return int(len(x) - len(unique_rows(x)))


def grow_catalogue(base: np.ndarray, n: int, noise: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """A catalogue of ``n`` items grown from trained embeddings ``base`` (m x d).

    Exact duplicate rows of ``base`` (e.g. the zero factors of items never seen in training)
    are dropped first. ``n <= m``: a random subset of the distinct trained rows. ``n > m``: all of
    them plus ``n - m`` perturbed copies: ``v = base[s] + noise * L z`` with ``s`` a uniformly
    drawn trained item, ``z ~ N(0, I_d)`` and ``L L^T`` the covariance of the trained
    embeddings, so each copy sits near its source (``noise`` times the cloud's spread along
    each direction) and the catalogue keeps the trained cloud's shape and norm distribution.
    A copy is never an exact duplicate (checked; such rows are redrawn).

    Returns ``(items (n x d) float32, source (n,) int)``: ``source[i]`` is the distinct trained
    row item ``i`` was made from (itself for the first rows).
    """
    base = _f32(base)
    base = base[unique_rows(base)]
    m, d = base.shape
    n = int(n)
    if n <= m:
        pick = np.sort(rng.choice(m, size=n, replace=False))
        return base[pick], pick
    cov = np.cov(base.astype(np.float64), rowvar=False).reshape(d, d)
    jitter = 1e-6 * max(float(np.trace(cov)) / d, 1e-12)
    L = np.linalg.cholesky(cov + jitter * np.eye(d))
    src = np.concatenate([np.arange(m), rng.integers(0, m, size=n - m)])
    items = np.empty((n, d), dtype=np.float32)
    items[:m] = base
    step = 200_000
    for s in range(m, n, step):
        e = min(n, s + step)
        z = rng.standard_normal((e - s, d))
        items[s:e] = (base[src[s:e]] + noise * (z @ L.T)).astype(np.float32)
    for _ in range(5):  # a float32 collision is vanishingly rare; redraw it if it happens
        keep = unique_rows(items)
        if len(keep) == n:
            break
        dup = np.setdiff1d(np.arange(n), keep)
        dup = dup[dup >= m]
        z = rng.standard_normal((len(dup), d))
        items[dup] = (base[src[dup]] + noise * (z @ L.T)).astype(np.float32)
    return items, src


def distinct_sources(exact_ids: np.ndarray, source: np.ndarray | None) -> float | None:
    """Mean number of distinct trained items the exact top-k of a query was copied from (k: no
    two copies of one item; near 1: the top-k is one item's copies)."""
    if source is None:
        return None
    return float(np.mean([len(set(source[row].tolist())) for row in exact_ids]))


def with_bias(items: np.ndarray, queries: np.ndarray, biases=None):
    """Fold per-item biases into the inner product: ``[v, b] . [q, 1] = q . v + b`` (exact).
    Without biases (or all zero) the vectors are returned as they are."""
    if biases is None or not np.any(np.asarray(biases)):
        return _f32(items), _f32(queries)
    b = np.asarray(biases, dtype=np.float32).reshape(-1, 1)
    return (_f32(np.hstack([items, b])),
            _f32(np.hstack([queries, np.ones((len(queries), 1), dtype=np.float32)])))


@dataclass
class VectorSet:
    """One family's vectors for the corpus sweep.

    ``vectors="trained"``: a fitted model's item embeddings (``items``, m x d, biases folded in)
    grown to each corpus size by :func:`grow_catalogue`, and its query embeddings of real test
    users (``queries``). ``vectors="random"``: i.i.d. N(0, I_dim) items and queries, drawn per
    size (the labelled worst case: no structure for an index to exploit).
    """

    model: str                       # the row label: "mf", "dnn" or "random"
    vectors: str = "trained"
    items: np.ndarray | None = None
    queries: np.ndarray | None = None
    dim: int = 64
    source_model: str | None = None  # the fitted model the trained vectors come from
    query_embedding_us: float | None = None
    info: dict = field(default_factory=dict)

    def catalogue(self, n: int, noise: float, rng) -> tuple[np.ndarray, np.ndarray | None]:
        """``(items, source)`` of a corpus of ``n`` items (``source``: None for random ones)."""
        if self.vectors == "random":
            return rng.standard_normal((int(n), self.dim), dtype=np.float32), None
        return grow_catalogue(self.items, n, noise, rng)

    def query_vectors(self, n_queries: int, rng) -> np.ndarray:
        if self.vectors == "random":
            return rng.standard_normal((int(n_queries), self.dim), dtype=np.float32)
        return _f32(self.queries[:n_queries])
