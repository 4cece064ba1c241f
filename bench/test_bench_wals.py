"""pytest-benchmark cases for WALS: ALS time per iteration, fold-in, single-query serving.

Run with ``pytest bench/test_bench_wals.py --benchmark-enable`` (benchmarks are disabled by the
project's default options, then each case runs once as a smoke test). One BLAS thread, one
implicit thread. ``fit-iteration`` rows time one ALS iteration through the wrapper (setup
included: the scaled CSR, implicit's transpose) next to the same iteration through implicit
directly, so the wrapper's overhead is visible; DNN epochs join the same group.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from mfsoftmax.datasets import load, make_split
from mfsoftmax.models import Queries
from mfsoftmax.models.wals import WALS

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
DIM = 64


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _dataset(name: str):
    if name == "synthetic":
        return load("synthetic")
    data_dir = Path(os.environ.get("MFSOFTMAX_DATA", SHARED))
    if not (data_dir / "ml-100k" / "u.data").exists():
        pytest.skip(f"ml-100k not found under {data_dir}")
    return load("ml-100k", data_dir=data_dir)


@pytest.fixture(scope="module", params=["synthetic", "ml-100k"])
def split(request):
    return make_split(_dataset(request.param), "strong", seed=0, heldout_frac=0.1)


@pytest.fixture(scope="module")
def fitted(split):
    return WALS(dim=DIM, iterations=10, track_loss=False).fit(split.train)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_fit_iteration_wals(benchmark, split, solver):
    benchmark.group = "fit-iteration"
    benchmark.extra_info.update(model="wals", solver=solver, dim=DIM, dataset=split.data.name,
                                n_interactions=split.train.n_interactions, iterations=1)
    model = benchmark.pedantic(
        lambda: WALS(dim=DIM, iterations=1, solver=solver, track_loss=False).fit(split.train),
        rounds=3, warmup_rounds=1)
    assert model.iterations_run == 1


def test_fit_iteration_implicit_direct(benchmark, split):
    """The reference: implicit called directly (binary data, alpha = 1 / w0, reg = lambda / w0)."""
    from implicit.cpu.als import AlternatingLeastSquares

    benchmark.group = "fit-iteration"
    benchmark.extra_info.update(model="implicit-direct", solver="cg", dim=DIM, dataset=split.data.name,
                                iterations=1)
    w0, reg = 0.1, 0.1
    binary = split.train.binary()

    def fit():
        als = AlternatingLeastSquares(factors=DIM, regularization=reg / w0, alpha=1 / w0, iterations=1,
                                      num_threads=1, random_state=0)
        als.fit(binary, show_progress=False)
        return als

    als = benchmark.pedantic(fit, rounds=3, warmup_rounds=1)
    assert als.user_factors.shape == (split.train.n_users, DIM)


def test_fit_iteration_wals_with_loss(benchmark, split):
    """One iteration plus the full objective (Gramian trick): the cost of ``track_loss``."""
    benchmark.group = "fit-iteration"
    benchmark.extra_info.update(model="wals+loss", solver="cg", dim=DIM, dataset=split.data.name)
    model = benchmark.pedantic(lambda: WALS(dim=DIM, iterations=1).fit(split.train), rounds=3,
                               warmup_rounds=1)
    assert len(model.loss_history) == 1


@pytest.mark.parametrize("batch", [1, 256])
def test_fold_in(benchmark, fitted, split, batch):
    benchmark.group = "fold-in"
    history = split.test.history[:batch]
    benchmark.extra_info.update(dataset=split.data.name, batch=history.shape[0], dim=DIM)
    emb = benchmark(fitted.fold_in_users, history)
    assert emb.shape == (history.shape[0], DIM) and np.all(np.isfinite(emb))


@pytest.mark.parametrize("known", [True, False], ids=["known-user", "new-user-fold-in"])
def test_serve_single(benchmark, fitted, split, known):
    """One query: embedding (lookup or fold-in), score all items, drop history, top-10."""
    benchmark.group = "serve-single"
    benchmark.extra_info.update(dataset=split.data.name, n_items=split.train.n_items, known=known)
    if known:
        user = int(np.flatnonzero(split.train.user_activity() > 0)[0])
        q = Queries([user], split.train.matrix[user], known=True)
    else:
        q = Queries(split.test.users[:1], split.test.history[:1], known=False)
    ids, scores = benchmark(fitted.recommend, q, 10)
    assert ids.shape == (1, 10) and not set(ids[0]) & set(q.history.indices)
