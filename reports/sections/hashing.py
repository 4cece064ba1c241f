"""Hashed embedding tables, the DNN's memory lever: quality and training cost against the
embedding megabytes (``sweeps.hashing``). Shown in the Training cost section (same ``KEY``).
"""

from __future__ import annotations

from mfsoftmax.reports import fmt
from mfsoftmax.reports.tables import sweep_table

KEY = "training"  # a part of the Training cost section
TITLE = "Training cost"
INTRO = ""


def tables(runs, labels) -> list:
    """One row per hashed model, scope and bucket count."""
    return [sweep_table(
        runs, labels, "hashing",
        "Hashed embedding tables (the DNN's memory lever): inputs = history and user "
        "features only, all = the item side too", ("model", "scope", "buckets"),
        (("embedding_mb", "embeddings", lambda v: f"{fmt.num(v)} MB"),
         ("recall@20", "recall@20", fmt.metric), ("ndcg@20", "ndcg@20", fmt.metric),
         ("wall_s", "train", fmt.seconds), ("peak_rss_mb", "peak RSS", lambda v: f"{fmt.num(v)} MB")))]


def plot(results):
    """Test Recall@20 against embedding megabytes, one line per hashing scope from the exact
    tables (the DNN's memory lever and what it costs)."""
    rows = [r for r in results.get("sweeps", {}).get("hashing", [])
            if fmt.is_num(r.get("embedding_mb")) and fmt.is_num(r.get("recall@20"))]
    exact = [r for r in rows if r.get("scope") == "exact"]
    if len(rows) < 2:
        return None
    from matplotlib import ticker  # lazy: matplotlib, off the headline

    from mfsoftmax.reports.plots import figure  # lazy: matplotlib, as above

    fig, (ax,) = figure()
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
    ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("embedding tables (MB, log)")
    ax.set_ylabel("test recall@20")
    ax.set_title(f"Hashing: quality vs embedding memory ({model})")
    ax.legend()
    return fig


PLOTS = (("hashing", "Hashing: quality vs embedding memory", plot),)
