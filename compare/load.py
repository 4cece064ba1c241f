"""Reading and validating the two results files ``compare`` lines up.

One results.json is read and checked against the results contract (docs/results.md, the one
validator of src/mfsoftmax/results/schema.py, read as partial); bad input raises :class:`CompareError`, which
names the file and makes the CLI exit with status 2. Also the two readers of raw figures the
engine needs: :func:`finite_num` (a finite float or None) and :func:`best_gflops` (a run's
calibration).
"""

from __future__ import annotations

import math
from pathlib import Path

from mfsoftmax.results.schema import ensure_valid, read_results


class CompareError(ValueError):
    """Unusable input (the message names the file or parameter)."""


def load_results(path: str | Path) -> dict:
    """Read and validate one results.json; :class:`CompareError` naming the file on bad input."""
    data = read_results(path, CompareError)
    validate(data, str(path))
    return data


def validate(data, label: str = "results") -> None:
    """Check ``data`` against the results contract (docs/results.md; the one validator of
    src/mfsoftmax/results/schema.py, read as partial: absent figures become missing rows) plus what compare
    needs."""
    ensure_valid(data, label, CompareError, partial=True)
    if not isinstance(data.get("models"), dict):
        raise CompareError(f"{label}: no 'models' object")


def finite_num(v) -> float | None:
    """A finite float, or None (absent, null, NaN, not a number)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def best_gflops(data: dict) -> float | None:
    """The run's robust calibration: the best of ``matmul_gflops`` and every sample in
    ``matmul_gflops_samples`` (a busy machine only ever makes a sample slower)."""
    cal = (data.get("run") or {}).get("calibration") or {}
    samples = cal.get("matmul_gflops_samples")
    values = [cal.get("matmul_gflops"), *(samples if isinstance(samples, list) else [])]
    good = [g for g in map(finite_num, values) if g is not None and g > 0]
    return max(good) if good else None
