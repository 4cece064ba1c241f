"""The headline's sparklines: one small figure per measured claim, drawn beside its row.

Each is computed from the stored results and the models the claim's verdict picked
(``ClaimResult.models``): the two families' figures as bars (with error bars where the run
recorded standard errors), or their curves (cold start, training cost against data size,
serving latency against corpus size). A claim without a builder in :data:`SPARKLINES` gets no
figure; its row still reads the same.
"""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
from matplotlib.ticker import NullLocator

from mfsoftmax.reports import fmt
from mfsoftmax.reports.colors import model_color
from mfsoftmax.reports.judge import COLD_MAX_KNOWN
from mfsoftmax.reports.plots import STYLE, encode
from mfsoftmax.reports.sections.quality import quality_metric
from mfsoftmax.reports.sections.serving import served_p50, serving_at_recall
from mfsoftmax.reports.sections.training import pass_times
from mfsoftmax.reports.verdicts import headline
from mfsoftmax.results.schema import feature_pairs
from mfsoftmax.results.vocabulary import COMPARED, SWEEP_NAME, role_of

SIZE = (1.9, 0.75)  # inches: a sparkline beside a table row
DPI = 220           # PNG at twice the report's 110 dpi; shown at half its pixel width
SHORT = {"mf": "MF", "softmax": "DNN"}
SPARK_STYLE = {**STYLE, "font.size": 6.5, "axes.grid": False, "axes.spines.left": False,
               "xtick.major.size": 2, "ytick.left": False, "ytick.labelleft": False,
               "xtick.major.pad": 1.5, "axes.linewidth": 0.6}


def _bars(items, text=fmt.num):
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


def _lines(series, xlabel, value=None, log=False, shade_to=None):
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


def _model(results, name) -> dict:
    return results.get("models", {}).get(name) or {}


def quality(res, results):
    """Each family's best model: its recall (± se) as a bar."""
    metric = quality_metric(results)
    items = []
    for fam in COMPARED:
        m = _model(results, res.models.get(fam))
        v = m.get("quality", {}).get(metric)
        if fmt.is_num(v):
            items.append((SHORT[fam], v, m.get("quality_se", {}).get(metric),
                          model_color(res.models[fam])))
    return _bars(items, lambda v: f"{v:.3f}") if len(items) == 2 else None


def query_features(res, results):
    """The feature lift of each family's model: its figure without and with user features."""
    rows = results.get("ablation", [])
    items = []
    for fam in COMPARED:
        name = res.models.get(fam)
        metric = "cold_recall@20" if "cold_recall@20" in res.figures.get(fam, "") else "recall@20"
        for i, j in feature_pairs(rows):
            on, off = rows[i], rows[j]
            if on.get("model") == name and fmt.is_num(on.get(metric)) and fmt.is_num(off.get(metric)):
                color = model_color(name)
                items += [(f"{SHORT[fam]} −f", off[metric], None, "#c9ced8"),
                          (f"{SHORT[fam]} +f", on[metric], (on.get("lift_se") or {}).get(metric),
                           color)]
                break
    return _bars(items, lambda v: f"{v:.3f}") if items else None


def _cold(res, results, side):
    series = []
    for fam in COMPARED:
        name = res.models.get(fam)
        pts = sorted((int(p["n_known"]), p["recall@10"])
                     for p in _model(results, name).get("cold_start", {}).get(side, [])
                     if fmt.is_num(p.get("recall@10")) and fmt.is_num(p.get("n_known")))
        if pts:
            xs, ys = zip(*pts, strict=True)
            series.append((SHORT[fam], xs, ys, model_color(name)))
    if len(series) < 2:
        return None
    return _lines(series, f"known {side[:-1]} interactions (shaded: ≤ {COLD_MAX_KNOWN})",
                  lambda v: f"{v:.3f}", shade_to=COLD_MAX_KNOWN)


def folding(res, results):
    """Leakage@10 of each family's best model, and of a DNN trained without negatives."""
    items = []
    for fam in COMPARED:
        v = _model(results, res.models.get(fam)).get("folding", {}).get("leakage@10")
        if fmt.is_num(v):
            items.append((SHORT[fam], v, None, model_color(res.models[fam])))
    pos = [(n, m["folding"]["leakage@10"]) for n, m in results.get("models", {}).items()
           if role_of(n, results) == "no-negatives"
           and fmt.is_num(m.get("folding", {}).get("leakage@10"))]
    if pos:
        items.append(("DNN no neg.", pos[0][1], None, model_color(pos[0][0])))
    return _bars(items, lambda v: f"{v:.3f}") if len(items) >= 2 else None


def training(res, results):
    """Seconds per pass against data size (log-log), each line named by its growth exponent."""
    series = []
    for fam in COMPARED:
        name = res.models.get(fam)
        rows = [r for r in results.get("sweeps", {}).get("training_vs_size", [])
                if r.get("model") == name]
        pts = [(n, t) for n, t, _ in pass_times(rows)]
        if len(pts) >= 2:
            xs, ys = zip(*pts, strict=True)
            expo = res.figures.get(fam, "").split(";")[0]
            series.append((f"{SHORT[fam]} {expo}".strip(), xs, ys, model_color(name)))
    if len(series) == 2:
        return _lines(series, "interactions N (log-log)", log=True)
    items = [(SHORT[f], v, None, model_color(res.models[f])) for f in COMPARED
             if fmt.is_num(v := _model(results, res.models.get(f)).get("training", {}).get("wall_s"))]
    return _bars(items, fmt.seconds) if len(items) == 2 else None


def serving(res, results):
    """Latency against corpus size at the same recall (the corpus sweep), else each family's
    p50 on the production path as a bar."""
    at = serving_at_recall(results)
    if len(at) >= 2:
        series = [(SHORT[f], list(at), [e[f]["total_us"] for e in at.values()],
                   model_color(SWEEP_NAME[f])) for f in COMPARED]
        rec = min(e["recall"] for e in at.values())
        return _lines(series, f"corpus items, recall@10 ≥ {rec:.2f} (log-log)", fmt.micros, log=True)
    items = []
    for fam in COMPARED:
        v, _ = served_p50(_model(results, res.models.get(fam)).get("serving"))
        if v is not None:
            items.append((SHORT[fam], v, None, model_color(res.models[fam])))
    return _bars(items, fmt.micros) if len(items) == 2 else None


SPARKLINES = {
    "quality": quality,
    "query_features": query_features,
    "cold_users": lambda res, results: _cold(res, results, "users"),
    "cold_items": lambda res, results: _cold(res, results, "items"),
    "folding": folding,
    "training": training,
    "serving": serving,
}


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
