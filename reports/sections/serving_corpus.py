"""The ANN frontier plot: recall@10 against p50 latency per family, one line per index (the
Pareto points of its search-parameter sweep), ann-benchmarks style."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mfsoftmax.reports import fmt  # noqa: E402

#: panel order and titles (row ``model`` labels of the corpus sweep)
FAMILIES = (("mf", "MF (WALS) embeddings"), ("dnn", "softmax DNN embeddings"),
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
    panels = [(fam, title) for fam, title in FAMILIES if any(f["model"] == fam for f in lines)]
    panels += [(m, m) for m in sorted({f["model"] for f in lines} - {p for p, _ in panels})]
    if not panels:
        return None
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
