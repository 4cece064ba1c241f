"""Scaling sweeps: serving cost vs corpus size (exact and ANN), training cost vs data size, and
MF's offline option (top-k for every user precomputed)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from mfsoftmax.datasets import load
from mfsoftmax.ranking import topk

from .ann import available, make_index
from .ann.base import single_thread
from .ann.catalogue import distinct_sources, n_duplicate_rows
from .ann.exact import exact_topk
from .ann.measure import measure_index, operating_point, pareto
from .engines import engine_of, spawns_processes
from .measure import RssMonitor

#: how a row's index searched by inner product (``mips``)
MIPS_LABELS = {"ip": "inner product", "l2": "l2 reduction"}


def serving_vs_corpus(sizes, vector_sets, k: int = 10,
                      indexes=("hnswlib", "faiss-hnsw", "faiss-ivf"), mips=("ip", "l2"),
                      index_params: dict | None = None, n_queries: int = 300, warmup: int = 20,
                      grow_noise: float = 0.3, random_max_items: int | None = None,
                      build_threads: int = 1, target_recall: float = 0.95,
                      target_p50_us: float = 1000.0, seed: int = 0, time_budget_s: float = 120.0,
                      log=None) -> tuple[list[dict], list[dict]]:
    """Single-query MIPS cost against the corpus size, exact and through ANN indexes swept over
    their search parameter (ann-benchmarks style). Returns ``(rows, frontier)``.

    ``vector_sets``: :class:`~.ann.catalogue.VectorSet` per family (the fitted MF model's and the DNN's
    item and query embeddings, grown to each size by perturbed copies; and random Gaussian
    vectors, the labelled worst case, up to ``random_max_items``). For each size and set: an
    ``exact`` row (matmul + top-k, the reference) and, for each index of ``indexes`` and each
    value of its search parameter, a row with p50/p95/p99 (µs, one query per call, one thread,
    the query embedding precomputed), recall@k against exact, build seconds and index bytes,
    once per way of searching by inner product in ``mips``: ``ip`` (the library's inner-product
    metric) and ``l2`` (MIPS reduced to L2 nearest neighbours, :func:`~.ann.base.l2_reduction`).
    The row per (size, set, index) that is fastest at recall >= ``target_recall`` (else the
    most accurate) has ``operating_point: true``. ``frontier``: per (size, set, index) the
    Pareto points (recall vs p50) and that operating point.

    ``time_budget_s``: an index (or a whole size) whose predicted cost (its last size's, scaled
    by the item count) would pass the budget is skipped with a row saying so (``index:
    "skipped"``). An index whose library is missing (faiss) is skipped the same way.
    """
    sweep = _CorpusSweep(k=k, indexes=list(indexes), mips=list(mips),
                         index_params=index_params or {}, n_queries=n_queries, warmup=warmup,
                         grow_noise=grow_noise, build_threads=build_threads,
                         target_recall=target_recall, target_p50_us=target_p50_us, seed=seed,
                         time_budget_s=time_budget_s, log=log)
    task = log.task("corpus sizes", len(sizes)) if log is not None else None
    for n in sizes:
        n = int(n)
        for set_no, vs in enumerate(vector_sets):
            if vs.vectors == "random" and random_max_items and n > int(random_max_items):
                continue
            sweep.measure(n, set_no, vs)
        if task is not None:
            task.step(f"{n} items")
    if task is not None:
        task.close()
    return sweep.rows, sweep.frontier


@dataclass
class _CorpusSweep:
    """The state of :func:`serving_vs_corpus`: its options, the rows and frontier so far, and
    each (set, index, mips)'s last measured cost (to predict the next size's)."""

    k: int
    indexes: list
    mips: list
    index_params: dict
    n_queries: int
    warmup: int
    grow_noise: float
    build_threads: int
    target_recall: float
    target_p50_us: float
    seed: int
    time_budget_s: float
    log: object = None
    rows: list = field(default_factory=list)
    frontier: list = field(default_factory=list)
    t_start: float = field(default_factory=time.perf_counter)
    # (model, vectors, family, mips) -> (n, seconds) of its last measured block
    last_cost: dict = field(default_factory=dict)

    def spent(self) -> float:
        return time.perf_counter() - self.t_start

    def skip(self, base: dict, family: str, note: str) -> None:
        self.rows.append({**base, "index": "skipped", "skipped_index": family, "p50_us": None,
                          "recall_vs_exact": None, "note": note})

    def measure(self, n: int, set_no: int, vs) -> None:
        """Every index's rows on set ``vs``'s catalogue of ``n`` items."""
        base = {"model": vs.model, "vectors": vs.vectors, "n_items": n}
        if self.spent() > self.time_budget_s:
            self.skip(base, "all", f"time budget {self.time_budget_s:g}s spent")
            return
        rng = np.random.default_rng([int(self.seed), n, set_no])
        items, source = vs.catalogue(n, self.grow_noise, rng)
        queries = vs.query_vectors(self.n_queries, rng)
        exact_ids = exact_topk(items, queries, self.k)
        base.update(dim=int(items.shape[1]), n_queries=len(queries))
        if vs.vectors == "trained":
            base.update(source_model=vs.source_model, trained_items=int(len(vs.items)),
                        query_embedding_us=vs.query_embedding_us, **vs.info)
            if n > len(vs.items):
                base.update(grow_noise=float(self.grow_noise),
                            exact_duplicates=n_duplicate_rows(items),
                            top10_distinct_sources=distinct_sources(exact_ids, source))
        for family, how in [("exact", "ip")] + [(f, m) for f in self.indexes for m in self.mips]:
            why = available(family) or self.over_budget((vs.model, vs.vectors, family, how), n)
            if why:
                self.skip({**base, "mips": how}, family, why)
                continue
            t0 = time.perf_counter()
            self.rows.extend(_ann_rows(family, how, items, queries, exact_ids, self.k, base,
                                       self.index_params.get(family), self.build_threads,
                                       self.seed, self.warmup, self.target_recall,
                                       self.target_p50_us, self.frontier))
            self.last_cost[(vs.model, vs.vectors, family, how)] = (n, time.perf_counter() - t0)
            self.say_frontier(n, vs)

    def over_budget(self, key: tuple, n: int) -> str | None:
        """Why the block ``key`` at ``n`` items is not run (its last size's cost, scaled by the
        item count, would pass the budget), else None."""
        if key not in self.last_cost:
            return None
        n0, sec0 = self.last_cost[key]
        predicted = sec0 * (n / n0) ** 1.1
        spent = self.spent()
        if spent + predicted > self.time_budget_s:
            return (f"predicted {predicted:.0f}s would pass the time budget "
                    f"{self.time_budget_s:g}s ({spent:.0f}s spent)")
        return None

    def say_frontier(self, n: int, vs) -> None:
        """The log line of the block just measured (its operating point)."""
        if self.log is None:
            return
        f = self.frontier[-1]
        op = f["operating_point"] or {}
        self.log.say(f"  {n} items, {vs.model} ({vs.vectors}), {f['index']}: "
                     f"recall {op.get('recall_vs_exact', float('nan')):.3f} at p50 "
                     f"{op.get('p50_us', float('nan')):.0f} us"
                     + (f" ({f['param']}={op.get('param_value')})" if f["param"] else "")
                     + (f", build {f['build_s']:.1f}s" if f["param"] else ""))


def _ann_rows(family, mips, items, queries, exact_ids, k, base, params, build_threads, seed,
              warmup, target_recall, target_p50_us, frontier) -> list[dict]:
    """Build one index over ``items`` (searching by inner product the ``mips`` way), sweep its
    search parameter, and return its rows (the operating point marked); append its Pareto
    frontier to ``frontier``."""
    index = make_index(family, params, build_threads=build_threads if family != "exact" else 1,
                           seed=seed, mips=mips).build(items)
    try:
        measured = measure_index(index, queries, exact_ids, k, warmup)
        nbytes = index.nbytes
    finally:
        single_thread()
    label = index.label
    built = {"build_s": float(index.build_s), "build_cpu_s": float(index.build_cpu_s),
             "build_threads": int(index.build_threads), "search_threads": 1,
             "index_bytes": int(nbytes)}
    index.close()
    out = []
    for m in measured:
        row = {**base, "index": label, "mips": MIPS_LABELS[mips], **m, **built,
               "operating_point": False}
        if row.get("query_embedding_us") is not None:
            row["total_p50_us"] = row["p50_us"] + row["query_embedding_us"]
        out.append(row)
    op = operating_point(out, target_recall)
    if op is not None:
        op["operating_point"] = True
    keep = ("param_value", "recall_vs_exact", "p50_us", "p99_us", "p50_cpu_us")
    frontier.append({
        "model": base["model"], "vectors": base["vectors"], "n_items": base["n_items"],
        **({"source_model": base["source_model"]} if base.get("source_model") else {}),
        "index": label, "mips": MIPS_LABELS[mips], "param": index.param_name, **built,
        "points": [{key: p[key] for key in keep} for p in pareto(out)],
        "operating_point": {key: op[key] for key in keep} if op else None,
        "target_recall": float(target_recall), "target_p50_us": float(target_p50_us),
        "meets_target": bool(op and op["recall_vs_exact"] >= target_recall
                             and op["p50_us"] <= target_p50_us),
        # the same on the thread's CPU time (what the search costs on a shared machine)
        "meets_target_cpu": bool(op and op["recall_vs_exact"] >= target_recall
                                 and op.get("p50_cpu_us", op["p50_us"]) <= target_p50_us),
    })
    return out


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
                     seed: int = 0, time_budget_s: float = 120.0, families: dict | None = None,
                     say=None) -> list[dict]:
    """Training time of one pass and peak RSS on synthetic data of growing size.

    ``build_models`` maps a model name to ``lambda: model`` (fit for one iteration/epoch);
    ``families`` a name to its family (recorded per row). Per row: ``wall_s`` (the whole fit),
    ``s_per_pass`` (a DNN's epoch time without setup and validation; WALS: the fit over its
    iterations), ``examples_per_s`` (interactions per second of one pass: the DNN's training
    examples), the process's own peak RSS growth (``peak_rss_mb``) and high-water mark
    (``peak_rss_abs_mb``), child processes' peak (``children_peak_rss_mb``: Spark JVMs, DDP
    ranks; counted as :func:`engines.spawns_processes` says: a Spark JVM, DDP ranks),
    ``engine``, ``workers``, ``processes`` and ``dim``. No new size starts once the sweep
    has run ``time_budget_s`` (its rows say so); a size is never cut short. A model whose fit
    raises gets a row with the error in ``note`` and is not tried at larger sizes; the other
    models go on.
    """
    rows, t_start = [], time.perf_counter()
    families = families or {}
    failed: dict = {}  # model -> the size it failed at (larger sizes are not tried)

    def not_run(name, n, note, **extra) -> dict:
        """The row of a size a model did not run at, with why."""
        return {"model": name, "family": families.get(name), "n_interactions": int(n),
                "n_items": int(n_items), "wall_s": None, "peak_rss_mb": None, "note": note, **extra}

    for n_inter in sizes:
        n_inter = int(n_inter)
        if time.perf_counter() - t_start > time_budget_s:
            rows += [not_run(name, n_inter, f"time budget {time_budget_s}s spent")
                     for name in build_models]
            continue
        n_users = max(100, int(n_inter / mean_activity))
        data = load("synthetic", n_users=n_users, n_items=n_items, n_groups=20,
                    mean_activity=mean_activity, seed=seed)
        for name, build in build_models.items():
            if name in failed:
                rows.append(not_run(name, n_inter, f"not run: failed at {failed[name]:,} interactions"))
                continue
            model = build()
            try:
                with RssMonitor(children=spawns_processes(model)) as mon:
                    t0 = time.perf_counter()
                    model.fit(data)
                    wall = time.perf_counter() - t0
            except Exception as exc:  # noqa: BLE001 - one model's failure (a JVM out of memory) is a row
                failed[name] = int(data.n_interactions)
                msg = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
                rows.append(not_run(name, data.n_interactions, f"failed: {msg}", **engine_of(model)))
                if say is not None:
                    say(f"  {name}: FAILED at {data.n_interactions:,} interactions: {msg}")
                continue
            per_pass = pass_seconds(model, wall)
            row = {"model": name, "family": families.get(name),
                   "n_interactions": int(data.n_interactions), "n_items": int(n_items),
                   "n_users": int(n_users), "wall_s": wall, "s_per_pass": per_pass,
                   "examples_per_s": data.n_interactions / per_pass if per_pass > 0 else None,
                   "peak_rss_mb": round(mon.delta_mb, 3),
                   "peak_rss_abs_mb": round(mon.peak_mb, 3),
                   "children_peak_rss_mb": round(mon.children_peak_mb, 3),
                   **engine_of(model), "processes": int(mon.processes),
                   "dim": int(getattr(model, "dim", 0)) or None}
            rows.append(row)
            if say is not None:
                say(f"  {name} ({row['engine']}, {row['workers']} worker(s)): "
                    f"{row['n_interactions']:,} interactions, {per_pass:.2f} s/pass, "
                    f"peak RSS {mon.peak_mb / 1024:.2f} GiB"
                    + (f" + children {mon.children_peak_mb / 1024:.2f} GiB"
                       if mon.children_peak_mb else ""))
    return rows


def pass_seconds(model, wall: float) -> float:
    """Seconds of one training pass: the DNN's mean epoch time (``history``; training only),
    else the fit's wall time over its iterations (WALS, setup included)."""
    epochs = [h["wall_s"] for h in (getattr(model, "history", None) or []) if "wall_s" in h]
    if epochs:
        return float(sum(epochs) / len(epochs))
    its = int(getattr(model, "iterations_run", 0) or getattr(model, "iterations", 1) or 1)
    return wall / max(1, its)
