"""Read and check results.json files for the report (the contract: docs/results.md and the JSON
Schema ``mfsoftmax/results/results.schema.json``; the one validator is
:func:`mfsoftmax.results.schema.validate`)."""

from __future__ import annotations

from pathlib import Path

from mfsoftmax.results.schema import SCHEMA_VERSION, ensure_valid, read_results

__all__ = ["SCHEMA_VERSION", "ReportInputError", "load_results", "unfinished", "validate"]


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


def unfinished(results: dict) -> str | None:
    """Why a run's results are not final (``run.status`` ``running``: still going, or killed
    before it could close; ``interrupted``), else None. Files without the key are complete."""
    status = (results.get("run") or {}).get("status", "complete")
    if status == "running":
        return ("the run did not finish (status running): it is still going, or was killed before "
                "it could close (SIGKILL, power loss); only the stages recorded are shown")
    if status == "interrupted":
        return "the run was interrupted (status interrupted); only the stages it finished are shown"
    return None
