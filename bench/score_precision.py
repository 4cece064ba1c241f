"""Reduced-precision scoring at serving time (``serving.score_precision``, issue 27): one
request's ``V @ q`` over the whole catalogue in

- ``fp32``: numpy's BLAS on the float32 factors (the serving path's own scoring, exact);
- ``bf16`` / ``fp16``: torch ``linear`` on a copy of V in that type (half the bytes);
- ``int8``: torch's dynamically quantized linear (fbgemm): V quantized per row (one scale per
  item), the query quantized per request, int8 products accumulated in int32;

then, for every reduced precision, an fp32 re-rank: the ``rerank`` best candidates of the
approximate scores rescored exactly (``V[cand] @ q``), their top-k returned. Each precision's
``recall@k`` is against the exact fp32 top-k of the same queries (as the ANN frontier reports
``recall_vs_exact``), beside its p50 (µs, one request's thread, rounds interleaved across the
precisions: the minimum over rounds of the round's median).
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from .serving import request_threads

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
RERANK = 100  # candidates of the approximate scores rescored in fp32


class Scorer:
    """Top-``k`` of ``V @ q`` (+ ``b``) in one ``precision``, re-ranked in fp32."""

    def __init__(self, V: np.ndarray, precision: str, b: np.ndarray | None = None,
                 rerank: int = RERANK):
        if precision not in PRECISIONS:
            raise ValueError(f"score precision {precision!r}: choose from {', '.join(PRECISIONS)}")
        self.V = np.ascontiguousarray(V, dtype=np.float32)
        self.b = None if b is None else np.asarray(b, dtype=np.float32)
        self.precision, self.rerank = precision, int(rerank)
        import torch  # lazy: torch (~2-5 s); bench.config imports this module's PRECISIONS

        Vt = torch.from_numpy(self.V)
        bt = None if self.b is None else torch.from_numpy(self.b)
        if precision in ("bf16", "fp16"):
            dt = torch.bfloat16 if precision == "bf16" else torch.float16
            W, bb = Vt.to(dt), None if bt is None else bt.to(dt)
            self._approx = _inference(lambda q: torch.nn.functional.linear(q[None].to(dt), W, bb)[0])
        elif precision == "int8":
            self._approx = _int8_linear(Vt, bt)

    def bytes(self) -> int:
        """Bytes of the catalogue as this scorer reads it."""
        return int(self.V.size * {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1}[self.precision])

    def topk(self, q: np.ndarray, k: int = 10) -> np.ndarray:
        """Ids of the ``k`` best items for the query ``q`` (d,), best first."""
        if self.precision == "fp32":
            s = self.V @ q
            if self.b is not None:
                s += self.b
            return _top(s, k)
        s = self._approx(np.asarray(q, dtype=np.float32))
        cand = _top(s, max(k, self.rerank), ordered=False)
        exact = self.V[cand] @ q
        if self.b is not None:
            exact += self.b[cand]
        return cand[_top(exact, k)]


def _int8_linear(Vt, bt):
    """``q -> V q (+ b)`` through torch's dynamic int8 linear, V quantized per row."""
    import torch  # lazy: torch off the numpy-only scoring path, as in Scorer

    lin = torch.nn.Linear(Vt.shape[1], Vt.shape[0], bias=bt is not None)
    with torch.no_grad():
        lin.weight.copy_(Vt)
        if bt is not None:
            lin.bias.copy_(bt)
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao
        warnings.simplefilter("ignore")
        from torch.ao.quantization import (  # lazy: int8 only
            per_channel_dynamic_qconfig,
            quantize_dynamic,
        )

        qlin = quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear: per_channel_dynamic_qconfig},
                                dtype=torch.qint8)
    return _inference(lambda q: qlin(q[None])[0])


def _inference(fn):
    """``fn`` (torch tensor -> tensor) as numpy float32 -> numpy float32, in inference mode."""
    import torch  # lazy: torch off the numpy-only scoring path, as in Scorer

    def run(q: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return fn(torch.from_numpy(q)).float().numpy()

    return run


def _top(s: np.ndarray, k: int, ordered: bool = True) -> np.ndarray:
    """The ``k`` largest entries' ids (sorted best first when ``ordered``)."""
    k = min(int(k), len(s))
    part = np.argpartition(-s, k - 1)[:k] if k < len(s) else np.arange(len(s))
    return part[np.argsort(-s[part], kind="stable")] if ordered else part


def recall_at_k(ids: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each row of ``exact`` (queries x k) found in the same row of ``ids``."""
    return float(np.mean([len(set(a.tolist()) & set(e.tolist())) / len(e)
                          for a, e in zip(ids, exact, strict=True)]))


def score_precision_profile(V, queries, b=None, precisions=PRECISIONS, k: int = 10,
                            rerank: int = RERANK, rounds: int = 3) -> dict:
    """``{precision: {"p50_us", "recall@k", "rerank", "bytes"}}`` of one catalogue ``V`` (n x d)
    and query embeddings ``queries`` (m x d): each precision's p50 of one request (one
    thread, ``rounds`` rounds interleaved across the precisions) and its recall@k against the
    exact fp32 top-k."""
    queries = np.asarray(queries, dtype=np.float32)
    scorers = {p: Scorer(V, p, b, rerank) for p in precisions}
    exact = np.stack([Scorer(V, "fp32", b).topk(q, k) for q in queries])
    out = {}
    with request_threads():
        ids = {p: np.stack([s.topk(q, k) for q in queries]) for p, s in scorers.items()}  # + warm-up
        best = {p: float("inf") for p in scorers}
        for _ in range(max(1, int(rounds))):
            for p, s in scorers.items():
                t = np.empty(len(queries))
                for i, q in enumerate(queries):
                    t0 = time.perf_counter()
                    s.topk(q, k)
                    t[i] = time.perf_counter() - t0
                best[p] = min(best[p], float(np.median(t)) * 1e6)
    for p, s in scorers.items():
        out[p] = {"p50_us": round(best[p], 3), f"recall@{k}": round(recall_at_k(ids[p], exact), 4),
                  "rerank": None if p == "fp32" else s.rerank, "bytes": s.bytes()}
    return out


def precision_vs_corpus(vector_sets, sizes, precisions=PRECISIONS, k: int = 10,
                        rerank: int = RERANK, n_queries: int = 50, grow_noise: float = 0.3,
                        seed: int = 0, time_budget_s: float = 120.0, rounds: int = 2) -> list[dict]:
    """One row per (corpus size, trained vector set, precision): ``p50_us`` and
    ``recall_vs_exact`` (recall@k against the exact fp32 top-k) of one request's scoring, on
    the set's catalogue grown to the size as the corpus sweep grows it
    (:meth:`~.ann.VectorSet.catalogue`). A size starts only while the sweep has run less than
    ``time_budget_s`` (later sizes get a row saying so)."""
    rows, t0 = [], time.perf_counter()
    for n in sizes:
        for set_no, vs in enumerate(v for v in vector_sets if v.vectors == "trained"):
            base = {"model": vs.model, "source_model": vs.source_model, "n_items": int(n), "k": k}
            if time.perf_counter() - t0 > time_budget_s:
                rows.append({**base, "precision": None, "p50_us": None,
                             "note": f"time budget {time_budget_s:g}s spent"})
                continue
            rng = np.random.default_rng([int(seed), int(n), set_no])
            items, _ = vs.catalogue(int(n), grow_noise, rng)
            queries = vs.query_vectors(n_queries, rng)
            prof = score_precision_profile(items, queries, None, precisions, k, rerank, rounds)
            for p, v in prof.items():
                rows.append({**base, "dim": int(items.shape[1]), "n_queries": len(queries),
                             "precision": p, "p50_us": v["p50_us"],
                             "recall_vs_exact": v[f"recall@{k}"], "rerank": v["rerank"],
                             "bytes": v["bytes"]})
            del items
    return rows
