"""The serving floor: for each model a bare numpy path doing the same work as its ``recommend``
on the model's own arrays, timed step by step for one query.

- ``embed``: the query embedding (a known MF user: the row of ``U``; a new MF user: the
  model's fold-in solve on a prebuilt one-row query; the DNN: its query tower through its
  fastest correct runtime, ``query_embedding_one`` (TorchScript when it equals eager: the floor
  is the least work, so its embed is the compiled tower's); popularity: nothing);
- ``score``: ``V @ q`` (+ item biases);
  (a model without embeddings: its own ``score`` of a prebuilt one-row query, embed 0);
- ``topk``: history to -inf by index, ``argpartition`` of the k best, sort of those k
  (popularity: the precomputed ranking minus the history, its whole cost).

The floor's p50 is the median of the per-query sum of the three steps; ``embed_us`` etc. are
the per-step medians. As everywhere in the serving stage, the queries are timed in ``rounds``
that alternate across models, and each figure is the minimum over rounds of the round's
median; the lean ``recommend_one`` path is timed in the same rounds (``lean_p50_us``).

A model with a query tower served by a runtime of its own (``serve_info``: the softmax DNN's
``serve_runtime``) also has, in the same rounds, its lean path with the eager tower
(``lean_eager_p50_us``) and the lean path's embed step alone (``query_embedding_one``:
``lean_embed_us``, and ``lean_embed_eager_us``); ``lean_runtime`` names the tower runtime of
``lean_p50_us`` (``torchscript`` or ``eager``, ``lean_runtime_note`` why not TorchScript).

Every figure is taken on one request's threads (``serving.request_threads``: torch and BLAS at
one thread). ``embed_alone_us`` is the embed step timed back to back, with no scoring between
(a model with a tower or a fold-in); :func:`contention_flags` compares it with the embed inside
the path (``embed_us``) and the lean path with the generic ``recommend``: a path whose steps
slow each other down (two runtimes' thread pools fighting for the cores) is flagged."""

from __future__ import annotations

import time

import numpy as np

from .serving import DEFAULT_ROUNDS, request_threads, thread_counts

STEPS = ("embed", "score", "topk")
#: the embed step inside the path may take at most this many times its time alone
EMBED_IN_PATH_MAX = 2.0
#: the lean path is flagged when slower than the generic ``recommend`` by more than this factor
#: (rounds' noise: the two are timed in different rounds)
LEAN_SLOWER_MAX = 1.1


def floor_kind(model, known: bool = True) -> str | None:
    """What the floor's embed step does for ``model``: ranking, lookup, query-tower (a tower
    served by a runtime of its own, ``query_embedding_one``), query-embedding, score."""
    if hasattr(model, "ranking") and getattr(model, "user_independent", False):
        return "ranking"
    if not (hasattr(model, "query_embeddings") and hasattr(model, "item_embeddings")):
        return "score"  # no embeddings: the model's own score() of a prebuilt query is the score step
    if hasattr(model, "query_embedding_one") and hasattr(model, "serve_info") \
            and model.serve_info()["runtime"] != "generic":
        return "query-tower"
    if known and isinstance(getattr(model, "U", None), np.ndarray) and not hasattr(model, "item_biases"):
        return "lookup"
    return "query-embedding"


class FloorJob:
    """Floor and lean-path timings of one model over single queries ``(user, history, known)``."""

    def __init__(self, model, singles, k: int = 10, warmup: int = 3):
        self.model, self.k = model, int(k)
        self.singles = [(int(u), np.asarray(h, dtype=np.int64), bool(kn)) for u, h, kn in singles]
        if not self.singles:
            raise ValueError("floor measurement needs at least one query")
        self.kind = floor_kind(model, self.singles[0][2])
        self.queries = None
        if self.kind in ("query-embedding", "score"):  # prebuilt, so the floor times the embedding alone
            self.queries = [model._one_query(u, h, kn) for u, h, kn in self.singles]
        if self.kind in ("lookup", "query-embedding", "query-tower"):
            self.V = model.item_embeddings()
            self.b = model.item_biases() if hasattr(model, "item_biases") else None
        if self.kind == "ranking":
            self.order = model.ranking()
        self.serve = model.serve_info() if hasattr(model, "serve_info") else None
        # the tower's runtimes timed apart: the chosen one (lean) and eager, when they differ
        self.runtimes = ([self.serve["runtime"], "eager"]
                         if self.serve and self.serve["runtime"] not in ("eager", "generic") else
                         [self.serve["runtime"]] if self.serve and self.serve["runtime"] == "eager" else [])
        self.steps: dict[str, list[np.ndarray]] = {
            s: [] for s in (*STEPS, "floor", "lean", "lean_eager", "lean_embed", "lean_embed_eager",
                        "embed_alone")}
        for i in range(warmup):
            self.one(i % len(self.singles))
            u, h, k, kn = self._args(i % len(self.singles))
            model.recommend_one(u, h, k=k, known=kn)
            for rt in self.runtimes:
                model.recommend_one(u, h, k=k, known=kn, runtime=rt)
                model.query_embedding_one(u, h, runtime=rt)

    def _args(self, i):
        u, h, kn = self.singles[i]
        return u, h, self.k, kn  # (user, history, k, known)

    def embed(self, i: int) -> np.ndarray:
        """Query ``i``'s embedding: the floor's embed step."""
        u, h, _ = self.singles[i]
        if self.kind == "lookup":
            return self.model.U[u]
        if self.kind == "query-tower":
            return self.model.query_embedding_one(u, h)
        return self.model.query_embeddings(self.queries[i])[0]

    def one(self, i: int) -> tuple[float, float, float, np.ndarray]:
        """One query's bare path: (embed, score, topk) seconds and the top-k ids."""
        u, h, _ = self.singles[i]
        k, pc = self.k, time.perf_counter
        if self.kind == "ranking":
            t0 = pc()
            head = self.order[:k + len(h)]
            ids = head[~np.isin(head, h)][:k]
            return 0.0, 0.0, pc() - t0, ids
        if self.kind == "score":
            t1 = pc()
            s = np.array(self.model.score(self.queries[i])[0], dtype=np.float32)
            t2 = pc()
            s[h] = -np.inf
            part = np.argpartition(-s, k - 1)[:k] if k < len(s) else np.arange(len(s))
            ids = part[np.argsort(-s[part], kind="stable")]
            return 0.0, t2 - t1, pc() - t2, ids
        t0 = pc()
        q = self.embed(i)
        t1 = pc()
        s = self.V @ q
        if self.b is not None:
            s += self.b
        t2 = pc()
        s[h] = -np.inf
        part = np.argpartition(-s, k - 1)[:k] if k < len(s) else np.arange(len(s))
        ids = part[np.argsort(-s[part], kind="stable")]
        t3 = pc()
        return t1 - t0, t2 - t1, t3 - t2, ids

    def run_round(self, n: int) -> None:
        n_floor = 0 if self.kind is None else n
        rec = np.empty((n_floor, 3))
        lean = np.empty(n)
        extra = np.empty((n, 3)) if self.runtimes else None  # lean eager, embed, embed eager
        pc, model = time.perf_counter, self.model
        for j in range(n):
            i = j % len(self.singles)
            if n_floor:
                e, s, t, _ = self.one(i)
                rec[j] = (e, s, t)
            u, h, k, kn = self._args(i)
            t0 = pc()
            model.recommend_one(u, h, k=k, known=kn)
            lean[j] = pc() - t0
            if extra is not None:
                fast, eager = self.runtimes[0], self.runtimes[-1]
                t0 = pc()
                model.recommend_one(u, h, k=k, known=kn, runtime=eager)
                t1 = pc()
                model.query_embedding_one(u, h, runtime=fast)
                t2 = pc()
                model.query_embedding_one(u, h, runtime=eager)
                extra[j] = (t1 - t0, t2 - t1, pc() - t2)
        if n_floor:
            for c, name in enumerate(STEPS):
                self.steps[name].append(rec[:, c])
            self.steps["floor"].append(rec.sum(axis=1))
        if self.kind in ("query-tower", "query-embedding"):  # the embed step alone, back to back
            alone = np.empty(n)
            for j in range(n):
                t0 = pc()
                self.embed(j % len(self.singles))
                alone[j] = pc() - t0
            self.steps["embed_alone"].append(alone)
        self.steps["lean"].append(lean)
        if extra is not None:
            for c, name in enumerate(("lean_eager", "lean_embed", "lean_embed_eager")):
                self.steps[name].append(extra[:, c])

    def result(self) -> dict:
        def p50(name):
            rounds = self.steps[name]
            return round(min(float(np.median(r)) * 1e6 for r in rounds), 3) if rounds else None

        out = {"floor_kind": self.kind, "lean_p50_us": p50("lean"), **thread_counts()}
        if self.serve is not None:
            out["lean_runtime"] = self.serve["runtime"]
            if self.serve.get("reason"):
                out["lean_runtime_note"] = str(self.serve["reason"])[:300]
            if self.serve.get("lean_us"):  # what ``auto`` timed inside the lean path
                out["lean_runtime_us"] = self.serve["lean_us"]
                out["lean_runtime_threads"] = self.serve["threads"]
            if self.runtimes:
                out.update({"lean_eager_p50_us": p50("lean_eager"), "lean_embed_us": p50("lean_embed"),
                            "lean_embed_eager_us": p50("lean_embed_eager")})
        if self.kind is not None:
            out.update({"floor_p50_us": p50("floor"), "embed_us": p50("embed"),
                        "score_us": p50("score"), "topk_us": p50("topk")})
            if self.steps["embed_alone"]:
                out["embed_alone_us"] = p50("embed_alone")
        return out


def floor_profiles(specs, n: int = 200, k: int = 10, rounds: int = DEFAULT_ROUNDS,
                   warmup: int = 3) -> list[dict]:
    """Floor, decomposition and lean-path figures of several ``(model, singles)`` pairs, their
    rounds interleaved (round 1 of every model, then round 2, ...); ``singles`` are
    ``(user, history_item_ids, known)`` triples, cycled."""
    with request_threads():
        jobs = [FloorJob(m, s, k=k, warmup=warmup) for m, s in specs]
        per = max(1, int(n) // max(1, int(rounds)))
        for _ in range(max(1, int(rounds))):
            for job in jobs:
                job.run_round(per)
    return [job.result() for job in jobs]


def contention_flags(prof: dict, embed_max: float = EMBED_IN_PATH_MAX,
                     lean_max: float = LEAN_SLOWER_MAX) -> list[str]:
    """What is wrong with a serving row's lean path, one sentence each (empty: nothing): the
    lean path slower than the model's generic ``recommend`` (``lean_p50_us`` > ``lean_max`` x
    ``p50_us``: both medians pooled over all rounds, so like is compared with like; a row with
    only ``p50_min_us`` uses that), or the embed step inside the path (``embed_us``) over ``embed_max`` times
    the same step alone (``embed_alone_us``). Either means the path's steps slow each other
    down (thread pools fighting for the cores), so its figure is not the model's cost."""
    flags = []
    lean = prof.get("lean_p50_us")
    generic = prof.get("p50_us", prof.get("p50_min_us"))
    if _num(lean) and _num(generic) and lean > lean_max * generic:
        flags.append(f"lean path slower than generic recommend ({lean:.0f} vs {generic:.0f} us)")
    inside, alone = prof.get("embed_us"), prof.get("embed_alone_us")
    if _num(inside) and _num(alone) and alone > 0 and inside > embed_max * alone:
        flags.append(f"embed inside the lean path {inside:.0f} us > {embed_max:g}x its time "
                     f"alone ({alone:.0f} us)")
    return flags


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x)


def ratio_to_floor(measured_us, floor_us) -> float | None:
    """``measured / floor`` (None when either is missing or the floor is not positive)."""
    if measured_us is None or not floor_us or floor_us <= 0:
        return None
    return round(float(measured_us) / float(floor_us), 3)
