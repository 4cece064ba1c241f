"""What the suite knows of a model's engine: which one it runs on and whether its fit runs in
child processes (recorded on every training-cost row; decides whose memory counts)."""

from __future__ import annotations


def spawns_processes(model) -> bool:
    """Whether ``model``'s fit runs in child processes (Spark's JVM, DDP ranks): only then do
    children count in its RSS. Otherwise a process left by another model (a Spark session kept
    for later fits) would be charged to this one."""
    return getattr(model, "engine", None) == "spark" or int(getattr(model, "workers", 1) or 1) > 1


def engine_of(model) -> dict:
    """``engine`` and ``workers`` of a fitted model (WALS: implicit or spark with Spark's
    parallelism; the softmax DNN: torch with its data-parallel ranks; others: their class)."""
    engine = getattr(model, "engine", None)
    if engine == "spark":
        info = getattr(model, "spark_info", {}) or {}
        return {"engine": "spark", "workers": int(info.get("blocks", 1) or 1)}
    if engine is not None:
        return {"engine": str(engine), "workers": 1}
    if hasattr(model, "workers"):
        return {"engine": "torch", "workers": int(model.workers)}
    return {"engine": type(model).__name__, "workers": 1}
