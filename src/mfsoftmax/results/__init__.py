"""The results contract, shared by the writer (``bench``) and the readers (``reports``,
``compare``): the schema and its validator (:mod:`.schema`, ``results.schema.json``), reading a
file. Writer and readers import this package and nothing of each other (docs/results.md)."""

from mfsoftmax.results.schema import (
    SCHEMA_VERSION,
    ResultsError,
    check_results,
    ensure_valid,
    feature_pairs,
    read_results,
    validate,
)

__all__ = ["SCHEMA_VERSION", "ResultsError", "check_results", "ensure_valid", "feature_pairs",
           "read_results", "validate"]
