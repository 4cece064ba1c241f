"""Scaling sweeps: serving cost vs corpus size (exact and ANN), training cost vs data size, and
MF's offline option (top-k for every user precomputed)."""

from __future__ import annotations

import time

import numpy as np

from mfsoftmax.ranking import topk

from .measure import RssMonitor
from .serving import percentiles_us


def _topk_1d(scores: np.ndarray, k: int) -> np.ndarray:
    return topk(scores[None, :], k)[0][0]


class _Tower:
    """A query tower of the DNN's shape (features -> hidden -> d) in numpy, float32."""

    def __init__(self, n_in: int, hidden: int, dim: int, rng):
        self.w1 = (rng.standard_normal((n_in, hidden)) / np.sqrt(n_in)).astype(np.float32)
        self.w2 = (rng.standard_normal((hidden, dim)) / np.sqrt(hidden)).astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x @ self.w1, 0.0) @ self.w2


def serving_vs_corpus(sizes, dim: int = 64, n_queries: int = 300, k: int = 10, ann: str | None = "hnswlib",
                      ann_ef: int = 64, seed: int = 0, time_budget_s: float = 120.0,
                      dnn_tower=None, log=None) -> list[dict]:
    """p50/p95 latency of one query against ``n_items`` synthetic item embeddings.

    ``mf``: look up a precomputed user embedding, score, top-k. ``dnn``: compute the query
    embedding with a tower (``dnn_tower(x) -> (1 x dim)``, default an MLP 128 -> 256 -> dim in
    numpy; the suite passes the fitted DNN's own tower), then score and top-k. Rows with
    ``index="exact"`` use a full matmul + argpartition; rows with the ANN name use an
    inner-product HNSW index and report its recall@k against exact.
    """
    rng = np.random.default_rng(seed)
    tower = dnn_tower or _Tower(128, 256, dim, rng)
    rows, t_start = [], time.perf_counter()
    task = log.task("corpus sizes", len(sizes)) if log is not None else None
    for n in sizes:
        if task is not None and rows:
            task.step(f"{rows[-1]['n_items']} items")
        if time.perf_counter() - t_start > time_budget_s:
            rows.append({"model": "mf", "n_items": int(n), "index": "skipped", "p50_us": None,
                         "recall_vs_exact": None, "note": f"time budget {time_budget_s}s spent"})
            continue
        n = int(n)
        items = rng.standard_normal((n, dim)).astype(np.float32)
        users = rng.standard_normal((n_queries, dim)).astype(np.float32)
        feats = rng.standard_normal((n_queries, getattr(tower, "n_in", 128))).astype(np.float32)
        exact_ids, times = [], {"mf": [], "dnn": []}
        for i in range(n_queries):
            t0 = time.perf_counter()
            exact_ids.append(_topk_1d(items @ users[i], k))
            times["mf"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            q = np.asarray(tower(feats[i:i + 1]), dtype=np.float32)[0]
            _topk_1d(items @ q, k)
            times["dnn"].append(time.perf_counter() - t0)
        for fam in ("mf", "dnn"):
            rows.append({"model": fam, "n_items": n, "index": "exact", **percentiles_us(times[fam]),
                         "recall_vs_exact": 1.0})
        if ann:
            rows.extend(_ann_rows(ann, items, users, feats, tower, exact_ids, k, ann_ef, seed))
    if task is not None:
        task.step(f"{rows[-1]['n_items']} items" if rows else "")
        task.close()
    return rows


def _ann_rows(ann, items, users, feats, tower, exact_ids, k, ef, seed) -> list[dict]:
    if ann != "hnswlib":
        raise ValueError(f"unknown ANN index {ann!r} (hnswlib)")
    import hnswlib

    n, dim = items.shape
    t0 = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=dim)
    index.init_index(max_elements=n, ef_construction=100, M=16, random_seed=seed)
    index.set_num_threads(1)
    index.add_items(items, np.arange(n))
    build_s = time.perf_counter() - t0
    index.set_ef(max(ef, k))
    times = {"mf": [], "dnn": []}
    recall = []
    for i in range(len(users)):
        t0 = time.perf_counter()
        labels, _ = index.knn_query(users[i:i + 1], k=k)
        times["mf"].append(time.perf_counter() - t0)
        recall.append(len(set(labels[0].tolist()) & set(exact_ids[i].tolist())) / k)
        t0 = time.perf_counter()
        q = np.asarray(tower(feats[i:i + 1]), dtype=np.float32)
        index.knn_query(q, k=k)
        times["dnn"].append(time.perf_counter() - t0)
    return [{"model": fam, "n_items": n, "index": f"hnsw(M=16,ef={ef})", **percentiles_us(times[fam]),
             "recall_vs_exact": float(np.mean(recall)), "build_s": build_s} for fam in ("mf", "dnn")]


def offline_topk(model, n_users: int, k: int = 100, batch: int = 2048) -> dict:
    """Precompute the top-k of every known user (MF's offline serving option): time and bytes."""
    U = model.U  # precomputed user factors (n_users x d)
    V = model.item_embeddings()
    t0 = time.perf_counter()
    nbytes = 0
    for start in range(0, n_users, batch):
        s = U[start:start + batch] @ V.T
        ids, sc = topk(s, k)
        nbytes += ids.astype(np.int32).nbytes + sc.astype(np.float32).nbytes
    wall = time.perf_counter() - t0
    return {"n_users": int(n_users), "k": int(k), "wall_s": wall, "bytes": int(nbytes),
            "per_user_us": wall / max(1, n_users) * 1e6}


def training_vs_size(sizes, build_models: dict, n_items: int = 10000, mean_activity: float = 20.0,
                     seed: int = 0, time_budget_s: float = 120.0) -> list[dict]:
    """Training time per iteration/epoch and peak RSS on synthetic data of growing size.

    ``build_models`` maps a model name to ``lambda: model`` (fit for one iteration/epoch).
    """
    from mfsoftmax.datasets import load

    rows, t_start = [], time.perf_counter()
    for n_inter in sizes:
        n_inter = int(n_inter)
        if time.perf_counter() - t_start > time_budget_s:
            for name in build_models:
                rows.append({"model": name, "n_interactions": n_inter, "n_items": int(n_items),
                             "wall_s": None, "peak_rss_mb": None,
                             "note": f"time budget {time_budget_s}s spent"})
            continue
        n_users = max(100, int(n_inter / mean_activity))
        data = load("synthetic", n_users=n_users, n_items=n_items, n_groups=20,
                    mean_activity=mean_activity, seed=seed)
        for name, build in build_models.items():
            model = build()
            with RssMonitor() as mon:
                t0 = time.perf_counter()
                model.fit(data)
                wall = time.perf_counter() - t0
            rows.append({"model": name, "n_interactions": int(data.n_interactions),
                         "n_items": int(n_items), "n_users": int(n_users), "wall_s": wall,
                         "peak_rss_mb": round(mon.delta_mb, 3)})
    return rows
