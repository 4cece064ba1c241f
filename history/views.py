"""What ``mfsoftmax history show`` prints and writes: the steps per figure (text, JSON) and a
self-contained HTML page with one trend plot per figure (PNG inlined as base64)."""

from __future__ import annotations

import base64
import html
import io
import json
from fnmatch import fnmatch

from .changepoints import change_points

UNITS = {"timing": "time x GFLOP/s (normalised)", "quality": "higher is better",
         "leakage": "lower is better"}


def analyse(runs: list[dict], figures: dict, patterns=None) -> list[dict]:
    """One entry per figure: its points and steps, each step naming its first commit."""
    commit = {r["seq"]: r["git_commit"] for r in runs}
    out = []
    for name, s in sorted(figures.items()):
        if patterns and not any(fnmatch(name, p) for p in patterns):
            continue
        steps = [{"commit": commit[s["seq"][st.index]], "seq": s["seq"][st.index],
                  "direction": st.direction, "before": st.before, "after": st.after,
                  "ratio": st.ratio} for st in change_points(s["value"])]
        out.append({"figure": name, "kind": s["kind"], "n": len(s["value"]),
                    "commits": [commit[q] for q in s["seq"]], "value": s["value"],
                    "raw": s["raw"], "steps": steps})
    return out


def format_text(entries: list[dict], runs: list[dict]) -> str:
    """The runs, then one line per step (figures without a step are counted)."""
    lines = [f"{len(runs)} run(s), {len(entries)} figure(s)"]
    if runs:
        lines.append(f"commits: {runs[0]['git_commit'][:10]} .. {runs[-1]['git_commit'][:10]}")
    stepped = [e for e in entries if e["steps"]]
    lines.append(f"{len(stepped)} figure(s) with a step, {len(entries) - len(stepped)} flat")
    for e in stepped:
        for st in e["steps"]:
            lines.append(f"  {e['figure']}: step {st['direction']} x{st['ratio']:.3f} "
                         f"({st['before']:.4g} -> {st['after']:.4g}) first at "
                         f"{st['commit'][:10]}")
    return "\n".join(lines) + "\n"


def format_json(entries: list[dict], runs: list[dict]) -> str:
    return json.dumps({"runs": runs, "figures": entries}, indent=2) + "\n"


def _plot(e: dict) -> str:
    """One figure's trend as a base64 PNG; each step marked at its first commit."""
    import matplotlib  # lazy: only for --html

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: only for --html

    fig, ax = plt.subplots(figsize=(6, 2.2), dpi=72)
    x = list(range(len(e["value"])))
    ax.plot(x, e["value"], marker="o", ms=3, lw=1)
    for st in e["steps"]:
        i = e["commits"].index(st["commit"])
        ax.axvline(i - 0.5, color="tab:red", ls="--", lw=1)
        ax.annotate(f"{st['direction']} x{st['ratio']:.2f} {st['commit'][:7]}", (i - 0.4, 0.92),
                    xycoords=("data", "axes fraction"), fontsize=7, color="tab:red")
    ticks = x if len(x) <= 12 else x[:: max(1, len(x) // 12)]
    ax.set_xticks(ticks, [e["commits"][i][:7] for i in ticks], fontsize=6, rotation=30)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_ylabel(e["kind"], fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def format_html(entries: list[dict], runs: list[dict]) -> str:
    """The page: the steps first, then one plot per figure (figures with a step first)."""
    head = html.escape(format_text(entries, runs))
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>mfsoftmax history"
             "</title><style>body{font-family:sans-serif;margin:1em}figure{display:inline-block;"
             "margin:.3em}figcaption{font-size:.8em}</style></head><body>",
             "<h1>mfsoftmax history</h1>", f"<pre>{head}</pre>"]
    for e in sorted(entries, key=lambda e: (not e["steps"], e["figure"])):
        cap = html.escape(f"{e['figure']} ({UNITS.get(e['kind'], e['kind'])})")
        parts.append(f"<figure><img alt='{cap}' src='data:image/png;base64,{_plot(e)}'>"
                     f"<figcaption>{cap}</figcaption></figure>")
    return "\n".join(parts + ["</body></html>"]) + "\n"
