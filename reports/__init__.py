"""Report rendering: results.json -> report.md, report.html and plots.

``render_report`` and friends are imported lazily so that ``mfsoftmax --help`` does not load
matplotlib.
"""

__all__ = ["ReportInputError", "load_results", "render_report", "validate"]


def __getattr__(name):
    if name == "render_report":
        from mfsoftmax.reports.render import render_report

        return render_report
    if name in ("ReportInputError", "load_results", "validate"):
        from mfsoftmax.reports import load

        return getattr(load, name)
    raise AttributeError(f"module 'mfsoftmax.reports' has no attribute {name!r}")
