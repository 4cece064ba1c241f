"""The headline's sparklines: one small figure per measured claim, drawn beside its row.

Each section module that judges a claim may declare ``SPARKLINES``, ``{claim key: build(res,
results) -> Figure | None}``, computed from the stored results and the models the claim's
verdict picked (``ClaimResult.models``), drawn with the helpers here: the two families'
figures as :func:`bars` (with error bars where the run recorded standard errors), or their
curves as :func:`lines` (cold start, training cost against data size, serving latency against
corpus size). A claim without a builder gets no figure; its row still reads the same.
"""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
from matplotlib.ticker import NullLocator

from mfsoftmax.reports import fmt
from mfsoftmax.reports import sections as measured
from mfsoftmax.reports.plots import STYLE, encode
from mfsoftmax.reports.verdicts import headline
from mfsoftmax.results.vocabulary import COMPARED

SIZE = (1.9, 0.75)  # inches: a sparkline beside a table row
DPI = 220           # PNG at twice the report's 110 dpi; shown at half its pixel width
SHORT = {"mf": "MF", "softmax": "DNN"}
SPARK_STYLE = {**STYLE, "font.size": 6.5, "axes.grid": False, "axes.spines.left": False,
               "xtick.major.size": 2, "ytick.left": False, "ytick.labelleft": False,
               "xtick.major.pad": 1.5, "axes.linewidth": 0.6}


def bars(items, text=fmt.num):
    """``items``: [(label, value, error or None, colour)] as bars, each value written on top."""
    fig, ax = plt.subplots(figsize=SIZE)
    top = max(v + (e or 0) for _, v, e, _ in items) or 1.0
    for x, (_, v, err, color) in enumerate(items):
        ax.bar(x, v, width=0.6, color=color, yerr=err if fmt.is_num(err) else None,
               capsize=2, error_kw={"lw": 0.7})
        ax.text(x, v + (err if fmt.is_num(err) else 0) + 0.04 * top, text(v),
                ha="center", va="bottom", fontsize=6)
    ax.set_xticks(range(len(items)), [label for label, *_ in items])
    ax.set_ylim(0, top * 1.35)
    return fig


def lines(series, xlabel, value=None, log=False, shade_to=None):
    """``series``: [(label, xs, ys, colour)] as lines, each named at its last point (with its
    last value, ``value(y)``, when given); x ticks at the data's ends."""
    fig, ax = plt.subplots(figsize=SIZE)
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ends = []
    for label, xs, ys, color in series:
        ax.plot(xs, ys, marker="o", ms=2.5, lw=1.1, color=color)
        ends.append([ys[-1], f"{label} {value(ys[-1])}" if value else label, xs[-1], color])
    if shade_to is not None:
        ax.axvspan(min(min(xs) for _, xs, _, _ in series), shade_to, color="#eef0f4", zorder=0)
    ax.margins(x=0.04, y=0.25)
    ends.sort(key=lambda e: e[0])
    fig.canvas.draw()
    pix = [ax.transData.transform((e[2], e[0]))[1] for e in ends]
    nudge = [0.0] * len(ends)
    if len(ends) == 2 and pix[1] - pix[0] < 9 * fig.dpi / 72:  # labels would overlap: part them
        nudge = [-3.5, 3.5]
    for (y, text, x, color), dy in zip(ends, nudge, strict=True):
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(3, dy), fontsize=6,
                    va="center", color=color, annotation_clip=False)
    lo, hi = min(min(xs) for _, xs, _, _ in series), max(max(xs) for _, xs, _, _ in series)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks([lo, hi], [fmt.count(lo), fmt.count(hi)])
    ax.set_xlabel(xlabel, fontsize=5.5, labelpad=0)
    return fig


def entry(results, name) -> dict:
    """Model ``name``'s entry of ``results`` (empty when absent)."""
    return results.get("models", {}).get(name) or {}


#: claim key -> its section's sparkline builder
SPARKLINES = {key: build for m in measured.modules() for key, build in getattr(m, "SPARKLINES", {}).items()}


def render(results) -> list:
    """[(``glance_<claim>``, alt text, png bytes, svg text)], one per measured claim of
    ``results`` with a builder in :data:`SPARKLINES`."""
    out = []
    with plt.rc_context(SPARK_STYLE):
        for res in headline(results):
            build = SPARKLINES.get(res.claim.key)
            if build is None or res.verdict == "not measured":
                continue
            try:
                fig = build(res, results)
            except (KeyError, TypeError, ValueError, IndexError) as exc:  # malformed section
                warnings.warn(f"sparkline {res.claim.key!r} skipped: {type(exc).__name__}: {exc}",
                              stacklevel=2)
                plt.close("all")
                continue
            if fig is not None:
                models = " vs ".join(res.models[f] for f in COMPARED if f in res.models)
                alt = f"{res.claim.title}: {models}" if models else res.claim.title
                out.append((f"glance_{res.claim.key}", alt, *encode(fig, dpi=DPI)))
    return out
