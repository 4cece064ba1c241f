"""Serving cost against the corpus size, ``sweeps.corpus_sizes``: exact MIPS and ANN indexes
(hnswlib HNSW, faiss HNSW, faiss IVF) swept over their search parameter, on the fitted models'
own item and query embeddings (the catalogue grown by perturbed copies) and on random Gaussian
vectors (the labelled worst case). Writes ``sweeps.serving_vs_corpus`` (one row per index and
parameter value) and ``sweeps.ann_frontier`` (the recall-vs-p50 Pareto points) and ``sweeps.score_precision``: at
each corpus size, each trained set's exact scoring in every ``serving.score_precision``
(fp32, bf16, fp16, int8 with an fp32 re-rank; ``bench/score_precision.py``), p50 beside
recall@10 against the exact fp32 top-10."""

from __future__ import annotations

import time

import numpy as np

from mfsoftmax.ranking import Queries
from mfsoftmax.results.vocabulary import SWEEP_NAME

from ..ann import INDEXES, MIPS, default_params
from ..ann.catalogue import VectorSet, with_bias
from ..context import RunContext, Section
from ..score_precision import PRECISIONS, RERANK, precision_vs_corpus
from ..serving import request_threads
from ..sweeps import serving_vs_corpus

#: this stage's config sections and their defaults (bench/config.py assembles them)
DEFAULTS = {
    # serving_vs_corpus: exact MIPS and each of ann_indexes ("hnswlib", "faiss-hnsw",
    # "faiss-ivf"; faiss optional) swept over its search parameter (ann_params: construction
    # parameters and the sweep, each index's grid in its module under bench/ann/) at each corpus
    # size, once per ann_mips way of searching by inner product ("ip": the library's
    # inner-product metric; "l2": MIPS reduced to L2 nearest neighbours by one extra
    # coordinate), on ann_vectors: "trained" (the fitted MF model's and train_dnn's embeddings,
    # else the best softmax's, grown to the size by copies perturbed by ann_grow_noise x the
    # item cloud's spread) and "random" (N(0, I_dim), the worst case, up to
    # ann_random_max_items; 0 = every size). ann_time_budget_s: the sweep's own budget (None:
    # time_budget_s). ann_build_threads: threads for index BUILDS only (searches are
    # single-threaded). The operating point: fastest at recall@10 >= ann_target_recall; the
    # target: that at p50 <= ann_target_p50_us.
    "sweeps": {"corpus_sizes": [1000, 10000], "dim": 64, "queries": 300,
               "ann_indexes": [f for f in INDEXES if f != "exact"], "ann_mips": list(MIPS),
               "ann_vectors": ["trained", "random"], "ann_params": default_params(),
               "ann_grow_noise": 0.3, "ann_random_max_items": 100000, "ann_build_threads": 1,
               "ann_warmup": 20, "ann_target_recall": 0.95, "ann_target_p50_us": 1000.0,
               "ann_time_budget_s": None, "train_dnn": "softmax-sampled-uniform",
               "time_budget_s": 120},
}
#: what ``--quick`` shrinks them to (a smoke run)
QUICK = {"sweeps": {"corpus_sizes": [1000, 10000], "queries": 50, "time_budget_s": 20,
                     "ann_warmup": 5, "ann_params": default_params(quick=True)}}


def _pick(ctx: RunContext, family: str, prefer: str | None) -> str | None:
    """The fitted model of ``family`` to take the embeddings from (``prefer`` first; for the
    DNN else the best softmax by validation score), else a configured one (fitted here)."""
    fitted = [n for n, m in ctx.fitted.items()
              if getattr(m, "family", None) == family and hasattr(m, "item_embeddings")]
    if prefer in fitted:
        return prefer
    if fitted:
        best = ctx.best_softmax(fitted) if family == "softmax" else None
        return best or fitted[0]
    configured = [n for n, _ in ctx.model_specs((family,))]
    if prefer in configured:
        return prefer
    return configured[0] if configured else None


def _query_embedding_us(model, queries, n: int = 100, warmup: int = 5) -> float:
    """p50 (µs) of ``model.query_embeddings`` for one query (the tower's forward for the DNN,
    the row lookup or fold-in solve for MF)."""
    singles = [queries[i] for i in range(min(len(queries), n + warmup))]
    for q in singles[:warmup]:
        model.query_embeddings(q)
    secs = []
    for q in singles[warmup:] or singles:
        t0 = time.perf_counter()
        model.query_embeddings(q)
        secs.append(time.perf_counter() - t0)
    return float(np.percentile(np.asarray(secs) * 1e6, 50))


def _one_request_us(model, queries) -> float:
    """:func:`_query_embedding_us` on one request's threads (``serving.request_threads``)."""
    with request_threads():
        return _query_embedding_us(model, queries)


def trained_sets(ctx: RunContext, n_queries: int) -> list:
    """A :class:`~..ann.catalogue.VectorSet` per family (MF, DNN) from the fitted models: item
    embeddings (the DNN's item biases folded in as one more coordinate) and the query
    embeddings of the test users (zero queries, which tie every item, dropped)."""
    sw = ctx.cfg["sweeps"]
    test = ctx.split.test
    rng = np.random.default_rng(ctx.seed)
    rows = np.sort(rng.choice(len(test), size=min(len(test), int(n_queries)), replace=False))
    queries = Queries(test.users[rows], test.history[rows], known=test.known_users)
    out = []
    for family, prefer in (("mf", None), ("softmax", sw.get("train_dnn"))):
        name = _pick(ctx, family, prefer)
        if name is None:
            ctx.say(f"  no {family} model configured: no trained {SWEEP_NAME[family]} rows")
            continue
        model = ctx.fitted.get(name)
        if model is None:
            ctx.say(f"  {name} not fitted by the quality stage: fitting it for the corpus sweep")
            model = ctx.fitted_on(ctx.split, True, name)
        q = np.asarray(model.query_embeddings(queries), dtype=np.float32)
        biases = model.item_biases() if hasattr(model, "item_biases") else None
        items, q = with_bias(np.asarray(model.item_embeddings(), dtype=np.float32), q, biases)
        nonzero = np.linalg.norm(q, axis=1) > 0
        q = q[nonzero]
        if not len(q):
            ctx.say(f"  {name}: every test query embedding is zero: no trained rows")
            continue
        out.append(VectorSet(
            model=SWEEP_NAME[family], vectors="trained", items=items, queries=q, dim=items.shape[1],
            source_model=name, query_embedding_us=_one_request_us(model, queries),
            info={"bias_folded": items.shape[1] > model.item_embeddings().shape[1],
                  "zero_queries_dropped": int((~nonzero).sum())}))
    return out


def run(ctx: RunContext) -> Section:
    sw = ctx.cfg["sweeps"]
    n_queries = int(sw["queries"])
    vectors = list(sw["ann_vectors"])
    sets = trained_sets(ctx, n_queries) if "trained" in vectors else []
    if "random" in vectors:
        sets.append(VectorSet(model="random", vectors="random", dim=int(sw["dim"])))
    budget = sw.get("ann_time_budget_s")
    rows, frontier = serving_vs_corpus(
        sw["corpus_sizes"], sets, k=10, indexes=list(sw["ann_indexes"]),
        mips=list(sw["ann_mips"]),
        index_params=sw["ann_params"], n_queries=n_queries, warmup=int(sw["ann_warmup"]),
        grow_noise=float(sw["ann_grow_noise"]),
        random_max_items=sw["ann_random_max_items"] or None,
        build_threads=int(sw["ann_build_threads"]),
        target_recall=float(sw["ann_target_recall"]), target_p50_us=float(sw["ann_target_p50_us"]),
        seed=ctx.seed, time_budget_s=float(sw["time_budget_s"] if budget is None else budget),
        log=ctx.log)
    scfg = ctx.cfg["serving"]
    precs = list(scfg.get("score_precision", PRECISIONS))
    by_precision = precision_vs_corpus(
        [s for s in sets if s.vectors == "trained"], sw["corpus_sizes"], precs, k=10,
        rerank=int(scfg.get("score_rerank", RERANK)), n_queries=min(n_queries, 50),
        grow_noise=float(sw["ann_grow_noise"]), seed=ctx.seed,
        time_budget_s=float(sw["time_budget_s"] if budget is None else budget)) if precs else []
    for r in by_precision:
        if r.get("precision"):
            ctx.say(f"  {r['n_items']} items, {r['model']}, {r['precision']}: p50 "
                    f"{r['p50_us']:.0f} us, recall@10 vs fp32 {r['recall_vs_exact']:.3f}")
    return Section(sweeps={"serving_vs_corpus": rows, "ann_frontier": frontier,
                           "score_precision": by_precision})
