"""Report sections, one module per measurement: its tables, its plot and its headline line.

A section module has ``KEY``, ``TITLE`` and ``INTRO``; ``tables(runs, labels) -> list`` (None
entries are dropped); ``PLOTS``, a tuple of ``(key, title, build(results) -> Figure | None)``;
and ``judge(claim, results) -> ClaimResult`` for its row of the headline
(``reports/verdicts.py`` lists the claim). ``render.py`` places the sections after Quality.
"""

from __future__ import annotations

import importlib

#: the section modules, in report order
MODULES = ("strata",)


def modules() -> list:
    """The section modules (imported on first use: they import the tables and verdicts)."""
    return [importlib.import_module(f"{__name__}.{name}") for name in MODULES]


def plots() -> tuple:
    """Every section's ``(key, title, build)`` plots."""
    return tuple(p for m in modules() for p in m.PLOTS)
