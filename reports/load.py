"""Read and check results.json files (schema in shared/docs/RESULTS.md)."""

from __future__ import annotations

from pathlib import Path

from mfsoftmax.bench.schema import SCHEMA_VERSION, check_version, read_results

__all__ = ["SCHEMA_VERSION", "ReportInputError", "load_results", "validate"]

# Top-level sections and the JSON type each must have when present.
SECTION_TYPES = {
    "run": dict, "dataset": dict, "models": dict, "sweeps": dict, "stages": dict,
    "serving": list, "ablation": list, "offline_topk": dict, "quality_paired_se": list,
    "cold_users_paired_se": list, "cold_items_paired_se": list,
}
MODEL_SECTION_TYPES = {
    "quality": dict, "quality_se": dict, "training": dict, "serving": dict, "cold_start": dict,
    "folding": dict, "tuning": dict, "embeddings": dict, "params": dict,
}


class ReportInputError(ValueError):
    """A results file that cannot be rendered; the message names the file and the key."""


def _type_name(obj) -> str:
    return {dict: "an object", list: "a list"}.get(type(obj), type(obj).__name__)


def validate(results, source: str = "<results>") -> dict:
    """Check ``results`` against the contract's shape; return it or raise ReportInputError."""
    check_version(results, source, ReportInputError)
    for key, typ in SECTION_TYPES.items():
        if key in results and not isinstance(results[key], typ):
            raise ReportInputError(
                f"{source}: '{key}' must be {_type_name(typ())}, got {_type_name(results[key])}")
    for name, model in results.get("models", {}).items():
        if not isinstance(model, dict):
            raise ReportInputError(f"{source}: models['{name}'] must be an object, got {_type_name(model)}")
        for key, typ in MODEL_SECTION_TYPES.items():
            if key in model and not isinstance(model[key], typ):
                raise ReportInputError(
                    f"{source}: models['{name}'].{key} must be {_type_name(typ())}, "
                    f"got {_type_name(model[key])}")
    for key in ("quality_paired_se", "cold_users_paired_se", "cold_items_paired_se"):
        for i, row in enumerate(results.get(key, [])):
            if not isinstance(row, dict) or not isinstance(row.get("a"), str) \
                    or not isinstance(row.get("b"), str):
                raise ReportInputError(f"{source}: {key}[{i}] must be an object naming models "
                                       f"'a' and 'b'")
    for key, rows in results.get("sweeps", {}).items():
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ReportInputError(f"{source}: sweeps['{key}'] must be a list of objects")
    return results


def load_results(path: str | Path) -> dict:
    """Read one results.json; a missing file, bad JSON or wrong schema raises ReportInputError."""
    return validate(read_results(path, ReportInputError), source=str(Path(path)))
