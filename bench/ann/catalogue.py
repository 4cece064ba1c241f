"""The catalogues the corpus sweep searches: a fitted model's trained item embeddings grown to
each corpus size by perturbed copies (:func:`grow_catalogue`), or random Gaussian vectors
(:class:`VectorSet`), with item biases folded into the inner product (:func:`with_bias`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .base import f32


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
    base = f32(base)
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
        return f32(items), f32(queries)
    b = np.asarray(biases, dtype=np.float32).reshape(-1, 1)
    return (f32(np.hstack([items, b])),
            f32(np.hstack([queries, np.ones((len(queries), 1), dtype=np.float32)])))


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
        return f32(self.queries[:n_queries])
