"""The report's figure machinery (matplotlib, Agg): the style, a figure of side-by-side axes, and
rendering every section's plots (each section module's ``PLOTS``: builders that take one run's
results and return a Figure, or None when the run did not measure what the plot needs)."""

from __future__ import annotations

import io
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mfsoftmax.reports import sections  # noqa: E402

STYLE = {
    "figure.dpi": 110, "savefig.dpi": 110, "font.size": 9.5, "axes.titlesize": 10.5,
    "axes.titleweight": "bold", "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.25, "legend.fontsize": 8.5, "legend.frameon": False,
    "svg.fonttype": "none", "svg.hashsalt": "mfsoftmax", "figure.constrained_layout.use": True,
}
SINGLE = (7.0, 4.2)
DOUBLE = (11.5, 4.2)


def figure(size=SINGLE, ncols=1):
    """A figure of ``ncols`` axes side by side: ``(fig, [axes])``."""
    fig, axes = plt.subplots(1, ncols, figsize=size, squeeze=False)
    return fig, list(axes[0])


def render(results, title_suffix: str = "") -> list:
    """[(key, title, png bytes, svg text)] for every plot this run has data for."""
    out = []
    with plt.rc_context(STYLE):
        for key, title, build in sections.plots():  # each section's, in report order
            try:
                fig = build(results)
            except (KeyError, TypeError, ValueError, IndexError) as exc:  # malformed section
                warnings.warn(f"plot {key!r} skipped: {type(exc).__name__}: {exc}", stacklevel=2)
                plt.close("all")
                continue
            if fig is None:
                continue
            if title_suffix:
                fig.text(0.995, 0.005, title_suffix, ha="right", va="bottom", fontsize=7.5,
                         color="#666")
            out.append((key, title, *encode(fig)))
    return out


def encode(fig, **savefig) -> tuple:
    """``(png bytes, svg text)`` of ``fig``, laid out once for both formats; closes ``fig``."""
    try:
        fig.canvas.draw()  # run the layout once, then freeze it for both formats
        fig.set_layout_engine("none")
        png, svg = io.BytesIO(), io.StringIO()
        fig.savefig(png, format="png", **savefig)
        fig.savefig(svg, format="svg", metadata={"Date": None})
        return png.getvalue(), svg.getvalue()
    finally:
        plt.close(fig)
