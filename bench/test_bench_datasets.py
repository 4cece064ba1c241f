"""pytest-benchmark: dataset generation and parsing at scale (not a unit test).

* ``synthetic`` with 1M users x 100k items and mean activity 20 (~20M generated events, ~16M
  distinct pairs after de-duplication): the issue's target is under a minute.
* The ratings parser on a generated 2M-line ``ratings.csv`` (MovieLens 20M format, ~54 MB);
  the throughput is stored in ``extra_info`` (ml-20m's 533 MB scale linearly from it).

Run: ``pytest bench/test_bench_datasets.py --benchmark-enable``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from mfsoftmax.datasets.movielens import read_ratings
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
