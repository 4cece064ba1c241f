"""What the suite knows of a model's engine: which one it runs on, whether its fit runs in
child processes (recorded on every training-cost row; decides whose memory counts) and the
precision it computes in."""

from __future__ import annotations


def spawns_processes(model) -> bool | str:
    """Which child processes count in ``model``'s fit RSS (``RssMonitor(children=...)``): a Spark
    model every one (its JVM, started by the first Spark fit and kept: its memory is the
    engine's cost), a data-parallel DNN the ones started during the fit (``"new"``: its ranks,
    not a Spark JVM left by an earlier model), any other model none (False)."""
    if getattr(model, "engine", None) == "spark":
        return True
    return "new" if int(getattr(model, "workers", 1) or 1) > 1 else False


def engine_of(model) -> dict:
    """``engine``, ``workers`` and ``precision`` of a fitted model (WALS: implicit or spark with
    Spark's parallelism; the softmax DNN: torch with its data-parallel ranks; others: their
    class; :func:`precision_of`)."""
    return {**_engine(model), "precision": precision_of(model)}


def _engine(model) -> dict:
    engine = getattr(model, "engine", None)
    if engine == "spark":
        info = getattr(model, "spark_info", {}) or {}
        return {"engine": "spark", "workers": int(info.get("blocks", 1) or 1)}
    if engine is not None:
        return {"engine": str(engine), "workers": 1}
    if hasattr(model, "workers"):
        return {"engine": "torch", "workers": int(model.workers)}
    return {"engine": type(model).__name__, "workers": 1}


def precision_of(model) -> str:
    """The precision ``model`` trains and serves in: the softmax DNN's resolved ``precision``
    (``fp32`` | ``bf16``); WALS (implicit's float32 factors, Spark's too), popularity and the
    others: ``fp32`` (their arrays are float32; none has a reduced-precision mode)."""
    return str(getattr(model, "precision_resolved", None) or "fp32")
