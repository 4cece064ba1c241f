"""Cold-start curves (DEFINITIONS.md, "Cold start"), on fixed targets (``PROTOCOL``).

Every point of a curve scores the same evaluation units against the same targets among the
same candidates; only what the model is told (n_known revealed interactions) changes, so a
rise or fall along the curve is the model's, not the protocol's.

New users: the held-out (strong-protocol) test users. Each one's target is the split's target
set (its held-out share of items, fixed once); its fold-in history is put in a seeded random
order and the first n_known items are revealed (nested: the 5-item set contains the 2-item
set). Users whose fold-in history has at least max(n_known) items take part, the same users at
every point. The fold-in items not revealed are neither input nor target: they are excluded
from the ranking at every point. WALS folds the revealed items in (with 0 items it uses its
``cold_user`` heuristic); the DNN runs its tower on features plus the revealed history.

New items: items held out of training (new-items protocol). Each test item's users are put in
a seeded random order; the first ``target_frac`` of them are its fixed target interactions and
the rest its fold-in, of which the first n_known are revealed (nested). Items whose fold-in has
at least max(n_known) users take part; each user with a target interaction ranks those items
only, the same users at every point, with the user's fold-in interactions on them excluded
from the ranking. WALS folds the item in from the revealed users (with none: the
feature-average heuristic); the DNN scores it through its item tower (revealed interactions
unused: no retraining); the popularity baseline ranks new items by their revealed counts.

Every row records ``"protocol": PROTOCOL``. Results written before this change lack the key:
their curves revealed n_known of all the unit's interactions and ranked *the rest*, so the
target set shrank along the curve (``LEGACY_PROTOCOL``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from mfsoftmax.datasets import EvalSet
from mfsoftmax.evaluation import evaluate, standard_errors
from mfsoftmax.ranking import Queries, mask_history, topk

PROTOCOL = "fixed-target"
LEGACY_PROTOCOL = "reveal-rest"  # what a curve row without "protocol" used (older results)
# share of a new item's users that are its targets: half keeps most items eligible (fold-in
# >= max(n_known)) and gives far more target users than the strong split's 20% would
ITEM_TARGET_FRAC = 0.5


def _shuffled_rows(m: sp.csr_matrix, rng) -> list[np.ndarray]:
    return [rng.permutation(m.indices[m.indptr[i]:m.indptr[i + 1]]) for i in range(m.shape[0])]


def _rows_to_csr(rows: list[np.ndarray], n_cols: int) -> sp.csr_matrix:
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(r) for r in rows])
    idx = np.concatenate(rows).astype(np.int32) if rows else np.zeros(0, np.int32)
    m = sp.csr_matrix((np.ones(len(idx), np.float32), idx, indptr), shape=(len(rows), n_cols))
    m.sort_indices()
    return m


@dataclass
class CurvePoints:
    """What every point of a fixed-target curve evaluates (rows aligned with ``users``).

    ``target`` and ``excluded`` are the same at every point: the fixed targets, and each
    user's fold-in part (items, or interactions with the ranked items), never ranked.
    ``history[n]`` is the model's input at point n: the revealed fold-in items (new users), or
    the user's training row plus the revealed new-item interactions (new items); nested in n.
    New items only: ``items`` are the ranked items and ``revealed[n]`` (len(items) x users) the
    users revealed for each of them at point n.
    """

    users: np.ndarray
    target: sp.csr_matrix
    excluded: sp.csr_matrix
    history: dict
    known_users: bool
    items: np.ndarray | None = None
    revealed: dict | None = None

    def evalset(self, n: int) -> EvalSet:
        return EvalSet(self.users, self.history[int(n)], self.target, self.known_users,
                       candidates=self.items)


class _Excluding:
    """``score_fn`` for :func:`evaluate`: the scorer's scores with each evaluated user's
    ``excluded`` items (rows aligned with ``users``) set to -inf, i.e. left out of the ranking."""

    def __init__(self, score, users: np.ndarray, excluded: sp.csr_matrix):
        self.inner, self.excluded = score, excluded
        self.row_of = np.full(int(users.max()) + 1 if len(users) else 0, -1, dtype=np.int64)
        self.row_of[users] = np.arange(len(users))

    def __call__(self, queries):
        s = np.array(self.inner(queries), dtype=np.float32, copy=True)
        return mask_history(s, self.excluded[self.row_of[queries.users]])


def _row(n: int, res: dict, ks, se: dict, **extra) -> dict:
    row = {"n_known": int(n), "protocol": PROTOCOL, **extra, "n_users": res["n_users"]}
    for k in ks:
        for metric in (f"recall@{k}", f"ndcg@{k}"):
            row[metric] = res[metric]
            row[f"{metric}_se"] = se[metric]
    return row


def _none_left(unit: str, what: str, need: int, have: np.ndarray, n_all: int) -> str:
    """The error for a curve no unit can take part in, with how many each n would keep."""
    counts = ", ".join(f"{int((have >= n).sum())} with >= {n}" for n in (1, 2, 5, 10, 20, 50)
                       if n < need)
    return (f"no {unit} (of {n_all}) has >= {need} {what} (max n_known): the same units at "
            f"every point would be none; {counts or 'none at all'}. Lower the largest n_known "
            "(cold_start.n_known_users / n_known_items)")


def new_user_points(evalset: EvalSet, n_known, seed: int = 0,
                    min_items: int | None = None) -> CurvePoints:
    """The fixed-target new-user points (see :func:`new_user_curve`)."""
    if evalset.known_users:
        raise ValueError("new_user_curve needs held-out users (strong protocol)")
    need = max(n_known) if min_items is None else int(min_items)
    if need < max(n_known):
        raise ValueError(f"min_items={min_items} is below max(n_known)={max(n_known)}: some "
                         "users could not reveal that many items")
    fold = evalset.history.tocsr()
    # one order per user, drawn before any filtering: a user's revealed items depend on the
    # seed alone, not on which other users take part or on n_known
    rows = _shuffled_rows(fold, np.random.default_rng(seed))
    has = np.diff(fold.indptr)[np.diff(evalset.target.indptr) > 0]
    keep = np.flatnonzero((np.diff(fold.indptr) >= need) & (np.diff(evalset.target.indptr) > 0))
    if not len(keep):
        raise ValueError(_none_left("held-out user", "fold-in items", need, has, len(evalset)))
    rows = [rows[i] for i in keep]
    excluded = _rows_to_csr(rows, fold.shape[1])  # the whole fold-in part, binary
    return CurvePoints(evalset.users[keep], evalset.target[keep].tocsr(), excluded,
                       {int(n): _rows_to_csr([r[:n] for r in rows], fold.shape[1])
                        for n in n_known}, known_users=False)


def new_user_curve(models: dict, evalset: EvalSet, n_known=(0, 1, 2, 5, 10, 20), ks=(10, 20),
                   seed: int = 0, min_items: int | None = None, per_user: bool = False):
    """Recall/NDCG of held-out users' fixed targets against the number of revealed items.

    ``evalset`` holds held-out users (``known_users`` False): ``history`` is each user's
    fold-in part, ``target`` its fixed target (the strong split's 80/20). Users with a target
    and at least ``min_items`` fold-in items take part (default, and at least,
    ``max(n_known)``: every point can reveal that many), the same users with the same targets
    at every point; the first n_known items of a seeded random order of the fold-in part are
    revealed (nested across points), the rest of it is excluded from the ranking. Returns
    ``{model: [{"n_known", "protocol", "n_users", "recall@10", "recall@10_se", "ndcg@10",
    ...}]}``; with ``per_user`` also ``{model: {n_known: per-user metric arrays}}`` (the same
    users in the same order for every model and every point).
    """
    pts = new_user_points(evalset, n_known, seed=seed, min_items=min_items)
    out = {name: [] for name in models}
    per = {name: {} for name in models}
    for n in n_known:
        es = pts.evalset(n)
        for name, model in models.items():
            score = _Excluding(model.score, pts.users, pts.excluded)
            res, per[name][int(n)] = evaluate(model, es, ks=ks, score_fn=score, per_user=True)
            out[name].append(_row(n, res, ks, standard_errors(per[name][int(n)])))
    return (out, per) if per_user else out


def _item_rows_to_user_matrix(item_users: sp.csr_matrix, items: np.ndarray, n_items: int) -> sp.csr_matrix:
    """(len(items) x users) rows -> the users x items matrix with those items' columns."""
    coo = item_users.tocoo()
    m = sp.csr_matrix((np.ones(coo.nnz, np.float32), (coo.col, items[coo.row])),
                      shape=(item_users.shape[1], n_items))
    m.sort_indices()
    return m


class _ColdItemScorer:
    """Scores of the held-out items for known users, from the model's cold-item path."""

    def __init__(self, model, items: np.ndarray, revealed: sp.csr_matrix, n_items: int):
        self.model, self.items, self.revealed, self.n_items = model, items, revealed, n_items

    def score(self, queries):
        out = np.zeros((len(queries), self.n_items), dtype=np.float32)
        if hasattr(self.model, "item_cold_scores"):
            cold = self.model.item_cold_scores(queries, self.items, self.revealed)
        else:  # popularity: new items ranked by their revealed interaction counts
            cold = np.broadcast_to(np.diff(self.revealed.indptr).astype(np.float32),
                                   (len(queries), len(self.items)))
        out[:, self.items] = cold
        return out


def new_item_points(split, n_known, seed: int = 0,
                    target_frac: float = ITEM_TARGET_FRAC) -> CurvePoints:
    """The fixed-target new-item points (see :func:`new_item_curve`)."""
    if split.protocol != "new-items":
        raise ValueError("new_item_curve needs a new-items split")
    if not 0.0 < float(target_frac) < 1.0:
        raise ValueError(f"new_item_curve: target_frac={target_frac!r} must be in (0, 1)")
    data = split.data.binary()
    n_users, n_items = data.shape
    items = split.test.candidates
    # one order of each item's users, drawn before any filtering: its first target_frac are
    # the item's targets, the rest its fold-in in reveal order
    rows = _shuffled_rows(data.T.tocsr()[items], np.random.default_rng(seed))
    lens = np.array([len(r) for r in rows], dtype=np.int64)
    n_t = np.where(lens >= 2, np.clip(np.rint(target_frac * lens), 1, np.maximum(lens - 1, 1)),
                   0).astype(np.int64)
    keep = np.flatnonzero((n_t > 0) & (lens - n_t >= max(n_known)))
    if not len(keep):
        raise ValueError(_none_left("new test item", "fold-in users", max(n_known),
                                    (lens - n_t)[n_t > 0], len(items)))
    items = items[keep]
    folds = [rows[i][n_t[i]:] for i in keep]
    tgt = _item_rows_to_user_matrix(_rows_to_csr([rows[i][:n_t[i]] for i in keep], n_users),
                                    items, n_items)
    excluded = _item_rows_to_user_matrix(_rows_to_csr(folds, n_users), items, n_items)
    # the split's test users (known: they have training interactions) with a target here
    users = np.intersect1d(np.flatnonzero(np.diff(tgt.indptr) > 0), split.test.users)
    train = split.train.binary()[users]
    revealed = {int(n): _rows_to_csr([r[:n] for r in folds], n_users) for n in n_known}
    history = {n: (train + _item_rows_to_user_matrix(r, items, n_items)[users]).tocsr()
               for n, r in revealed.items()}
    for h in history.values():
        h.data[:] = 1.0
    return CurvePoints(users, tgt[users].tocsr(), excluded[users].tocsr(), history,
                       known_users=True, items=items, revealed=revealed)


def new_item_curve(models: dict, split, n_known=(0, 1, 2, 5, 10), ks=(10,), seed: int = 0,
                   per_user: bool = False, target_frac: float = ITEM_TARGET_FRAC):
    """Recall@k of held-out items' fixed target interactions against the item's number of
    revealed users.

    ``split`` is a new-items split; models are fitted on ``split.train``. Per test item, a
    seeded random ``target_frac`` of its users (at least one, never all) are its targets and
    the rest its fold-in, revealed n_known at a time in a seeded random order (nested across
    points). Items with at least ``max(n_known)`` fold-in users take part and are the ranked
    candidates; the split's test users with a target interaction are evaluated, the same users
    with the same targets at every point, their fold-in interactions excluded from the
    ranking. Returns ``{model: [{"n_known", "protocol", "n_items", "n_targets", "n_users",
    "recall@10", "recall@10_se", ...}]}``; with ``per_user`` also ``{model: {n_known: per-user
    metric arrays}}`` (the same users in the same order for every model and every point).
    """
    pts = new_item_points(split, n_known, seed=seed, target_frac=target_frac)
    n_items = split.data.n_items
    out = {name: [] for name in models}
    per = {name: {} for name in models}
    for n in n_known:
        es = pts.evalset(n)
        for name, model in models.items():
            scorer = _ColdItemScorer(model, pts.items, pts.revealed[int(n)], n_items)
            score = _Excluding(scorer.score, pts.users, pts.excluded)
            res, per[name][int(n)] = evaluate(model, es, ks=ks, score_fn=score, per_user=True)
            out[name].append(_row(n, res, ks, standard_errors(per[name][int(n)]),
                                  n_items=int(len(pts.items)), n_targets=int(pts.target.nnz)))
    return (out, per) if per_user else out


# ---------------------------------------------------------------- true new items (n_known = 0)
def new_item_path(model, train, features: dict):
    """How ``model`` scores items that only a side table lists: ``(path, score_fn)`` with
    ``score_fn(queries) -> (B x m)``, or ``(None, None)`` when it has no way to (popularity:
    no interaction, no score). The DNN runs its item tower; an MF model gets the feature-average
    heuristic (:func:`~mfsoftmax.models.wals.features.new_row_embeddings`)."""
    from mfsoftmax.models.wals.features import new_row_embeddings  # lazy: torch+implicit via models

    if hasattr(model, "feature_item_scores") and getattr(model, "item_tower", None) is not None:
        return "item tower", lambda q: model.feature_item_scores(q, features)
    if getattr(model, "family", None) == "mf" and hasattr(model, "item_embeddings"):
        emb = new_row_embeddings(train.item_features, train.item_popularity() > 0,
                                 model.item_embeddings(), features)
        return "feature average", lambda q: model.query_embeddings(q) @ emb.T
    return None, None


def true_new_item_ranks(models: dict, split, new_items: dict, k: int = 10,
                        batch: int = 256) -> dict:
    """Where models rank the new items of a side table (items with no interaction at all)
    among the catalogue, for the split's test users (known users, their training items
    excluded). There are no targets, so no recall: per model, ``share@k`` (mean share of a
    user's top-k that are new items; ``chance_share``: a random ranking's), ``users_with_new``
    (share of users with one in their top-k) and ``mean_percentile`` (a new item's mean rank
    among a user's candidates, 0 = first, 0.5 = a random item's). ``path`` says how the
    model scored them; a model with none ranks them last (share 0, percentile 1).
    """
    feats = new_items["features"]
    m = len(new_items["ids"])
    users = np.asarray(split.test.users, dtype=np.int64)
    hist = split.train.binary()[users].tocsr()
    n_items = split.train.n_items
    # the split's held-out items are not in the catalogue the models were trained on either
    held = np.asarray(split.test.candidates if split.test.candidates is not None else [], np.int64)
    n_cand = n_items - len(held) + m - np.diff(hist.indptr)
    out = {"n_new_items": int(m), "n_users": int(len(users)), "k": int(k),
           "chance_share": float(np.mean(m / n_cand)) if len(users) else None, "models": {}}
    for name, model in models.items():
        path, new_scores = new_item_path(model, split.train, feats)
        shares, hits, pct = [], [], []
        for start in range(0, len(users), batch):
            q = Queries(users[start:start + batch], hist[start:start + batch], True)
            known = mask_history(np.array(model.score(q), dtype=np.float32, copy=True), q.history)
            known[:, held] = -np.inf
            new = (np.asarray(new_scores(q), dtype=np.float32) if path else
                   np.full((len(q), m), -np.inf, dtype=np.float32))
            top, _ = topk(np.concatenate([known, new], axis=1), k)
            n_new = (top >= n_items).sum(axis=1)
            shares.append(n_new / k)
            hits.append(n_new > 0)
            ranks = _ranks_among(known, new)
            pct.append((ranks / np.maximum(n_cand[start:start + batch, None] - 1, 1)).mean(axis=1))
        out["models"][name] = {
            "path": path, f"share@{k}": float(np.concatenate(shares).mean()),
            "users_with_new": float(np.concatenate(hits).mean()),
            "mean_percentile": float(np.concatenate(pct).mean())}
    return out


def _ranks_among(known: np.ndarray, new: np.ndarray, cells: float = 2e7) -> np.ndarray:
    """(B x m) 0-based rank of each new item's score among its row's candidates: the known
    items scoring above it (masked -inf ones never do) and the new items ahead of it (ties by
    order)."""
    step = max(1, int(cells // max(known.size, 1)))
    ranks = np.concatenate([(known[:, None, :] > new[:, j:j + step, None]).sum(axis=2)
                            for j in range(0, new.shape[1], step)], axis=1)
    return ranks + np.argsort(np.argsort(-new, axis=1, kind="stable"), axis=1)
