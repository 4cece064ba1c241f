"""Shared fixtures of the pytest-benchmark files in bench/ (``bench/test_bench_*.py``).

Benchmarks are disabled by the project's default options (each case then runs once as a smoke
test); time them with ``pytest bench/ --benchmark-enable`` (or ``--benchmark-only``).
"""

from __future__ import annotations

import os
from pathlib import Path

# one BLAS/OpenMP thread unless told otherwise; set before numpy loads its BLAS
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA_DIRS = [REPO.parent / "shared" / "datasets", Path("/work/shared/datasets")]


def find_data_dir(name: str) -> Path | None:
    """The first folder holding ``name`` (``$MFSOFTMAX_DATA``, ../shared/datasets relative to
    the repository, /work/shared/datasets), or None."""
    dirs = ([Path(os.environ["MFSOFTMAX_DATA"])] if os.environ.get("MFSOFTMAX_DATA") else [])
    for d in dirs + DATA_DIRS:
        if (d / name).is_dir():
            return d
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder with the real datasets, or skip (benchmarks never download)."""
    d = find_data_dir("ml-100k")
    if d is None:
        pytest.skip(f"no datasets folder with ml-100k among {[str(p) for p in DATA_DIRS]}")
    return d


@pytest.fixture(scope="session")
def ml100k(data_dir):
    """MovieLens 100K as ``Interactions`` (binary, all ratings), or skip when it is missing."""
    from mfsoftmax.datasets import load

    if not (data_dir / "ml-100k" / "u.data").exists():
        pytest.skip(f"ml-100k/u.data not found under {data_dir}")
    return load("ml-100k", data_dir=data_dir)


@pytest.fixture
def one_thread():
    """Pin BLAS/OpenMP pools to one thread for the test that asks for it."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield
