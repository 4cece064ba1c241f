"""Report rendering: results.json -> report.md, report.html and plots.

``render_report`` is imported lazily (the module ``__getattr__``) so that ``mfsoftmax --help``
does not load matplotlib; the loaders (``load_results``, ...) are light and imported here.
"""

from mfsoftmax.reports.load import ReportInputError, load_results, validate

__all__ = ["ReportInputError", "load_results", "render_report", "validate"]


def __getattr__(name):
    if name == "render_report":
        from mfsoftmax.reports.render import render_report  # lazy: matplotlib (~0.5 s)

        return render_report
    raise AttributeError(f"module 'mfsoftmax.reports' has no attribute {name!r}")
