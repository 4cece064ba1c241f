"""Check a results dict against the contract of RESULTS.md (required keys and plain-number
figures). Sections a run did not measure may be absent; what is present must be well-formed."""

from __future__ import annotations

import json
import numbers
from pathlib import Path

SCHEMA_VERSION = 1

RUN_KEYS = ("id", "started_at", "finished_at", "git_commit", "python", "packages", "machine",
            "threads", "seed", "config", "calibration")
DATASET_KEYS = ("name", "n_users", "n_items", "n_interactions", "protocol", "k")
FAMILIES = ("mf", "softmax", "baseline")


class ResultsError(ValueError):
    """An unusable results file; the message names the file."""


def read_results(path, error: type[ValueError] = ResultsError) -> dict:
    """Read one results.json (or the one in a run folder) and check its ``schema_version``.

    A missing file, invalid JSON, a non-object or another schema version raises ``error`` (each
    command passes its own error class) with a message naming the file.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    check_version(data, str(path), error)
    return data


def check_version(data, label: str, error: type[ValueError] = ResultsError) -> None:
    """``data`` must be a JSON object of this schema version."""
    if not isinstance(data, dict):
        raise error(f"{label}: expected a JSON object at the top level, got {type(data).__name__}")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise error(f"{label}: schema_version {version!r} is not supported (expected {SCHEMA_VERSION})")


def feature_pairs(ablation: list) -> list[tuple[int, int]]:
    """(with, without) index pairs of ablation rows: the same model and history setting, with and
    without user features (the rows between which a feature lift is measured)."""
    return [(i, j) for i, on in enumerate(ablation) if on.get("user_features")
            for j, off in enumerate(ablation)
            if off.get("model") == on.get("model") and not off.get("user_features")
            and bool(off.get("history")) == bool(on.get("history"))]


def _num(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def check_results(res: dict, require_all: bool = False) -> list[str]:
    """Problems found (empty when the results honour the contract).

    With ``require_all`` every model section of RESULTS.md must be present for the MF and
    softmax models, and every sweep (what a full default run writes).
    """
    errs: list[str] = []
    if res.get("schema_version") != SCHEMA_VERSION:
        errs.append(f"schema_version is {res.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    run = res.get("run", {})
    errs += [f"run.{k} missing" for k in RUN_KEYS if k not in run]
    for k in ("cpu", "cores", "memory_gb", "gpu"):
        if k not in run.get("machine", {}):
            errs.append(f"run.machine.{k} missing")
    for k in ("blas", "torch", "implicit"):
        if not isinstance(run.get("threads", {}).get(k), int):
            errs.append(f"run.threads.{k} must be an int")
    if not _num(run.get("calibration", {}).get("matmul_gflops")):
        errs.append("run.calibration.matmul_gflops must be a number")
    for k in ("numpy", "scipy", "implicit", "torch"):
        if k not in run.get("packages", {}):
            errs.append(f"run.packages.{k} missing")
    ds = res.get("dataset", {})
    errs += [f"dataset.{k} missing" for k in DATASET_KEYS if k not in ds]
    models = res.get("models", {})
    if not models:
        errs.append("models is empty")
    for name, m in models.items():
        where = f"models.{name}"
        if m.get("family") not in FAMILIES:
            errs.append(f"{where}.family is {m.get('family')!r}")
        for key, val in m.get("quality", {}).items():
            if not (_num(val) or val is None):
                errs.append(f"{where}.quality.{key} is not a number")
        tr = m.get("training")
        if tr is not None:
            for k in ("wall_s", "cpu_s", "peak_rss_mb", "epochs"):
                if not _num(tr.get(k)):
                    errs.append(f"{where}.training.{k} must be a number")
            for pt in tr.get("curve", []):
                if not (_num(pt.get("wall_s")) and _num(pt.get("recall@10"))):
                    errs.append(f"{where}.training.curve has a bad point {pt}")
        sv = m.get("serving")
        if sv is not None:
            for k in ("p50_us", "p95_us", "p99_us"):
                if not _num(sv.get(k)):
                    errs.append(f"{where}.serving.{k} must be a number")
            if not all(_num(v) for v in sv.get("qps", {}).values()) or not sv.get("qps"):
                errs.append(f"{where}.serving.qps must map batch sizes to numbers")
        cs = m.get("cold_start")
        if cs is not None:
            for row in cs.get("users", []):
                if not {"n_known", "recall@10", "ndcg@10"} <= set(row):
                    errs.append(f"{where}.cold_start.users row {row} lacks keys")
            for row in cs.get("items", []):
                if not {"n_known", "recall@10"} <= set(row):
                    errs.append(f"{where}.cold_start.items row {row} lacks keys")
        fo = m.get("folding")
        if fo is not None:
            for k in ("probe", "leakage@10", "users_with_leak", "xin_score"):
                if k not in fo:
                    errs.append(f"{where}.folding.{k} missing")
        if require_all and m.get("family") in ("mf", "softmax"):
            for sec in ("quality", "training", "serving", "cold_start", "folding"):
                if sec not in m:
                    errs.append(f"{where}.{sec} missing")
    sweeps = res.get("sweeps", {})
    required_rows = {
        "serving_vs_corpus": ("model", "n_items", "index", "p50_us", "recall_vs_exact"),
        "training_vs_size": ("model", "n_interactions", "n_items", "wall_s", "peak_rss_mb"),
        "folding_vs_w0": ("w0", "leakage@10", "recall@10"),
        "folding_vs_variant": ("variant", "dim", "leakage@10", "recall@10"),
    }
    for name, keys in required_rows.items():
        if name not in sweeps:
            if require_all:
                errs.append(f"sweeps.{name} missing")
            continue
        for row in sweeps[name]:
            missing = [k for k in keys if k not in row]
            if missing:
                errs.append(f"sweeps.{name} row lacks {missing}")
    return errs
