"""pytest-benchmark group ``serve-single``: one request to popularity, WALS and the softmax DNN
on a synthetic dataset of ml-100k's shape (943 users x 1682 items), each through

- ``generic``: ``model.recommend`` of a one-row ``Queries`` (the batch API);
- ``lean``: ``model.recommend_one`` (the lean single-query path; the DNN's tower through its
  ``serve_runtime``, ``auto``: TorchScript when equal to eager);
- ``lean-eager`` / ``lean-torchscript`` (the DNN): the lean path with each tower runtime;
- ``floor``: the bare numpy path doing the same work on the model's arrays
  (``bench/floor.py``: embed, ``V @ q`` (+ b), history to -inf, argpartition, sort of k);

so ``pytest-benchmark compare`` lines each path up against its model's floor. Every row stores
in ``benchmark.extra_info`` the floor's p50 (``floor_p50_us``: the floor measured in
interleaved rounds, the minimum of the rounds' medians) and, when timing is enabled,
``ratio_to_floor`` = the row's median / that floor.

Run with ``pytest bench/test_bench_serving.py --benchmark-enable`` (disabled by the project's
default options: each case then runs once, checking the paths agree). One BLAS and one torch
thread.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from mfsoftmax.bench.floor import FloorJob, floor_profiles, ratio_to_floor
from mfsoftmax.datasets import load, make_split
from mfsoftmax.models import Queries, SoftmaxDNN
from mfsoftmax.models.popularity import Popularity
from mfsoftmax.models.wals import WALS

K = 10
N_USERS, N_ITEMS = 943, 1682  # ml-100k's shape
MODELS = ("popularity", "wals", "dnn")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def split():
    data = load("synthetic", n_users=N_USERS, n_items=N_ITEMS)
    return make_split(data, "strong", seed=0, heldout_frac=0.1)


@pytest.fixture(scope="module")
def models(split):
    return {"popularity": Popularity().fit(split.train),
            "wals": WALS(dim=64, iterations=5, track_loss=False).fit(split.train),
            # the default tower (d = 64, one hidden layer of 256); one epoch: the cost of serving
            # depends on the shapes, not on how well it is trained
            "dnn": SoftmaxDNN(epochs=1, patience=1, loss="sampled-uniform").fit(split.train)}


@pytest.fixture(scope="module")
def request_(split):
    """One known user with a median-length history: ``(user, history ids, Queries)``."""
    m = split.train.matrix
    lens = np.diff(m.indptr)
    active = np.flatnonzero(lens > 0)
    user = int(active[np.argsort(lens[active], kind="stable")[len(active) // 2]])
    hist = m.indices[m.indptr[user]:m.indptr[user + 1]].astype(np.int64)
    return user, hist, Queries(np.array([user]), m[user], known=True)


@pytest.fixture(scope="module")
def floors(models, request_):
    """Each model's floor p50 (µs) on the request, in interleaved rounds (bench/floor.py)."""
    user, hist, _ = request_
    names = list(models)
    out = floor_profiles([(models[n], [(user, hist, True)]) for n in names], n=500, k=K, rounds=5)
    return {n: o for n, o in zip(names, out, strict=True)}


def _record(benchmark, model: str, path: str, floor: dict, **info) -> None:
    benchmark.group = "serve-single"
    floor_us = floor.get("floor_p50_us")
    benchmark.extra_info.update(model=model, path=path, n_users=N_USERS, n_items=N_ITEMS, k=K,
                                floor_kind=floor.get("floor_kind"), floor_p50_us=floor_us, **info)
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    median = getattr(stats, "median", None)
    if median:
        benchmark.extra_info["p50_us"] = round(median * 1e6, 3)
        benchmark.extra_info["ratio_to_floor"] = ratio_to_floor(median * 1e6, floor_us)


@pytest.mark.parametrize("name", MODELS)
def test_serve_generic(benchmark, models, request_, floors, name):
    model, (_, hist, q) = models[name], request_
    ids, _ = benchmark(model.recommend, q, K)
    _record(benchmark, name, "generic recommend", floors[name])
    assert ids.shape == (1, K) and not set(ids[0].tolist()) & set(hist.tolist())


@pytest.mark.parametrize("name", MODELS)
def test_serve_lean(benchmark, models, request_, floors, name):
    model, (user, hist, q) = models[name], request_
    ids, _ = benchmark(model.recommend_one, user, hist, K)
    info = {}
    if hasattr(model, "serve_info"):
        info["runtime"] = model.serve_info()["runtime"]
    _record(benchmark, name, "lean recommend_one", floors[name], **info)
    np.testing.assert_array_equal(ids, model.recommend(q, K)[0][0])


@pytest.mark.parametrize("runtime", ["eager", "torchscript"])
def test_serve_lean_dnn_tower(benchmark, models, request_, floors, runtime):
    """The DNN's lean path with each runtime of its query tower."""
    model, (user, hist, q) = models["dnn"], request_
    ids, _ = benchmark(model.recommend_one, user, hist, K, True, runtime)
    _record(benchmark, "dnn", f"lean, {runtime} tower", floors["dnn"], runtime=runtime,
            history_len=len(hist))
    np.testing.assert_array_equal(ids, model.recommend(q, K)[0][0])


@pytest.mark.parametrize("runtime", ["eager", "torchscript"])
def test_serve_dnn_tower_alone(benchmark, models, request_, floors, runtime):
    """The lean path's embed step alone: the query tower's forward for one request."""
    model, (user, hist, _) = models["dnn"], request_
    emb = benchmark(model.query_embedding_one, user, hist, runtime)
    _record(benchmark, "dnn", f"query embedding, {runtime} tower", floors["dnn"], runtime=runtime,
            floor_embed_us=floors["dnn"].get("embed_us"))
    assert emb.shape == (model.dim,) and np.all(np.isfinite(emb))


@pytest.mark.parametrize("name", MODELS)
def test_serve_floor(benchmark, models, request_, floors, name):
    """The bare numpy path (the floor itself): its ratio to the interleaved floor is ~1."""
    model, (user, hist, q) = models[name], request_
    job = FloorJob(model, [(user, hist, True)], k=K)
    *_, ids = benchmark(job.one, 0)
    _record(benchmark, name, "floor", floors[name], embed_us=floors[name].get("embed_us"),
            score_us=floors[name].get("score_us"), topk_us=floors[name].get("topk_us"))
    assert set(ids.tolist()) == set(model.recommend(q, K)[0][0].tolist())
