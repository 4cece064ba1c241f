"""Report sections, one module per measurement: its tables, its plots and its headline claims.

A section module has ``KEY``, ``TITLE`` and ``INTRO`` (the report section it fills: a module
whose ``KEY`` an earlier module already has adds its tables and plots to that section, as
hashing does to Training cost); ``tables(runs, labels) -> list`` (None entries are dropped);
``PLOTS``, a tuple of ``(key, title, build(results) -> Figure | None)``; and, when it judges
a textbook claim, ``CLAIMS`` (:class:`~mfsoftmax.reports.judge.Claim`, each with its ``row``
in the headline) and ``judge(claim, results) -> ClaimResult``, and optionally ``SPARKLINES``,
``{claim key: build(res, results) -> Figure | None}``, its figure beside the headline row
(:mod:`~mfsoftmax.reports.glance`). A module imports matplotlib only inside its plot and
sparkline builders: the headline (``mfsoftmax run``'s summary) reads every module.

:data:`MODULES` is the registry: ``render.py`` builds the report from it in this order, the
headline (``reports/verdicts.py``) takes its claims from it. Adding a measurement: a stage
module (``bench/stages/``), a section module here, its name in :data:`MODULES`, a config key
and tests (docs/stages-and-configs.md, "Adding a measurement").
"""

from __future__ import annotations

import importlib

#: the section modules, in report order
MODULES = ("quality", "strata", "training", "hashing", "scale", "serving", "serving_corpus",
           "cold_start", "query_features", "folding", "run")


def modules() -> list:
    """The section modules (imported on first use: they import the tables and the judge)."""
    return [importlib.import_module(f"{__name__}.{name}") for name in MODULES]


def plots() -> tuple:
    """Every section's ``(key, title, build)`` plots, in report order."""
    return tuple(p for m in modules() for p in m.PLOTS)
