"""Read and check results.json files for the report (the contract: docs/results.md and the JSON
Schema ``mfsoftmax/bench/results.schema.json``; the one validator is
:func:`mfsoftmax.bench.schema.validate`)."""

from __future__ import annotations

from pathlib import Path

from mfsoftmax.bench.schema import SCHEMA_VERSION, ensure_valid, read_results

__all__ = ["SCHEMA_VERSION", "ReportInputError", "load_results", "validate"]


class ReportInputError(ValueError):
    """A results file that cannot be rendered; the message names the file and the key."""


def validate(results, source: str = "<results>") -> dict:
    """Check ``results`` against the contract; return it or raise ReportInputError.

    Read as ``partial``: a section or figure the run did not record may be absent (the report
    says "not measured"), but what is there must have the contract's shape and types.
    """
    return ensure_valid(results, source, ReportInputError, partial=True)


def load_results(path: str | Path) -> dict:
    """Read one results.json; a missing file, bad JSON or wrong schema raises ReportInputError."""
    return validate(read_results(path, ReportInputError), source=str(Path(path)))
