"""Overall quality: every model's ranking metrics, its gaps to the best model (paired by user,
over training seeds where the run trained several), the quality plots and the headline's
quality claim (results.json ``models.<name>.quality``, ``quality_se``, ``quality_paired_se``).
"""

from __future__ import annotations

import math

from mfsoftmax.reports import fmt
from mfsoftmax.reports.colors import model_color
from mfsoftmax.reports.judge import (
    SE_MULTIPLIER,
    Claim,
    ClaimResult,
    best_per_family,
    missing,
    paired_se,
    quality_gap,
    verdict_of,
    winner_of,
)
from mfsoftmax.reports.tables import keyed_table
from mfsoftmax.results.vocabulary import COMPARED

KEY = "quality"
TITLE = "Quality"
INTRO = ""
CLAIMS = (
    Claim("quality", "Overall quality", "simpler model, fewer inputs",
          "captures more personalised preferences", "softmax", "best recall@10 (± se)", row=10),
)


# ----------------------------------------------------------------------------- headline
def quality_metric(results: dict) -> str:
    """The metric the claim judges: recall@10, else the smallest recall cut-off recorded."""
    keys = set()
    for model in results.get("models", {}).values():
        keys.update(model.get("quality", {}))
    if "recall@10" in keys:
        return "recall@10"
    recalls = sorted((k for k in keys if k.startswith("recall@")), key=lambda k: int(k.split("@")[1]))
    return recalls[0] if recalls else "recall@10"


def judge(claim: Claim, results: dict) -> ClaimResult:
    """The headline row: the best model of each family at the run's first recall cut-off."""
    metric = quality_metric(results)

    def val(_n, m):
        v = m.get("quality", {}).get(metric)
        return v if fmt.is_num(v) else None

    best, figures, models = best_per_family(
        results, val, max, lambda n, v: f"{v:.4f}" + _se_suffix(results, n, metric))
    if len(best) < 2:
        return missing(claim, figures, models, f"{metric} for both families")
    (mf_n, mf_v), (sm_n, sm_v) = best["mf"], best["softmax"]
    ses = _ses(results, mf_n, sm_n, metric)
    sign, rule = quality_gap(mf_v, sm_v, **ses)
    winner = winner_of(sign)
    # Other cut-offs: does the same family win at every k?
    signs = {}
    recall_keys = sorted({k for k in results["models"][mf_n].get("quality", {})
                          if k.startswith("recall@") and k in results["models"][sm_n].get("quality", {})},
                         key=lambda k: int(k.split("@")[1]))
    for k in recall_keys:
        a, b = results["models"][mf_n]["quality"][k], results["models"][sm_n]["quality"][k]
        if fmt.is_num(a) and fmt.is_num(b):
            signs[k] = quality_gap(a, b, **_ses(results, mf_n, sm_n, k))[0]
    rel = (sm_v - mf_v) / mf_v if mf_v else float("nan")
    se_gap = ses["se_gap"]
    gap = f"gap {sm_v - mf_v:+.4f} ± {se_gap:.4f}, " if fmt.is_num(se_gap) else ""
    base = (f"{sm_n} {sm_v:.4f} vs {mf_n} {mf_v:.4f} ({gap}{fmt.pct(rel)} for softmax; "
            f"threshold {rule})")
    if len({s for s in signs.values()}) > 1:
        label = {"mf": f"{mf_n} ahead", "softmax": f"{sm_n} ahead", "tie": "tie"}
        parts = ", ".join(f"{label[winner_of(s)]} at {k}" for k, s in signs.items())
        return ClaimResult(claim, figures, models, winner, "depends", f"cut-off matters: {parts}")
    verdict, text = verdict_of(claim, winner, base, f"no significant gap: {base}", f"MF ahead: {base}")
    return ClaimResult(claim, figures, models, winner, verdict, text)


def _se_suffix(results, name, metric) -> str:
    se = results["models"][name].get("quality_se", {}).get(metric)
    return f" ± {se:.4f}" if fmt.is_num(se) else ""


def _ses(results, a, b, metric):
    """``quality_gap``'s standard errors for ``metric``: each side's and the paired gap's."""
    models = results["models"]
    return {"se_a": models[a].get("quality_se", {}).get(metric),
            "se_b": models[b].get("quality_se", {}).get(metric),
            "se_gap": paired_se(results, a, b, metric)}


def seed_share(results, a, b, metric) -> float | None:
    """The share of the variance of the gap ``a - b`` at ``metric`` that comes from training
    seeds (runs with ``quality.seeds`` > 1 record it; None otherwise)."""
    for row in results.get("quality_paired_se", []):
        if {row.get("a"), row.get("b")} == {a, b}:
            comp = (row.get("components") or {}).get(metric)
            if comp and fmt.is_num(comp.get("users")) and fmt.is_num(comp.get("seeds")):
                total = comp["users"] ** 2 + comp["seeds"] ** 2
                return comp["seeds"] ** 2 / total if total > 0 else 0.0
    return None


# ----------------------------------------------------------------------------- tables
def tables(runs, labels) -> list:
    """One table per cut-off, then the gaps to the best model."""
    return quality_tables(runs, labels) + [paired_gap_table(runs, labels)]


METRIC_ORDER = ("recall", "ndcg", "precision", "hr", "map", "mrr", "coverage", "popularity")


def _metric_sort(name: str):
    base = name.split("@")[0]
    rank = next((i for i, m in enumerate(METRIC_ORDER) if base.startswith(m)), len(METRIC_ORDER))
    return rank, base


def quality_tables(runs, labels) -> list:
    by_k = {}
    for results in runs:
        for model in results.get("models", {}).values():
            for key in model.get("quality", {}):
                k = key.split("@")[1] if "@" in key else ""
                by_k.setdefault(k, set()).add(key)
    tables = []
    for k in sorted(by_k, key=lambda s: (s == "", int(s) if s.isdigit() else 0)):
        cols = sorted(by_k[k], key=_metric_sort)
        per_run = []
        for results in runs:
            rows = {}
            for name, model in results.get("models", {}).items():
                q, se = model.get("quality", {}), model.get("quality_se", {})
                vals = {c: (q[c], fmt.metric(q[c], se.get(c))) for c in cols if fmt.is_num(q.get(c))}
                if vals:
                    rows[(name, model.get("family", "?"))] = vals
            per_run.append(rows)
        best = {c: max for c in cols if "pop" not in c}
        title = f"Quality @{k}" if k else "Quality (no cut-off)"
        t = keyed_table(f"quality-{k or 'all'}", title, ["model", "family"], per_run, labels,
                        best=best, note="Full ranking over all items; ± one standard error where "
                                        "measured; bold = best of the run.")
        if t:
            tables.append(t)
    return tables


def paired_gap_table(runs, labels, metrics=("recall@10", "recall@20")):
    """Each model's gap to the run's best model at ``metrics``, ± the standard error of the
    per-user differences (paired: same test users), and how many of those it spans."""
    per_run = []
    for results in runs:
        models = results.get("models", {})
        rows = {}
        for m in metrics:
            vals = {n: mod.get("quality", {}).get(m) for n, mod in models.items()}
            vals = {n: v for n, v in vals.items() if fmt.is_num(v)}
            if not vals:
                continue
            best = max(vals, key=vals.get)
            for name, v in vals.items():
                se = paired_se(results, name, best, m)
                if name == best:
                    cell = "best"
                elif fmt.is_num(se) and se > 0:
                    gap = v - vals[best]
                    tag = "tie" if abs(gap) <= SE_MULTIPLIER * se else "behind"
                    share = seed_share(results, name, best, m)
                    seeds = f"; seeds {share:.0%} of var" if share is not None else ""
                    cell = f"{gap:+.4f} ± {se:.4f} ({abs(gap) / se:.1f} se, {tag}{seeds})"
                else:
                    continue
                rows.setdefault((name,), {})[f"{m} vs best"] = cell
        if not any(len(r) and any(c != "best" for c in r.values()) for r in rows.values()):
            rows = {}
        per_run.append(rows)
    return keyed_table("paired-gaps", "Gaps to the best model, paired by user", ["model"], per_run,
                       labels, note=f"Gap to the run's best model at each metric ± the standard "
                                    f"error of the per-user differences (both models ranked for the "
                                    f"same test users, so their errors are correlated and the gap "
                                    f"is measured far more precisely than either value). 'tie' = "
                                    f"within {SE_MULTIPLIER:g} se. Where the run trained several "
                                    f"seeds (quality.seeds) the gap is the mean over seeds and its "
                                    f"error pairs by user and seed ('seeds x% of var': the share "
                                    f"of the gap's variance from retraining); otherwise "
                                    f"training-seed variance is not in these errors.")


# ----------------------------------------------------------------------------- plots
def _quality_key(results) -> str | None:
    keys = {k for m in results.get("models", {}).values() for k in m.get("quality", {})}
    return next((k for k in ("recall@10", "recall@20") if k in keys), None)


def quality_vs_time(results):
    """Quality against training wall time (log x), with the Pareto frontier."""
    key = _quality_key(results)
    pts = [(n, m["training"]["wall_s"], m["quality"][key], m.get("quality_se", {}).get(key))
           for n, m in results.get("models", {}).items()
           if key and fmt.is_num(m.get("training", {}).get("wall_s"))
           and fmt.is_num(m.get("quality", {}).get(key)) and m["training"]["wall_s"] > 0]
    if not pts:
        return None
    from mfsoftmax.reports.plots import figure  # lazy: matplotlib, off the headline

    fig, (ax,) = figure()
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
    curves = {n: m["training"]["curve"] for n, m in results.get("models", {}).items()
              if m.get("training", {}).get("curve")}
    curves = {n: [(p["wall_s"], p["recall@10"]) for p in c
                  if fmt.is_num(p.get("wall_s")) and fmt.is_num(p.get("recall@10"))]
              for n, c in curves.items()}
    curves = {n: sorted(c) for n, c in curves.items() if c}
    if not curves:
        return None
    from mfsoftmax.reports.plots import figure  # lazy: matplotlib, off the headline

    fig, (ax,) = figure()
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


PLOTS = (
    ("quality_vs_time", "Quality vs training time", quality_vs_time),
    ("validation_curves", "Validation curves", validation_curves),
)


# ----------------------------------------------------------------------------- sparkline
def sparkline(res, results):
    """Each family's best model: its recall (± se) as a bar."""
    from mfsoftmax.reports import glance  # lazy: matplotlib, off the headline

    metric = quality_metric(results)
    items = []
    for fam in COMPARED:
        m = glance.entry(results, res.models.get(fam))
        v = m.get("quality", {}).get(metric)
        if fmt.is_num(v):
            items.append((glance.SHORT[fam], v, m.get("quality_se", {}).get(metric),
                          model_color(res.models[fam])))
    return glance.bars(items, lambda v: f"{v:.3f}") if len(items) == 2 else None


SPARKLINES = {"quality": sparkline}
