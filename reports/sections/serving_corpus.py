"""Serving against corpus size (``sweeps.serving_vs_corpus``): latency at each index's operating
point, the MF's offline top-k precomputation, the latency plot and the ANN frontier (recall@10
against p50 latency per family, one line per index: the Pareto points of its search-parameter
sweep, ann-benchmarks style). Shown in the Serving section (same ``KEY``), whose claim reads
this sweep at the same recall (:func:`~mfsoftmax.reports.sections.serving.serving_at_recall`).
"""

from __future__ import annotations

import math

from mfsoftmax.reports import fmt
from mfsoftmax.reports.colors import model_color
from mfsoftmax.reports.tables import keyed_table, sweep_table
from mfsoftmax.results.vocabulary import SWEEP_NAME

KEY = "serving"  # a part of the Serving section
TITLE = "Serving"
INTRO = ""
#: panel order and titles (row ``model`` labels of the corpus sweep)
PANELS = ((SWEEP_NAME["mf"], "MF (WALS) embeddings"), (SWEEP_NAME["softmax"], "softmax DNN embeddings"),
            ("random", "random Gaussian vectors (worst case)"))
INDEX_COLORS = {"hnswlib": "#1f77b4", "faiss-hnsw": "#ff7f0e", "faiss-ivf": "#2ca02c",
                "exact": "#444444"}


def _index_color(index: str) -> str:
    for prefix in ("faiss-hnsw", "faiss-ivf", "hnswlib", "exact"):
        if index.startswith(prefix):
            return INDEX_COLORS[prefix]
    return "#9467bd"


def _pareto(points):
    out, best = [], -math.inf
    for p in sorted(points, key=lambda p: (p["p50_us"], -p["recall_vs_exact"])):
        if p["recall_vs_exact"] > best:
            out.append(p)
            best = p["recall_vs_exact"]
    return out


def frontier_lines(results) -> list[dict]:
    """``sweeps.ann_frontier`` when the run wrote it, else the Pareto points derived from the
    ``serving_vs_corpus`` rows (older runs: one point per index and size)."""
    sweeps = results.get("sweeps", {})
    lines = [f for f in sweeps.get("ann_frontier", []) or []
             if f.get("points") and fmt.is_num(f.get("n_items"))]
    if lines:
        return lines
    groups = {}
    for r in sweeps.get("serving_vs_corpus", []) or []:
        if (r.get("index", "exact") == "skipped" or not fmt.is_num(r.get("p50_us"))
                or not fmt.is_num(r.get("recall_vs_exact")) or not fmt.is_num(r.get("n_items"))):
            continue
        key = (r["model"], r.get("vectors", "trained"), r["n_items"], r.get("index", "exact"))
        groups.setdefault(key, []).append(r)
    return [{"model": m, "vectors": v, "n_items": n, "index": i, "points": _pareto(rs),
             "operating_point": None}
            for (m, v, n, i), rs in sorted(groups.items())]


def ann_frontier(results, n_items: int | None = None):
    """Recall@10 against single-query p50 (log) at ``n_items`` (default: the largest size with
    trained vectors), one panel per family (MF, DNN, random), one line per index: solid for the
    library's inner-product metric, dashed for the L2 reduction; the operating point (fastest
    at the target recall) ringed; dotted lines mark the target (recall, p50). None without data."""
    lines = frontier_lines(results)
    if not lines:
        return None
    if n_items is None:
        trained = [f["n_items"] for f in lines if f.get("vectors", "trained") == "trained"]
        n_items = max(trained or [f["n_items"] for f in lines])
    lines = [f for f in lines if f["n_items"] == n_items]
    panels = [(fam, title) for fam, title in PANELS if any(f["model"] == fam for f in lines)]
    panels += [(m, m) for m in sorted({f["model"] for f in lines} - {p for p, _ in panels})]
    if not panels:
        return None
    from mfsoftmax.reports.plots import plt  # lazy: matplotlib (Agg), off the headline

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 0.6, 4.2),
                             squeeze=False, sharey=True)
    target_r = next((f["target_recall"] for f in lines if fmt.is_num(f.get("target_recall"))), None)
    target_p = next((f["target_p50_us"] for f in lines if fmt.is_num(f.get("target_p50_us"))), None)
    for ax, (fam, title) in zip(axes[0], panels, strict=True):
        for f in sorted((f for f in lines if f["model"] == fam), key=lambda f: f["index"]):
            pts = [p for p in f["points"] if fmt.is_num(p.get("p50_us")) and p["p50_us"] > 0
                   and fmt.is_num(p.get("recall_vs_exact"))]
            if not pts:
                continue
            color = _index_color(f["index"])
            l2 = "l2" in str(f.get("mips", "")) or "l2-reduction" in f["index"]
            exact = f["index"] == "exact"
            ax.plot([p["p50_us"] for p in pts], [p["recall_vs_exact"] for p in pts],
                    marker="*" if exact else "o", ms=9 if exact else 4, color=color,
                    ls="--" if l2 else "-", label=f["index"])
            op = f.get("operating_point")
            if op and fmt.is_num(op.get("p50_us")) and not exact:
                ax.plot(op["p50_us"], op["recall_vs_exact"], marker="o", ms=10, mfc="none",
                        mec=color, mew=1.5)
        if fmt.is_num(target_r):
            ax.axhline(target_r, color="#888", ls=":", lw=1)
        if fmt.is_num(target_p):
            ax.axvline(target_p, color="#888", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("p50 per query (µs, log; one thread)")
        ax.set_title(title)
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("recall@10 vs exact")
    fig.suptitle(f"ANN frontier at {fmt.count(n_items)} items (up and left is better)")
    return fig


# ----------------------------------------------------------------------------- tables
def tables(runs, labels) -> list:
    """Latency per corpus size at each index's operating point, then the offline top-k."""
    return [sweep_table(runs, labels, "serving_vs_corpus",
                        "Serving latency vs corpus size (each index at its operating point)",
                        ("model", "vectors", "index", "n_items"),
                        (("p50_us", "p50", fmt.micros), ("p95_us", "p95", fmt.micros),
                         ("recall_vs_exact", "recall vs exact", lambda v: f"{v:.3f}"))),
            offline_topk_table(runs, labels)]


def offline_topk_table(runs, labels):
    """The MF's top-k for every user computed ahead: its wall time and size."""
    per_run = []
    for results in runs:
        o = results.get("offline_topk")
        rows = {}
        if o:
            rows[("all users",)] = {
                "users": fmt.count(o.get("n_users")), "k": fmt.num(o.get("k")),
                "wall": fmt.seconds(o.get("wall_s")),
                "size": f"{fmt.num(o['bytes'] / 2**20)} MiB" if fmt.is_num(o.get("bytes")) else fmt.DASH}
        per_run.append(rows)
    return keyed_table("offline_topk", "Offline top-k precomputation (MF)", ["scope"], per_run, labels)


# ----------------------------------------------------------------------------- plots
def serving_vs_corpus(results):
    """p50 latency against corpus size, log-log; exact solid, ANN dashed with its recall."""
    rows = [r for r in results.get("sweeps", {}).get("serving_vs_corpus", [])
            if fmt.is_num(r.get("p50_us")) and fmt.is_num(r.get("n_items"))
            and r.get("operating_point", True) and r.get("vectors", "trained") != "random"]
    if not rows:
        return None
    from mfsoftmax.reports.plots import figure  # lazy: matplotlib, off the headline

    fig, (ax,) = figure()
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


PLOTS = (
    ("serving_vs_corpus", "Serving latency vs corpus size", serving_vs_corpus),
    ("ann_frontier", "ANN frontier: recall vs latency", ann_frontier),
)
