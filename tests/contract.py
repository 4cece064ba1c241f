"""Shared contract every model passes (in the spirit of implicit's RecommenderBase tests).

Subclass :class:`RecommenderContract`, implement ``make_model`` and the tests run against a tiny
checkerboard: users of group g only interact with items of group g, so a sane model's
recommendations stay inside the user's group.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from mfsoftmax.datasets import Interactions, make_split
from mfsoftmax.evaluation import evaluate
from mfsoftmax.models import Queries


def checkerboard(n_users: int = 60, n_items: int = 24, n_groups: int = 2, density: float = 0.6,
                 seed: int = 0) -> Interactions:
    """Block-diagonal users x items data: each user interacts with a random ``density`` share of
    its own group's items. Features equal the group (so features alone identify it)."""
    rng = np.random.default_rng(seed)
    ug = np.arange(n_users) % n_groups
    ig = np.arange(n_items) * n_groups // n_items
    dense = (ug[:, None] == ig[None, :]) & (rng.random((n_users, n_items)) < density)
    # every user needs >= 5 interactions for the strong protocol
    for u in range(n_users):
        own = np.flatnonzero(ig == ug[u])
        dense[u, own[:5]] = True
    mat = sp.csr_matrix(dense.astype(np.float32))
    ts = np.arange(mat.nnz, dtype=np.int64)
    return Interactions(
        name="checkerboard", matrix=mat, timestamps=ts,
        user_features={"segment": ug.astype(np.int64)}, item_features={"category": ig.astype(np.int64)},
        user_groups=ug.astype(np.int64), item_groups=ig.astype(np.int64),
    )


class RecommenderContract:
    """Mixin: the behaviour every RecommenderBase subclass must show."""

    #: minimal in-group share of top-3 recommendations on the checkerboard
    min_in_group = 0.9

    def make_model(self):  # pragma: no cover - overridden
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def data(cls):
        return checkerboard()

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, data):
        split = make_split(data, "holdout", seed=0)
        return cls().make_model().fit(split.train, valid=split.valid), split

    def test_identity(self):
        model = self.make_model()
        assert model.family in ("mf", "softmax", "baseline")
        assert isinstance(model.name, str) and model.name

    def test_suite_declarations(self, fitted):
        """What the suite reads from the class (one ``suite = SuiteSpec(...)``: serving, ablation,
        timing, quick caps, new items, folding, memory; and the embeddings) is well-formed and
        names only parameters the class takes; ``get_params`` gives what the constructor takes."""
        import inspect

        from mfsoftmax.models import SuiteSpec

        model, _ = fitted
        cls = type(model)
        params = set(inspect.signature(cls.__init__).parameters) - {"self"}
        spec = cls.suite
        assert isinstance(spec, SuiteSpec)
        known, new = spec.serving_modes
        assert isinstance(known, str) and known and (new is None or isinstance(new, str))
        assert spec.parameter_names() <= params, (cls.__name__, spec.parameter_names() - params)
        assert set(spec.memory_names(model)) <= params
        assert set(model.get_params()) <= params
        assert not cls.PARAMS or set(cls.PARAMS) == params  # declared: every parameter
        role = model.embedding_role()
        assert role in (None, "mf", "no-negatives", "negatives")
        if role is not None:
            assert hasattr(model, "query_embeddings") and hasattr(model, "item_embeddings")

    def test_score_shape_and_dtype(self, fitted, data):
        model, split = fitted
        q = Queries(np.arange(5), split.train.matrix[:5], known=True)
        s = np.asarray(model.score(q))
        assert s.shape == (5, data.n_items)
        assert np.all(np.isfinite(s))

    def test_recommend_excludes_history(self, fitted):
        model, split = fitted
        q = Queries(np.arange(10), split.train.matrix[:10], known=True)
        ids, scores = model.recommend(q, k=3)
        assert ids.shape == (10, 3)
        for row, hist in zip(ids, q.history, strict=True):
            assert not set(row) & set(hist.indices)
        assert np.all(np.diff(scores, axis=1) <= 0)

    def test_batch_equals_single(self, fitted):
        model, split = fitted
        q = Queries(np.arange(6), split.train.matrix[:6], known=True)
        batch = np.asarray(model.score(q))
        single = np.vstack([np.asarray(model.score(q[i])) for i in range(6)])
        np.testing.assert_allclose(batch, single, rtol=1e-4, atol=1e-5)

    def test_recommends_inside_group(self, fitted, data):
        model, split = fitted
        users = np.arange(data.n_users)
        ids, _ = model.recommend(Queries(users, split.train.matrix, known=True), k=3)
        if getattr(model, "user_independent", False):  # one list for every user, by design
            scores = np.asarray(model.score(Queries(users, split.train.matrix, known=True)))
            assert np.all(scores == scores[0])
            return
        in_group = data.item_groups[ids] == data.user_groups[users][:, None]
        assert in_group.mean() >= self.min_in_group

    def test_new_users(self, data):
        """Held-out users (strong protocol) get scores from their fold-in history alone."""
        split = make_split(data, "strong", seed=0, n_heldout=6)
        model = self.make_model().fit(split.train, valid=split.valid)
        metrics = evaluate(model, split.test, ks=(3,))
        assert 0.0 <= metrics["recall@3"] <= 1.0
        assert metrics["n_users"] == 6

    def test_deterministic(self, data):
        split = make_split(data, "holdout", seed=0)
        a = evaluate(self.make_model().fit(split.train), split.test, ks=(5,))
        b = evaluate(self.make_model().fit(split.train), split.test, ks=(5,))
        assert a == b

    def test_save_load_roundtrip(self, fitted, tmp_path):
        model, split = fitted
        model.save(tmp_path / "m")
        again = type(model).load(tmp_path / "m")
        q = Queries(np.arange(4), split.train.matrix[:4], known=True)
        np.testing.assert_allclose(np.asarray(model.score(q)), np.asarray(again.score(q)), rtol=1e-5, atol=1e-6)

    def test_recommend_one_matches_recommend(self, fitted):
        """The lean single-query path returns ``recommend``'s items for one-row queries: the same
        ids in the same order (ties by ascending id, as ``topk``), or, where float rounding of a
        different BLAS kernel reorders near-equal scores, items whose full scores match."""
        model, split = fitted
        train = split.train.matrix
        for u in range(0, min(train.shape[0], 24), 3):
            hist = train.indices[train.indptr[u]:train.indptr[u + 1]]
            ids, scores = model.recommend(Queries(np.array([u]), train[u], known=True), k=5)
            lean_ids, lean_scores = model.recommend_one(u, hist, k=5)
            assert lean_ids.shape == ids[0].shape
            assert not set(lean_ids.tolist()) & set(hist.tolist())
            np.testing.assert_allclose(lean_scores, scores[0], rtol=1e-5, atol=1e-6)
            if not np.array_equal(lean_ids, ids[0]):
                full = np.asarray(model.score(Queries(np.array([u]), train[u], known=True)))[0]
                np.testing.assert_allclose(full[lean_ids], scores[0], rtol=1e-5, atol=1e-6)
