import os
from pathlib import Path

import pytest

# implicit warns unless BLAS uses one thread; pin before numpy loads its BLAS
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The folder holding the real MovieLens copies (``../shared/datasets``), or skip."""
    if not (SHARED / "ml-100k" / "u.data").exists():
        pytest.skip(f"real ml-100k not found under {SHARED}")
    return SHARED
