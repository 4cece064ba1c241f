"""The report's plots (matplotlib, Agg). Each builder takes one run's results and returns a Figure,
or None when the run did not measure what the plot needs."""

from __future__ import annotations

import io
import math
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from mfsoftmax.folding import pca2  # noqa: E402
from mfsoftmax.reports import fmt  # noqa: E402
from mfsoftmax.reports.colors import group_color, model_color  # noqa: E402
from mfsoftmax.reports.plot_ann import ann_frontier  # noqa: E402
from mfsoftmax.reports.scale import series as scale_series  # noqa: E402
from mfsoftmax.reports.sections import plots as section_plots  # noqa: E402
from mfsoftmax.reports.verdicts import role_of  # noqa: E402

STYLE = {
    "figure.dpi": 110, "savefig.dpi": 110, "font.size": 9.5, "axes.titlesize": 10.5,
    "axes.titleweight": "bold", "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.25, "legend.fontsize": 8.5, "legend.frameon": False,
    "svg.fonttype": "none", "svg.hashsalt": "mfsoftmax", "figure.constrained_layout.use": True,
}
SINGLE = (7.0, 4.2)
DOUBLE = (11.5, 4.2)


def _fig(size=SINGLE, ncols=1):
    fig, axes = plt.subplots(1, ncols, figsize=size, squeeze=False)
    return fig, list(axes[0])


def _models(results):
    return results.get("models", {})


def _quality_key(results) -> str | None:
    keys = {k for m in _models(results).values() for k in m.get("quality", {})}
    return next((k for k in ("recall@10", "recall@20") if k in keys), None)


def quality_vs_time(results):
    """Quality against training wall time (log x), with the Pareto frontier."""
    key = _quality_key(results)
    pts = [(n, m["training"]["wall_s"], m["quality"][key], m.get("quality_se", {}).get(key))
           for n, m in _models(results).items()
           if key and fmt.is_num(m.get("training", {}).get("wall_s"))
           and fmt.is_num(m.get("quality", {}).get(key)) and m["training"]["wall_s"] > 0]
    if not pts:
        return None
    fig, (ax,) = _fig()
    for name, t, q, se in pts:
        ax.errorbar(t, q, yerr=se if fmt.is_num(se) else None, fmt="o", ms=7, capsize=3,
                    color=model_color(name))
    front, best = [], -math.inf
    for _name, t, q, _ in sorted(pts, key=lambda p: (p[1], -p[2])):
        if q > best:
            front.append((t, q))
            best = q
    if len(front) > 1:
        xs, ys = zip(*front, strict=True)
        ax.step(xs, ys, where="post", color="#999", ls="--", lw=1, zorder=0, label="Pareto frontier")
    ax.set_xscale("log")
    ax.set_xlabel("training wall time (s, log scale)")
    ax.set_ylabel(key)
    ax.set_title(f"Quality vs training time ({key}; upper left is better)")
    ax.margins(x=0.3, y=0.15)
    _label_points(ax, [(n, t, q) for n, t, q, _ in pts])
    if len(front) > 1:
        ax.legend(loc="lower right")
    return fig


def _label_points(ax, pts) -> None:
    """Name each point, nudging labels so they do not overlap (greedy, in pixel space)."""
    fig = ax.figure
    fig.canvas.draw()
    r = 6 * fig.dpi / 72  # marker radius in pixels
    placed = [(px - r, py - r, px + r, py + r)
              for px, py in (ax.transData.transform((x, y)) for _, x, y in pts)]
    offsets = ((7, 4), (7, -12), (-7, 4), (-7, -12), (7, 14), (7, -22), (-7, 14), (-7, -22))
    for name, x, y in sorted(pts, key=lambda p: -p[2]):
        px, py = ax.transData.transform((x, y))
        w, h = 0.6 * 8 * len(name) * fig.dpi / 72, 10 * fig.dpi / 72
        for dx, dy in offsets:
            sx, sy = dx * fig.dpi / 72, dy * fig.dpi / 72
            x0 = px + sx if dx > 0 else px + sx - w
            box = (x0, py + sy, x0 + w, py + sy + h)
            if not any(b[0] < box[2] and box[0] < b[2] and b[1] < box[3] and box[1] < b[3]
                       for b in placed):
                break
        placed.append(box)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=8,
                    ha="left" if dx > 0 else "right", color="#333")


def validation_curves(results):
    """Validation recall@10 against wall time during training, one line per model."""
    curves = {n: m["training"]["curve"] for n, m in _models(results).items()
              if m.get("training", {}).get("curve")}
    curves = {n: [(p["wall_s"], p["recall@10"]) for p in c
                  if fmt.is_num(p.get("wall_s")) and fmt.is_num(p.get("recall@10"))]
              for n, c in curves.items()}
    curves = {n: sorted(c) for n, c in curves.items() if c}
    if not curves:
        return None
    fig, (ax,) = _fig()
    for name, c in curves.items():
        xs, ys = zip(*c, strict=True)
        ax.plot(xs, ys, marker=".", color=model_color(name), label=name)
    times = [x for c in curves.values() for x, _ in c if x > 0]
    if times and max(times) / max(min(times), 1e-9) > 100:
        ax.set_xscale("log")
    ax.set_xlabel("training wall time (s)")
    ax.set_ylabel("validation recall@10")
    ax.set_title("Validation curves")
    ax.legend()
    return fig


def serving_vs_corpus(results):
    """p50 latency against corpus size, log-log; exact solid, ANN dashed with its recall."""
    rows = [r for r in results.get("sweeps", {}).get("serving_vs_corpus", [])
            if fmt.is_num(r.get("p50_us")) and fmt.is_num(r.get("n_items"))
            and r.get("operating_point", True) and r.get("vectors", "trained") != "random"]
    if not rows:
        return None
    fig, (ax,) = _fig()
    lines = {}
    for r in rows:
        lines.setdefault((r["model"], r.get("index", "exact")), []).append(r)
    for (model, index), rs in sorted(lines.items()):
        rs = sorted(rs, key=lambda r: r["n_items"])
        exact = index == "exact"
        ax.plot([r["n_items"] for r in rs], [r["p50_us"] for r in rs], marker="o" if exact else "s",
                ls="-" if exact else "--", color=model_color(model), label=f"{model} · {index}")
        if not exact:
            for r in rs:
                if fmt.is_num(r.get("recall_vs_exact")):
                    ax.annotate(f"r={r['recall_vs_exact']:.2f}", (r["n_items"], r["p50_us"]),
                                textcoords="offset points", xytext=(0, -12), ha="center",
                                fontsize=7, color=model_color(model))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("corpus size (items, log)")
    ax.set_ylabel("p50 latency per query (µs, log)")
    ax.set_title("Serving latency vs corpus size (ANN: r = recall vs exact)")
    ax.legend()
    return fig


def cold_start(results):
    """Recall@10 against n_known for new users and new items."""
    sides = []
    for side in ("users", "items"):
        curves = {}
        for n, m in _models(results).items():
            pts = sorted((p["n_known"], p["recall@10"]) for p in m.get("cold_start", {}).get(side, [])
                         if fmt.is_num(p.get("n_known")) and fmt.is_num(p.get("recall@10")))
            if pts:
                curves[n] = pts
        if curves:
            sides.append((side, curves))
    if not sides:
        return None
    fig, axes = _fig(DOUBLE if len(sides) == 2 else SINGLE, len(sides))
    for ax, (side, curves) in zip(axes, sides, strict=True):
        for name, pts in curves.items():
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, marker="o", ms=4, color=model_color(name), label=name)
        ax.set_xscale("symlog", linthresh=1)
        ticks = sorted({x for pts in curves.values() for x, _ in pts})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_xlabel("n_known (revealed interactions)")
        ax.set_ylabel("Recall@10")
        ax.set_title(f"Cold start: new {side}")
        ax.legend()
    return fig


def folding(results):
    """Leakage@10 and Recall@10 against WALS w0, and per softmax variant."""
    sweeps = results.get("sweeps", {})
    w0 = sorted((r["w0"], r["leakage@10"], r.get("recall@10"), r.get("dim") or 0)
                for r in sweeps.get("folding_vs_w0", [])
                if fmt.is_num(r.get("w0")) and fmt.is_num(r.get("leakage@10")))
    var = [r for r in sweeps.get("folding_vs_variant", []) if fmt.is_num(r.get("leakage@10"))]
    panels = [p for p, ok in (("w0", w0), ("variant", var)) if ok]
    if not panels:
        return None
    fig, axes = _fig(DOUBLE if len(panels) == 2 else SINGLE, len(panels))
    leak_c, rec_c = "#c0392b", "#2c3e50"
    for ax, panel in zip(axes, panels, strict=True):
        if panel == "w0":
            dims = sorted({r[3] for r in w0})
            markers = "osv^D"
            for i, dim in enumerate(dims):  # one line per embedding dimension
                pts = [r for r in w0 if r[3] == dim]
                ax.plot([r[0] for r in pts], [r[1] for r in pts], marker=markers[i % len(markers)],
                        color=leak_c, alpha=1.0 - 0.5 * i / max(1, len(dims)),
                        label=f"d={dim}" if dim else "leakage@10")
            if len(dims) > 1:
                ax.legend(fontsize=7.5, title="WALS dim", title_fontsize=7.5, loc="upper left")
            ax.set_xscale("log")
            ax.set_xlabel("unobserved weight w0 (log)")
            ax.set_title("WALS: folding vs w0")
            ax.set_ylim(0, max(0.05, 1.15 * max(r[1] for r in w0)))
            rec = [(r[0], r[2]) for r in w0 if fmt.is_num(r[2]) and r[3] == dims[-1]]
        else:
            names = [str(r.get("variant", "?")) for r in var]
            labels = [n.removeprefix("softmax-") + (f" d={r['dim']}" if r.get("dim") else "")
                      for n, r in zip(names, var, strict=True)]
            pos = np.arange(len(var))
            colors = [model_color(n if n.startswith("softmax-") else "softmax-" + n) for n in names]
            ax.bar(pos, [r["leakage@10"] for r in var], color=colors, alpha=0.85, width=0.6,
                   label="leakage@10")
            ax.set_xticks(pos, labels, fontsize=7, rotation=40, ha="right", rotation_mode="anchor")
            ax.set_ylim(0, max(0.05, 1.1 * max(r["leakage@10"] for r in var)))
            ax.set_title("Softmax variants: folding")
            rec = [(p, r["recall@10"]) for p, r in zip(pos, var, strict=True) if fmt.is_num(r.get("recall@10"))]
            ax.grid(axis="x", visible=False)
        ax.set_ylabel("leakage@10 (lower is better)", color=leak_c)
        if rec:
            ax2 = ax.twinx()
            ax2.plot(*zip(*rec, strict=True), marker="D", ls=":" if panel == "variant" else "-", color=rec_c,
                     label="Recall@10")
            ax2.set_ylabel("Recall@10", color=rec_c)
            ax2.grid(False)
            ax2.spines["right"].set_visible(True)
    handles = [Line2D([], [], color=leak_c, marker="o", label="leakage@10 (left axis; bars per variant)"),
               Line2D([], [], color=rec_c, marker="D", ls=":", label="Recall@10 (right axis)")]
    fig.legend(handles=handles, loc="outside lower center", ncol=2)
    return fig


def pick_embedding_models(results) -> list:
    """The best MF model, the first DNN trained without negatives and the best DNN with negatives
    that stored embeddings (each by the role its model declared)."""
    models = {n: m for n, m in _models(results).items() if m.get("embeddings", {}).get("query")}

    def score(n):
        v = models[n].get("quality", {}).get("recall@10")
        return v if fmt.is_num(v) else -1.0

    mf = sorted((n for n in models if role_of(n, results) == "mf"), key=score, reverse=True)
    pos = [n for n in models if role_of(n, results) == "no-negatives"]
    neg = sorted((n for n in models if role_of(n, results) == "negatives"), key=score, reverse=True)
    return mf[:1] + pos[:1] + neg[:1]


def embeddings_pca(results):
    """2-D PCA of query and item embeddings, coloured by planted group.

    Results store the suite's projection (``"projection": "pca-2d"``), drawn as it is; older
    files hold the raw d-dim sample, projected here."""
    names = pick_embedding_models(results)
    if not names:
        return None
    fig, axes = _fig((4.0 * len(names) + 0.5, 4.0), len(names))
    groups_seen = set()
    for ax, name in zip(axes, names, strict=True):
        e = _models(results)[name]["embeddings"]
        q, it = np.asarray(e["query"], float), np.asarray(e.get("item") or [], float)
        both = np.vstack([q, it]) if it.size else q
        xy = both if e.get("projection") == "pca-2d" else pca2(both)[0]
        qg = e.get("query_group") or [0] * len(q)
        ig = e.get("item_group") or [0] * len(it)
        groups_seen.update(qg)
        groups_seen.update(ig)
        ax.scatter(xy[: len(q), 0], xy[: len(q), 1], c=[group_color(g) for g in qg], s=14,
                   marker="o", alpha=0.75, linewidths=0)
        if it.size:
            ax.scatter(xy[len(q):, 0], xy[len(q):, 1], c=[group_color(g) for g in ig], s=26,
                       marker="^", alpha=0.9, edgecolors="k", linewidths=0.3)
        ax.set_title(name, color=model_color(name))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    handles = [Line2D([], [], ls="", marker="o", color="#555", label="query"),
               Line2D([], [], ls="", marker="^", color="#555", label="item")]
    handles += [Line2D([], [], ls="", marker="s", color=group_color(g), label=f"group {g}")
                for g in sorted(groups_seen)[:10]]
    axes[-1].legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle("Embeddings, 2-D PCA (colour = planted group; overlap = folding)",
                 fontweight="bold", fontsize=10.5)
    return fig


ENGINE_MARKERS = {"implicit": "o", "spark": "s", "torch": "^"}  # training_vs_size


def training_vs_size(results):
    """Seconds of one pass against data size, log-log, one line per model with its fitted growth
    exponent; marker by engine, dashed when it ran on several workers."""
    lines = scale_series(results)
    if not lines:
        return None
    fig, (ax,) = _fig()
    for name, engine, workers, xs, ys, b in lines:
        how = [engine] if engine else []
        if fmt.is_num(workers) and workers > 1:
            how.append(f"{workers} workers")
        if b is not None:
            how.append(f"t ∝ $N^{{{b:.2f}}}$")
        label = f"{name} ({'; '.join(how)})" if how else name
        ax.plot(xs, ys, marker=ENGINE_MARKERS.get(engine, "D" if engine else "o"),
                ls="--" if fmt.is_num(workers) and workers > 1 else "-",
                color=model_color(name), label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("interactions N (log)")
    ax.set_ylabel("seconds per pass (log)")
    ax.set_title("Training cost vs data size (one pass)")
    ax.legend()
    return fig


def hashing(results):
    """Test Recall@20 against embedding megabytes, one line per hashing scope from the exact
    tables (the DNN's memory lever and what it costs)."""
    rows = [r for r in results.get("sweeps", {}).get("hashing", [])
            if fmt.is_num(r.get("embedding_mb")) and fmt.is_num(r.get("recall@20"))]
    exact = [r for r in rows if r.get("scope") == "exact"]
    if len(rows) < 2:
        return None
    fig, (ax,) = _fig()
    styles = {"inputs": ("#2ca02c", "hashed inputs (history, user features)"),
              "all": ("#d62728", "hashed inputs and item side")}
    for scope, (color, label) in styles.items():
        pts = sorted((r["embedding_mb"], r["recall@20"]) for r in rows  # rows hold the exact point
                     if r.get("scope") in (scope, "exact"))
        if any(r.get("scope") == scope for r in rows):
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, marker="o", color=color, label=label)
    for r in exact:
        ax.annotate("exact", (r["embedding_mb"], r["recall@20"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    model = rows[0].get("model", "softmax")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("embedding tables (MB, log)")
    ax.set_ylabel("test recall@20")
    ax.set_title(f"Hashing: quality vs embedding memory ({model})")
    ax.legend()
    return fig


PLOTS = (
    ("quality_vs_time", "Quality vs training time", quality_vs_time),
    ("validation_curves", "Validation curves", validation_curves),
    ("serving_vs_corpus", "Serving latency vs corpus size", serving_vs_corpus),
    ("ann_frontier", "ANN frontier: recall vs latency", ann_frontier),
    ("cold_start", "Cold start", cold_start),
    ("folding", "Folding", folding),
    ("embeddings_pca", "Embeddings (PCA)", embeddings_pca),
    ("training_vs_size", "Training cost vs data size (one pass)", training_vs_size),
    ("hashing", "Hashing: quality vs embedding memory", hashing),
)


def render(results, title_suffix: str = "") -> list:
    """[(key, title, png bytes, svg text)] for every plot this run has data for."""
    out = []
    with plt.rc_context(STYLE):
        for key, title, build in (*PLOTS, *section_plots()):  # and each section's own
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
