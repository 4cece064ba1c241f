"""The evaluation harness shared by every model (docs/definitions.md, "Evaluation").

Full ranking over all items (or over ``EvalSet.candidates``), never sampled negatives; the
user's history items are excluded from the ranking. Users are processed in batches of about
2**20 scores (cache-friendly; never more than ``max_batch_elems`` floats), and every metric is
computed vectorised from one top-``max(k)`` per batch (``models.base.topk``, deterministic:
equal scores go to the lower item id) plus one pass over the scores for MRR.

Metrics, averaged over users with a non-empty target set T:

- ``recall@k``    = hits@k / min(k, |T|)            (Liang et al. 2018)
- ``precision@k`` = hits@k / k
- ``ndcg@k``      = DCG@k / IDCG@k, IDCG over min(k, |T|) relevant items
- ``hr@k``        = 1 if hits@k > 0
- ``map@k``       = sum_{i<=k} precision@i * rel_i / min(k, |T|)
- ``mrr``         = 1 / rank of the best-ranked target in the full ranking (ties counted in the
  target's favour: rank = 1 + number of items scored strictly higher)
- ``coverage@k``  = share of the ranked catalogue (all items, or the candidates) that appears
  in the top-k of any evaluated user
- ``avg_pop@k``   = mean training popularity (user count) of each user's recommended items,
  averaged over users

Slots of the top-k that no rankable item can fill (k larger than the items left after
excluding history, or scores of -inf) are empty: never hits, still counted in precision's k.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from mfsoftmax.ranking import Queries, mask_history, topk

DEFAULT_KS = (10, 20, 50, 100)
RANK_METRICS = ("recall", "precision", "ndcg", "hr", "map")


def _discounts(kmax: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, kmax + 2))


def rank_metrics(top: np.ndarray, target: sp.csr_matrix, ks=DEFAULT_KS) -> dict:
    """Per-user metrics of ranked lists ``top`` (B x kmax item ids, best first) against the
    users x items ``target`` rows (B x n). Returns ``{"recall@k": array(B), ...}``; users with an
    empty target get NaN. Ids < 0 mark empty slots (never a hit). Lists shorter than k count
    as padded with empty slots; denominators use k and min(k, |T|) as defined."""
    ks = tuple(ks)
    if top.shape[1] == 0:  # nothing rankable: one empty slot
        top = np.full((top.shape[0], 1), -1, dtype=np.int64)
    B, kmax = top.shape
    n = target.shape[1]
    if not target.has_canonical_format:  # duplicate entries would inflate |T|
        target = target.copy()
        target.sum_duplicates()
    tsize = np.diff(target.indptr).astype(np.float64)
    # membership test through sorted composite keys: no dense B x n array
    tkeys = np.repeat(np.arange(B, dtype=np.int64), np.diff(target.indptr)) * n + target.indices
    if not np.all(np.diff(tkeys) > 0):
        tkeys = np.unique(tkeys)
    qkeys = np.arange(B, dtype=np.int64)[:, None] * n + top
    pos = np.searchsorted(tkeys, qkeys)
    if len(tkeys):
        hits = (pos < len(tkeys)) & (tkeys[np.minimum(pos, len(tkeys) - 1)] == qkeys)
    else:
        hits = np.zeros(qkeys.shape, dtype=bool)
    hits &= top >= 0
    hitf = hits.astype(np.float64)
    cum = np.cumsum(hitf, axis=1)
    disc = _discounts(kmax)
    dcg = np.cumsum(hitf * disc, axis=1)
    ideal = np.cumsum(_discounts(max(max(ks), kmax)))
    prec_at_i = cum / np.arange(1, kmax + 1)
    ap_cum = np.cumsum(prec_at_i * hitf, axis=1)
    valid = tsize > 0
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in ks:
            kk = min(k, kmax)
            h = cum[:, kk - 1]
            denom = np.minimum(k, tsize)
            idcg = ideal[np.clip(np.minimum(k, tsize).astype(np.int64) - 1, 0, None)]
            out[f"recall@{k}"] = np.where(valid, h / denom, np.nan)
            out[f"precision@{k}"] = np.where(valid, h / k, np.nan)
            out[f"ndcg@{k}"] = np.where(valid, dcg[:, kk - 1] / idcg, np.nan)
            out[f"hr@{k}"] = np.where(valid, (h > 0).astype(np.float64), np.nan)
            out[f"map@{k}"] = np.where(valid, ap_cum[:, kk - 1] / denom, np.nan)
    return out


def full_rank_mrr(scores: np.ndarray, target: sp.csr_matrix) -> np.ndarray:
    """Reciprocal rank of each row's best-scored target in the full ranking of ``scores``.

    Rank = 1 + number of items scored strictly higher (ties in the target's favour). Rows whose
    targets are all unrankable (score -inf) get 0; rows without targets get NaN.
    """
    B = scores.shape[0]
    lens = np.diff(target.indptr)
    rows = np.repeat(np.arange(B), lens)
    best = np.full(B, -np.inf, dtype=np.result_type(scores.dtype, np.float32))
    np.maximum.at(best, rows, scores[rows, target.indices])
    rank = 1 + np.count_nonzero(scores > best[:, None], axis=1)
    rr = np.where(np.isneginf(best), 0.0, 1.0 / rank)
    return np.where(lens > 0, rr, np.nan)


def batch_rows(n_users: int, n_items: int, max_batch_elems: int = 1 << 23) -> int:
    """Users per batch: about 2**20 scores (cache-friendly), at least 256 users, never more
    than ``max_batch_elems`` scores (the memory bound)."""
    n_items = max(1, n_items)
    want = max(256, (1 << 20) // n_items)
    return max(1, min(n_users, want, max_batch_elems // n_items))


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
        Cut-offs (>= 1).
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
    NaN scores raise ``ValueError``. Scores of -inf count as unrankable (like history items).
    """
    return evaluate_targets(model, evalset, [evalset.target], ks, item_popularity,
                            max_batch_elems, per_user, score_fn)[0]


def evaluate_targets(model, evalset, targets: list, ks=DEFAULT_KS,
                     item_popularity: np.ndarray | None = None, max_batch_elems: int = 1 << 23,
                     per_user: bool = False, score_fn=None) -> list:
    """:func:`evaluate` against several target matrices of the same users (for example
    :func:`restrict_targets` of ``evalset`` per item stratum), scoring each batch once: one
    result per entry of ``targets``, each equal to ``evaluate`` of ``evalset`` with that target."""
    ks = tuple(sorted({int(k) for k in ks}))
    if not ks or ks[0] < 1:
        raise ValueError(f"evaluate: ks must be integers >= 1, got {ks}")
    n_items = evalset.n_items
    for t in targets:
        if t.shape != evalset.target.shape:
            raise ValueError(f"evaluate: a target has shape {t.shape}, expected "
                             f"{evalset.target.shape}")
    if item_popularity is not None:
        item_popularity = np.asarray(item_popularity, dtype=np.float64)
        if item_popularity.shape != (n_items,):
            raise ValueError(f"evaluate: item_popularity has shape {item_popularity.shape}, "
                             f"expected ({n_items},)")
    score = score_fn if score_fn is not None else model.score
    cand = _candidates(evalset)  # ranked columns (sorted ids), None = all items
    n_rankable = n_items if cand is None else len(cand)
    kmax = min(max(ks), n_rankable)
    batch = batch_rows(len(evalset), n_items, max_batch_elems)
    totals = [_Totals(ks, n_items, item_popularity) for _ in targets]
    for start in range(0, len(evalset), batch):
        stop = min(start + batch, len(evalset))
        q = Queries.from_evalset(evalset, start, stop)
        s = np.array(score(q), dtype=np.float32, copy=True)
        if s.shape != (len(q), n_items):
            raise ValueError(f"evaluate: scores shape {s.shape}, expected ({len(q)}, {n_items})")
        if np.isnan(s).any():
            raise ValueError(f"evaluate: the model returned NaN scores (users {start}..{stop - 1})")
        mask_history(s, q.history)
        if cand is not None:
            s = s[:, cand]
        top, top_scores = topk(s, kmax)
        top = np.where(np.isneginf(top_scores), -1, top if cand is None else cand[top])
        for tot, t in zip(totals, targets, strict=True):
            target = t[start:stop]
            tot.add(top, s, target if cand is None else target[:, cand], target)
    return [tot.result(n_rankable, per_user) for tot in totals]


def _candidates(evalset) -> np.ndarray | None:
    """The sorted distinct ids of ``evalset.candidates`` (None: every item is ranked)."""
    if evalset.candidates is None:
        return None
    cand = np.unique(np.asarray(evalset.candidates, dtype=np.int64))
    if len(cand) and (cand[0] < 0 or cand[-1] >= evalset.n_items):
        raise ValueError(f"evaluate: candidates out of range [0, {evalset.n_items})")
    return cand


class _Totals:
    """What :func:`evaluate` gathers batch by batch: the per-user metric arrays, the items seen
    in any top-k (coverage) and the mean popularity of each user's top-k (``avg_pop@k``)."""

    def __init__(self, ks: tuple, n_items: int, item_popularity: np.ndarray | None):
        self.ks, self.item_popularity = ks, item_popularity
        names = [f"{m}@{k}" for k in ks for m in RANK_METRICS] + ["mrr"]
        self.parts: dict[str, list] = {key: [] for key in names}
        self.seen = {k: np.zeros(n_items, dtype=bool) for k in ks}
        self.pop_parts: dict = {k: [] for k in ks}

    def add(self, top: np.ndarray, scores: np.ndarray, ranked_target, target) -> None:
        """One batch: ``top`` (item ids, -1 for an empty slot), the ranked ``scores`` and their
        columns of the target (``ranked_target``), and the batch's ``target`` rows."""
        for key, val in rank_metrics(top, target, self.ks).items():
            self.parts[key].append(val)
        has_t = np.diff(target.indptr) > 0
        rr = full_rank_mrr(scores, ranked_target)
        self.parts["mrr"].append(np.where(has_t, np.nan_to_num(rr, nan=0.0), np.nan))
        for k in self.ks:
            tk = top[has_t, :k]
            self.seen[k][tk[tk >= 0]] = True
            if self.item_popularity is not None:
                ok = tk >= 0
                tot = np.where(ok, self.item_popularity[np.maximum(tk, 0)], 0.0).sum(axis=1)
                cnt = ok.sum(axis=1)
                self.pop_parts[k].append(tot[cnt > 0] / cnt[cnt > 0])

    def result(self, n_rankable: int, per_user: bool):
        """:func:`evaluate`'s return value: the means over users with targets (and the per-user
        arrays with ``per_user``)."""
        per = {key: np.concatenate(v) if v else np.zeros(0) for key, v in self.parts.items()}
        valid = ~np.isnan(per["mrr"])
        result = {key: float(np.mean(v[valid])) if valid.any() else float("nan")
                  for key, v in per.items()}
        for k in self.ks:
            result[f"coverage@{k}"] = float(self.seen[k].sum() / max(1, n_rankable))
            if self.item_popularity is not None:
                pops = np.concatenate(self.pop_parts[k]) if self.pop_parts[k] else np.zeros(0)
                result[f"avg_pop@{k}"] = float(pops.mean()) if len(pops) else float("nan")
        result["n_users"] = int(valid.sum())
        if per_user:
            return result, {key: v[valid] for key, v in per.items()}
        return result


def restrict_targets(evalset, items: np.ndarray):
    """``evalset`` with each user's targets cut to the items where ``items`` (a boolean mask over
    the items) is true: the ranking is unchanged (same history, same candidates), only the hits
    and the denominators (min(k, |T ∩ S|)) change. Users left with no target drop out of the
    averages, as users without targets always do."""
    keep = np.asarray(items, dtype=bool)
    if keep.shape != (evalset.n_items,):
        raise ValueError(f"restrict_targets: items has shape {keep.shape}, expected "
                         f"({evalset.n_items},)")
    t = evalset.target.tocsr()
    rows = np.repeat(np.arange(t.shape[0]), np.diff(t.indptr))
    kept = keep[t.indices]
    target = sp.csr_matrix((t.data[kept], (rows[kept], t.indices[kept])), shape=t.shape)
    return dataclasses.replace(evalset, target=target)


def standard_errors(per_user: dict) -> dict:
    """Standard error of the mean of each per-user metric."""
    return {k: float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
            for k, v in per_user.items()}


def paired_standard_errors(per_user_a: dict, per_user_b: dict) -> dict:
    """Standard error of the mean per-user difference ``a - b`` of each metric both share.

    The two dicts must come from the same evaluation set (same users, same order), as
    ``evaluate(..., per_user=True)`` returns them for two models. Two models' metrics over the
    same users are correlated, so this is smaller than ``hypot(se_a, se_b)``: the standard error
    to judge a gap between them by (a paired test).
    """
    diffs = {}
    for k in sorted(per_user_a.keys() & per_user_b.keys()):
        a, b = np.asarray(per_user_a[k], np.float64), np.asarray(per_user_b[k], np.float64)
        if a.shape != b.shape:
            raise ValueError(f"paired_standard_errors: {k} has {a.shape[0]} users on one side and "
                             f"{b.shape[0]} on the other; pairing needs the same evaluation users")
        diffs[k] = a - b
    return standard_errors(diffs)
