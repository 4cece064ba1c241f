"""Which engine fits a :class:`~mfsoftmax.models.wals.WALS`: one module per engine behind this
factory (as `implicit`'s ``cpu/als.py`` and ``gpu/als.py``), chosen from the model's parameters.

Every engine is a class with two methods:

- ``check(owner, params)``: refuse, with a :class:`~mfsoftmax.models.params.ParamError`, the
  combinations of (range-checked) constructor parameters it cannot fit;
- ``fit(model, matrix, init, callback)``: set ``model.U``, ``model.V`` (numpy, float32) and
  ``model.fit_seconds`` from the users x items ``matrix``, calling
  ``model.iteration_done(iteration, callback)`` after each iteration where it can.

Everything after the fit (fold-in, scoring, serving, cold start, the objective) is the model's
numpy code, the same for every engine.
"""

from __future__ import annotations

import importlib

#: the values of ``WALS(engine=...)``
ENGINES = ("implicit", "spark")
#: engine key -> (module of this package, class)
_CLASSES = {
    "implicit-cpu": ("implicit_cpu", "ImplicitCPU"),
    "implicit-gpu": ("implicit_gpu", "ImplicitGPU"),
    "direct": ("direct", "Direct"),
    "spark": ("spark", "SparkEngine"),
}


def engine_key(engine: str, solver: str, device: str) -> str:
    """The engine that fits ``engine``/``solver``/``device``: Spark MLlib, the numpy direct
    solver (``solver="direct"``, any device: it refuses ``"cuda"``), or `implicit` on the CPU
    or the GPU."""
    if engine == "spark":
        return "spark"
    if solver == "direct":
        return "direct"
    return "implicit-gpu" if device == "cuda" else "implicit-cpu"


def make_engine(engine: str, solver: str, device: str):
    """An instance of the engine :func:`engine_key` names (its module imported on first use)."""
    module, cls = _CLASSES[engine_key(engine, solver, device)]
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)()
