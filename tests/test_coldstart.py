"""Cold-start curves (bench.coldstart) on fixed targets, and the ablation's paired lift errors."""

import numpy as np
import pytest

from mfsoftmax.bench.coldstart import (
    PROTOCOL,
    new_item_curve,
    new_item_points,
    new_user_curve,
    new_user_points,
)
from mfsoftmax.bench.stages.paired import add_lift_se
from mfsoftmax.datasets import load, make_split
from mfsoftmax.models import WALS, FeaturePopularity, Popularity
from tests.contract import checkerboard


@pytest.fixture(scope="module")
def fitted():
    split = make_split(checkerboard(n_users=80), "strong", seed=0)
    models = {"popularity": Popularity().fit(split.train),
              "feature-popularity": FeaturePopularity(shrinkage=0.0).fit(split.train)}
    return split, models


def test_per_user_arrays_line_up_with_the_curve(fitted):
    split, models = fitted
    curve, per = new_user_curve(models, split.test, n_known=(0, 2, 5), ks=(10,), seed=3, per_user=True)
    assert curve == new_user_curve(models, split.test, n_known=(0, 2, 5), ks=(10,), seed=3)
    for name, rows in curve.items():
        assert sorted(per[name]) == [0, 2, 5]
        for row in rows:
            arr = per[name][row["n_known"]]["recall@10"]
            assert len(arr) == row["n_users"] == len(per["popularity"][row["n_known"]]["recall@10"])
            assert arr.mean() == pytest.approx(row["recall@10"])
    # the features are the planted groups: at 0 items the lookup beats popularity for every user
    d = per["feature-popularity"][0]["recall@10"] - per["popularity"][0]["recall@10"]
    assert (d >= 0).all() and d.mean() > 0.2


def test_lift_se_pairs_rows_of_the_same_model_and_history():
    rows = [{"model": "dnn", "history": True, "user_features": False},
            {"model": "dnn", "history": False, "user_features": True},
            {"model": "dnn", "history": True, "user_features": True},
            {"model": "lookup", "history": None, "user_features": True}]
    pers = [{"recall@20": np.array([0.0, 0.5, 0.5, 1.0])},
            {"recall@20": np.zeros(4)},
            {"recall@20": np.array([1.0, 0.5, 0.5, 1.0])},
            {"recall@20": np.ones(4)}]
    add_lift_se(rows, pers)
    # with - without features: 1, 0, 0, 0 -> sd 0.5, se 0.25
    assert rows[2]["lift_se"] == {"recall@20": pytest.approx(0.25)}
    assert all("lift_se" not in r for i, r in enumerate(rows) if i != 2)


# ---------------------------------------------------------------- fixed targets


def _rows(m):
    m = m.tocsr()
    return [set(m.indices[m.indptr[i]:m.indptr[i + 1]].tolist()) for i in range(m.shape[0])]


def _same(a, b) -> bool:
    return a.shape == b.shape and (a != b).nnz == 0


@pytest.fixture(scope="module")
def synthetic():
    return load("synthetic", n_users=1500, n_items=600, n_groups=10, seed=0)


@pytest.fixture(scope="module")
def strong_wals(synthetic):
    split = make_split(synthetic, "strong", seed=0)
    models = {"wals": WALS(dim=32, w0=0.05, reg=1.0, iterations=8, solver="cg").fit(split.train),
              "popularity": Popularity().fit(split.train)}
    return split, models


@pytest.fixture(scope="module")
def new_items_wals(synthetic):
    # what the new-items stage fits: each model on the new-items split with its
    # suite.new_item_params (none for WALS: it folds a new item in from its revealed users)
    split = make_split(synthetic, "new-items", seed=0, item_frac=0.1)
    assert WALS.suite.new_item_params == {}
    models = {"wals": WALS(dim=32, w0=0.05, reg=1.0, iterations=8, solver="cg").fit(split.train),
              "input-blind": _InputBlind(split.data.n_users, split.data.n_items)}
    return split, models


class _InputBlind:
    """Fixed random scores per (user, item), new items included: ignores every revealed
    interaction, so on fixed targets among fixed candidates its curve is flat."""

    def __init__(self, n_users, n_items):
        self.table = np.random.default_rng(7).random((n_users, n_items)).astype(np.float32)

    def score(self, queries):
        return self.table[queries.users]

    def item_cold_scores(self, queries, items, revealed=None):
        return self.table[queries.users][:, items]


N_USERS = (0, 1, 2, 5, 10)


def test_new_user_points_fix_users_targets_and_nest_reveals(strong_wals):
    split, _ = strong_wals
    pts = new_user_points(split.test, N_USERS, seed=3)
    test = split.test
    row = {u: i for i, u in enumerate(test.users)}
    idx = np.array([row[u] for u in pts.users])
    # the users with >= max(n_known) fold-in items; the split's own targets and fold-in part
    fold = np.diff(test.history.indptr)
    assert sorted(pts.users) == sorted(test.users[fold >= max(N_USERS)])
    assert _same(pts.target, test.target[idx]) and _same(pts.excluded, test.history[idx] > 0)
    assert not pts.target.multiply(pts.excluded).nnz  # targets never excluded
    prev = None
    for n in N_USERS:
        es = pts.evalset(n)
        assert (es.users == pts.users).all() and es.target is pts.target
        hist = _rows(es.history)
        assert all(len(h) == n for h in hist)
        assert all(h <= f for h, f in zip(hist, _rows(pts.excluded), strict=True))  # from the fold-in part
        if prev is not None:
            assert all(p <= h for p, h in zip(prev, hist, strict=True))  # nested: only information added
        prev = hist
    # min_items keeps the same users (the split-seed comparison's 0-item point)
    assert (new_user_points(split.test, (0,), seed=3, min_items=10).users == pts.users).all()
    with pytest.raises(ValueError, match="min_items"):
        new_user_points(split.test, N_USERS, min_items=2)
    # a largest n_known no user can reveal: an error naming what each n would keep, not an
    # empty curve
    with pytest.raises(ValueError, match=r"no held-out user .* >= 10 fold-in items.*with >= 5"):
        new_user_points(split.test.subset(np.flatnonzero(fold < 10)), N_USERS)


def test_new_user_recall_does_not_fall_with_more_revealed_items(strong_wals):
    split, models = strong_wals
    curve, per = new_user_curve(models, split.test, n_known=N_USERS, ks=(10,), seed=0,
                                per_user=True)
    assert all(r["protocol"] == PROTOCOL == "fixed-target" for rows in curve.values() for r in rows)
    assert len({r["n_users"] for rows in curve.values() for r in rows}) == 1
    # popularity ignores the revealed items: same users, targets and candidates at every point
    # give it the same per-user recall (the old reveal-n-rank-the-rest protocol: 0.14 -> 0.08)
    pop = per["popularity"]
    assert all(np.array_equal(pop[n]["recall@10"], pop[0]["recall@10"]) for n in N_USERS)
    # a fold-in model does not get worse with more information (within one standard error)
    w = {r["n_known"]: r for r in curve["wals"]}
    last = max(N_USERS)
    assert w[last]["recall@10"] >= w[1]["recall@10"] - w[1]["recall@10_se"]
    assert w[last]["recall@10"] > w[0]["recall@10"] + w[0]["recall@10_se"]


N_ITEMS = (0, 1, 2, 5, 10)


def test_new_item_points_fix_users_targets_and_nest_reveals(new_items_wals):
    split, _ = new_items_wals
    pts = new_item_points(split, N_ITEMS, seed=3)
    data = split.data.binary()
    assert set(pts.items) <= set(split.test.candidates) and len(pts.items) >= 10
    assert set(pts.users) <= set(split.test.users)
    # targets and fold-in: the users' real interactions with the ranked items, disjoint
    sub = data[pts.users][:, pts.items]
    tgt, exc = pts.target[:, pts.items], pts.excluded[:, pts.items]
    assert not tgt.multiply(exc).nnz and not (tgt + exc - sub).nnz
    assert pts.target[:, np.setdiff1d(np.arange(data.shape[1]), pts.items)].nnz == 0
    prev = None
    for n in N_ITEMS:
        es = pts.evalset(n)
        assert (es.users == pts.users).all() and es.target is pts.target
        assert (es.candidates == pts.items).all()
        rev = _rows(pts.revealed[n])
        assert all(len(r) == n for r in rev)  # every ranked item reveals n of its users
        # revealed pairs are fold-in pairs; an evaluated user's input shows exactly its own
        known = _pairs(pts.revealed[n], items=pts.items)
        assert known <= _pairs(data.T.tocsr()[pts.items], items=pts.items)
        evaluated = {p for p in known if p[0] in set(pts.users.tolist())}
        assert evaluated <= _pairs(pts.excluded, users=pts.users)
        assert _pairs(es.history[:, pts.items], users=pts.users, cols=pts.items) == evaluated
        if prev is not None:
            assert all(p <= r for p, r in zip(prev, rev, strict=True))
        prev = rev


def _pairs(m, items=None, users=None, cols=None):
    """(user, item) pairs of an items x users matrix (rows = ``items``), or of a users x items
    one (rows = ``users``, columns = ``cols`` when a column slice)."""
    m = m.tocoo()
    if items is not None:
        return set(zip(m.col.tolist(), items[m.row].tolist(), strict=True))
    c = m.col if cols is None else cols[m.col]
    return set(zip(users[m.row].tolist(), c.tolist(), strict=True))


def test_new_item_recall_does_not_fall_with_more_revealed_users(new_items_wals):
    split, models = new_items_wals
    curve, per = new_item_curve(models, split, n_known=N_ITEMS, ks=(10,), seed=0, per_user=True)
    assert all(r["protocol"] == PROTOCOL for rows in curve.values() for r in rows)
    assert len({(r["n_users"], r["n_items"], r["n_targets"])
                for rows in curve.values() for r in rows}) == 1
    blind = per["input-blind"]
    assert all(np.array_equal(blind[n]["recall@10"], blind[0]["recall@10"]) for n in N_ITEMS)
    w = {r["n_known"]: r for r in curve["wals"]}
    last = max(N_ITEMS)
    assert w[last]["recall@10"] >= w[1]["recall@10"] - w[1]["recall@10_se"]
    assert w[last]["recall@10"] > w[0]["recall@10"] + w[0]["recall@10_se"]
    for name, rows in curve.items():
        for row in rows:
            arr = per[name][row["n_known"]]["recall@10"]
            assert len(arr) == row["n_users"] and arr.mean() == pytest.approx(row["recall@10"])


def test_item_lift_se_pairs_rows_differing_in_item_features_only():
    rows = [{"model": "dnn", "history": True, "user_features": False, "item_features": False},
            {"model": "dnn", "history": True, "user_features": True, "item_features": False},
            {"model": "dnn", "history": True, "user_features": True, "item_features": True}]
    pers = [{"recall@20": np.zeros(4)}, {"recall@20": np.array([0.0, 0.5, 0.5, 1.0])},
            {"recall@20": np.array([1.0, 0.5, 0.5, 1.0])}]
    add_lift_se(rows, pers)
    assert rows[2]["item_lift_se"] == {"recall@20": pytest.approx(0.25)}
    assert "lift_se" in rows[1] and "lift_se" not in rows[2]  # user pair: rows 1 vs 0 only
