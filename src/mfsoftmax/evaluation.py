"""The evaluation harness shared by every model (DEFINITIONS.md, "Evaluation").

Full ranking over all items (or over ``EvalSet.candidates``), never sampled negatives; the
user's history items are excluded from the ranking. Users are processed in batches so memory
stays bounded (a batch of scores is at most ``max_batch_elems`` floats), and every metric is
computed vectorised from one top-``max(k)`` per batch.

Metrics, averaged over users with a non-empty target set T:

- ``recall@k``    = hits@k / min(k, |T|)            (Liang et al. 2018)
- ``precision@k`` = hits@k / k
- ``ndcg@k``      = DCG@k / IDCG@k, IDCG over min(k, |T|) relevant items
- ``hr@k``        = 1 if hits@k > 0
- ``map@k``       = sum_{i<=k} precision@i * rel_i / min(k, |T|)
- ``mrr``         = 1 / rank of the best-ranked target in the full ranking (ties counted in the
  target's favour: rank = 1 + number of items scored strictly higher)
- ``coverage@k``  = share of the ranked catalogue that appears in anyone's top-k
- ``avg_pop@k``   = mean training popularity (user count) of the recommended items
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

DEFAULT_KS = (10, 20, 50, 100)
RANK_METRICS = ("recall", "precision", "ndcg", "hr", "map")


def _discounts(kmax: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, kmax + 2))


def rank_metrics(top: np.ndarray, target: sp.csr_matrix, ks=DEFAULT_KS) -> dict:
    """Per-user metrics of ranked lists ``top`` (B x kmax item ids, best first) against the
    users x items ``target`` rows (B x n). Returns ``{"recall@k": array(B), ...}``; users with an
    empty target get NaN. Ids < 0 mark empty slots (never a hit)."""
    B, kmax = top.shape
    n = target.shape[1]
    tsize = np.diff(target.indptr).astype(np.float64)
    # membership test through sorted composite keys: no dense B x n array
    tkeys = np.repeat(np.arange(B, dtype=np.int64), np.diff(target.indptr)) * n + target.indices
    if not np.all(np.diff(tkeys) > 0):
        tkeys = np.unique(tkeys)
    qkeys = np.arange(B, dtype=np.int64)[:, None] * n + top
    pos = np.searchsorted(tkeys, qkeys)
    hits = (pos < len(tkeys)) & (tkeys[np.minimum(pos, max(len(tkeys) - 1, 0))] == qkeys) if len(tkeys) else np.zeros_like(qkeys, bool)
    hits &= top >= 0
    hitf = hits.astype(np.float64)
    cum = np.cumsum(hitf, axis=1)
    disc = _discounts(kmax)
    dcg = np.cumsum(hitf * disc, axis=1)
    ideal = np.cumsum(disc)
    prec_at_i = cum / np.arange(1, kmax + 1)
    ap_cum = np.cumsum(prec_at_i * hitf, axis=1)
    valid = tsize > 0
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in ks:
            kk = min(k, kmax)
            h = cum[:, kk - 1]
            denom = np.minimum(k, tsize)
            idcg = ideal[np.clip(np.minimum(kk, tsize).astype(np.int64) - 1, 0, kmax - 1)]
            out[f"recall@{k}"] = np.where(valid, h / denom, np.nan)
            out[f"precision@{k}"] = np.where(valid, h / k, np.nan)
            out[f"ndcg@{k}"] = np.where(valid, dcg[:, kk - 1] / idcg, np.nan)
            out[f"hr@{k}"] = np.where(valid, (h > 0).astype(np.float64), np.nan)
            out[f"map@{k}"] = np.where(valid, ap_cum[:, kk - 1] / denom, np.nan)
    return out


def full_rank_mrr(scores: np.ndarray, target: sp.csr_matrix) -> np.ndarray:
    """Reciprocal rank of each row's best-scored target in the full ranking of ``scores``."""
    B = scores.shape[0]
    lens = np.diff(target.indptr)
    rows = np.repeat(np.arange(B), lens)
    tscores = scores[rows, target.indices]
    best = np.full(B, -np.inf)
    np.maximum.at(best, rows, tscores)
    rank = 1 + (scores > best[:, None]).sum(axis=1)
    rr = 1.0 / rank
    rr[np.isneginf(best)] = 0.0  # every target excluded or unscored
    return np.where(lens > 0, rr, np.nan)


def evaluate(model, evalset, ks=DEFAULT_KS, item_popularity: np.ndarray | None = None,
             max_batch_elems: int = 1 << 23, per_user: bool = False, score_fn=None):
    """Evaluate ``model`` on ``evalset`` with full ranking.

    Parameters
    ----------
    model : RecommenderBase
        Anything with ``score(Queries) -> (B x n_items) array``.
    evalset : EvalSet
        Users, their known history (excluded from the ranking) and targets.
    ks : sequence of int
        Cut-offs.
    item_popularity : ndarray, optional
        Training popularity per item, for ``avg_pop@k``.
    max_batch_elems : int
        Bound on the floats of one batch of scores (memory).
    per_user : bool
        Also return the per-user metric arrays.
    score_fn : callable, optional
        ``score_fn(queries) -> scores`` to use instead of ``model.score``.

    Returns
    -------
    dict of metric -> float (plus ``n_users``), and with ``per_user`` a second dict of arrays.
    """
    from mfsoftmax.models.base import Queries, mask_history, topk

    ks = tuple(sorted(set(int(k) for k in ks)))
    n_items = evalset.n_items
    score = score_fn if score_fn is not None else model.score
    cand_mask = None
    n_rankable = n_items
    if evalset.candidates is not None:
        cand_mask = np.zeros(n_items, dtype=bool)
        cand_mask[evalset.candidates] = True
        n_rankable = int(cand_mask.sum())
    kmax = min(max(ks), n_items)
    batch = max(1, min(len(evalset), max_batch_elems // max(1, n_items)))
    parts: dict[str, list] = {}
    seen = {k: np.zeros(n_items, dtype=bool) for k in ks}
    pop_sum = {k: [] for k in ks}
    for start in range(0, len(evalset), batch):
        stop = min(start + batch, len(evalset))
        q = Queries.from_evalset(evalset, start, stop)
        s = np.array(score(q), dtype=np.float32, copy=True)
        assert s.shape == (len(q), n_items), f"scores shape {s.shape}, expected ({len(q)}, {n_items})"
        mask_history(s, q.history)
        if cand_mask is not None:
            s[:, ~cand_mask] = -np.inf
        top, top_scores = topk(s, kmax)
        top = np.where(np.isfinite(top_scores), top, -1)
        target = evalset.target[start:stop]
        for key, val in rank_metrics(top, target, ks).items():
            parts.setdefault(key, []).append(val)
        parts.setdefault("mrr", []).append(full_rank_mrr(s, target))
        has_t = np.diff(target.indptr) > 0
        for k in ks:
            tk = top[has_t, :k]
            seen[k][tk[tk >= 0]] = True
            if item_popularity is not None:
                vals = np.where(tk >= 0, item_popularity[np.maximum(tk, 0)], np.nan)
                pop_sum[k].append(np.nanmean(vals, axis=1) if tk.size else np.zeros(0))
    per = {key: np.concatenate(v) for key, v in parts.items()}
    valid = ~np.isnan(per["mrr"]) if per else np.zeros(0, bool)
    result = {key: float(np.mean(v[valid])) if valid.any() else float("nan") for key, v in per.items()}
    for k in ks:
        result[f"coverage@{k}"] = float(seen[k].sum() / max(1, n_rankable))
        if item_popularity is not None and pop_sum[k]:
            result[f"avg_pop@{k}"] = float(np.nanmean(np.concatenate(pop_sum[k])))
    result["n_users"] = int(valid.sum())
    if per_user:
        return result, {key: v[valid] for key, v in per.items()}
    return result


def standard_errors(per_user: dict) -> dict:
    """Standard error of the mean of each per-user metric."""
    return {k: float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
            for k, v in per_user.items()}
