"""pytest-benchmark: dataset generation and parsing at scale (not a unit test).

* ``synthetic`` with 1M users x 100k items and mean activity 20 (~20M generated events, ~16M
  distinct pairs after de-duplication): the issue's target is under a minute.
* ``synthetic-20m`` (MovieLens-20M's shape, ~20M interactions): target under a minute.
* The ratings parser on a generated 2M-line ``ratings.csv`` (MovieLens 20M format, ~54 MB);
  the throughput is stored in ``extra_info`` (ml-20m's 533 MB scale linearly from it).

* ``ml_20m`` on a generated ml-20m-format folder (``$MFSOFTMAX_BENCH_ML20M_ROWS`` rows, default
  2M; 20000000 for the real scale) against a bare ``pyarrow.csv.read_csv`` of the same file,
  interleaved in one run (target: ratio of medians <= 1.3), and the cached second load (the
  finished Interactions read back from ``ratings.interactions.npz``: target a few seconds).

Run: ``pytest bench/test_bench_datasets.py --benchmark-enable``.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from mfsoftmax.datasets import parsecache
from mfsoftmax.datasets.movielens import ml_20m, read_ratings
from mfsoftmax.datasets.synthetic import synthetic

pytestmark = pytest.mark.slow


def test_synthetic_1m_users_100k_items(benchmark):
    t0 = time.perf_counter()
    data = benchmark.pedantic(
        synthetic, kwargs=dict(n_users=1_000_000, n_items=100_000, mean_activity=20, seed=0),
        rounds=1, iterations=1,
    )
    elapsed = time.perf_counter() - t0
    assert data.matrix.shape == (1_000_000, 100_000)
    assert data.n_interactions > 15_000_000
    benchmark.extra_info.update(n_interactions=data.n_interactions, seconds=elapsed)
    assert elapsed < 60, f"synthetic 1M x 100k took {elapsed:.1f} s (target < 60 s)"


def test_synthetic_20m_shape(benchmark):
    """``synthetic-20m``: ML-20M's shape (138,493 x 26,744, ~20M interactions) in seconds."""
    from mfsoftmax.datasets.synthetic import synthetic_20m

    t0 = time.perf_counter()
    data = benchmark.pedantic(synthetic_20m, kwargs=dict(seed=0), rounds=1, iterations=1)
    elapsed = time.perf_counter() - t0
    assert data.matrix.shape == (138_493, 26_744)
    assert 19_000_000 < data.n_interactions < 21_000_000
    benchmark.extra_info.update(n_interactions=data.n_interactions, seconds=elapsed)
    assert elapsed < 60, f"synthetic-20m took {elapsed:.1f} s (target < 60 s)"


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory):
    n = 2_000_000
    rng = np.random.default_rng(0)
    cols = [np.sort(rng.integers(1, 138_494, n)), rng.integers(1, 131_263, n),
            rng.integers(1, 11, n) / 2, rng.integers(800_000_000, 1_430_000_000, n)]
    path = tmp_path_factory.mktemp("ml20") / "ratings.csv"
    lines = "\n".join(f"{a},{b},{c},{d}" for a, b, c, d in zip(*(c.tolist() for c in cols),
                                                                strict=True))
    path.write_text("userId,movieId,rating,timestamp\n" + lines + "\n")
    return path


def test_parse_ratings_csv_2m_lines(benchmark, ratings_csv):
    t0 = time.perf_counter()
    r = benchmark.pedantic(read_ratings, args=(ratings_csv, b",", True), rounds=3, iterations=1)
    elapsed = (time.perf_counter() - t0) / 3
    assert len(r["user"]) == 2_000_000
    mb = ratings_csv.stat().st_size / 1e6
    benchmark.extra_info.update(megabytes=mb, mb_per_s=mb / elapsed)


ROWS_ENV = "MFSOFTMAX_BENCH_ML20M_ROWS"


@pytest.fixture(scope="module")
def ml20m_folder(tmp_path_factory):
    """An ml-20m-format ``ratings.csv`` of about ``$MFSOFTMAX_BENCH_ML20M_ROWS`` rows (default
    2M, ~54 MB; 20000000 for the real ml-20m size, ~540 MB; sorted by user then movie with
    unique pairs, as ml-20m is) plus a ``movies.csv``, written by pyarrow (fast enough for 20M)."""
    pa = pytest.importorskip("pyarrow")
    pcsv = pytest.importorskip("pyarrow.csv")
    pc = pytest.importorskip("pyarrow.compute")
    n = int(os.environ.get(ROWS_ENV, "2000000"))
    rng = np.random.default_rng(0)
    movies = np.unique(rng.integers(1, 131_263, 30_000))  # ~27k movie ids, as in ml-20m
    users, items = rng.integers(1, 138_494, n), movies[rng.integers(0, len(movies), n)]
    order = np.lexsort((items, users))  # ml-20m's order: by user, then movie; pairs unique
    users, items = users[order], items[order]
    keep = np.ones(n, dtype=bool)
    keep[1:] = (users[1:] != users[:-1]) | (items[1:] != items[:-1])
    users, items = users[keep], items[keep]
    m = len(users)
    table = pa.table({
        "userId": users,
        "movieId": items,
        "rating": pc.take(pa.array([f"{k / 2:.1f}" for k in range(1, 11)]),
                          pa.array(rng.integers(0, 10, m))),
        "timestamp": rng.integers(800_000_000, 1_430_000_000, m),
    })
    folder = tmp_path_factory.mktemp("ml20m") / "ml-20m"
    folder.mkdir()
    with open(folder / "ratings.csv", "wb") as f:
        f.write(b"userId,movieId,rating,timestamp\n")
        pcsv.write_csv(table, f, pcsv.WriteOptions(include_header=False, quoting_style="none"))
    (folder / "movies.csv").write_text("movieId,title,genres\n" + "".join(
        f"{m},Movie {m} ({1900 + m % 120}),Drama|Comedy\n" for m in movies.tolist()))
    return folder


def test_load_ml20m_vs_bare_pyarrow(benchmark, ml20m_folder, tmp_path, monkeypatch):
    """``ml_20m`` (parse + Interactions, no parsed-array cache) against a bare
    ``pyarrow.csv.read_csv`` of the same file, interleaved round by round; target ratio <= 1.3."""
    pcsv = pytest.importorskip("pyarrow.csv")
    monkeypatch.setenv("MFSOFTMAX_PARSE_CACHE", "0")
    path = ml20m_folder / "ratings.csv"
    times = {"pyarrow": [], "loader": []}

    def one_round():
        t0 = time.perf_counter()
        table = pcsv.read_csv(path)
        times["pyarrow"].append(time.perf_counter() - t0)
        del table
        t0 = time.perf_counter()
        data = ml_20m(data_dir=ml20m_folder, cache=tmp_path)
        times["loader"].append(time.perf_counter() - t0)
        return data

    data = benchmark.pedantic(one_round, rounds=3, iterations=1)
    assert data.n_interactions > 0
    med = {k: float(np.median(v)) for k, v in times.items()}
    ratio = med["loader"] / med["pyarrow"]
    benchmark.extra_info.update(rows=int(os.environ.get(ROWS_ENV, "2000000")),
                                megabytes=path.stat().st_size / 1e6,
                                pyarrow_s=med["pyarrow"], loader_s=med["loader"], ratio=ratio)
    # the target is stated at ML-20M size: below ~10M rows the fixed cost of movies.csv and the
    # features (about 1.8 s here) dominates and the ratio says nothing about the parse
    if int(os.environ.get(ROWS_ENV, "2000000")) >= 10_000_000:
        assert ratio <= 1.3, f"loader {med['loader']:.2f} s vs bare pyarrow {med['pyarrow']:.2f} s"


def test_load_ml20m_cached(benchmark, ml20m_folder, tmp_path, monkeypatch):
    """The second load, from the cache (``.npz`` entries in the cache folder, since a
    ``data_dir`` copy is never written into): the finished Interactions (CSR arrays, features)
    is read back, nothing is parsed, factorised or de-duplicated again."""
    monkeypatch.delenv("MFSOFTMAX_PARSE_CACHE", raising=False)
    monkeypatch.setattr(parsecache, "MIN_BYTES", 0)  # small N: cache whatever the size
    t0 = time.perf_counter()
    ml_20m(data_dir=ml20m_folder, cache=tmp_path)  # parses and writes the entry
    first = time.perf_counter() - t0
    assert list((tmp_path / "parsed").glob("*.parsed.npz"))
    assert list((tmp_path / "parsed").glob("*" + parsecache.BUILT_SUFFIX))
    times = []

    def cached_load():
        t0 = time.perf_counter()
        data = ml_20m(data_dir=ml20m_folder, cache=tmp_path)
        times.append(time.perf_counter() - t0)
        return data

    data = benchmark.pedantic(cached_load, rounds=3, iterations=1)
    assert data.n_interactions > 0
    benchmark.extra_info.update(rows=int(os.environ.get(ROWS_ENV, "2000000")),
                                first_load_s=first, cached_load_s=float(np.median(times)),
                                speedup=first / float(np.median(times)))
