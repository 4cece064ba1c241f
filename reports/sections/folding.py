"""Folding: spurious recommendations across groups that never interact (results.json
``models.<name>.folding``, ``sweeps.folding_vs_w0``, ``folding_vs_variant``,
``folding_regimes``), its tables and plots (leakage against WALS's w0 and per softmax variant,
the embeddings' PCA) and the headline's folding claim.
"""

from __future__ import annotations

from mfsoftmax.reports import fmt
from mfsoftmax.reports.colors import group_color, model_color
from mfsoftmax.reports.judge import (
    LEAKAGE_ABS_TOL,
    Claim,
    ClaimResult,
    best_per_family,
    missing,
    quality_gap,
    verdict_of,
    winner_of,
)
from mfsoftmax.reports.tables import keyed_table
from mfsoftmax.results.vocabulary import COMPARED, role_of

KEY = "folding"
TITLE = "Folding"
INTRO = ""
CLAIMS = (
    Claim("folding", "Folding", "easily reduced by the unobserved weight w0",
          "prone to folding; needs negative sampling or gravity", "mf",
          "lowest leakage@10 (lower is better)", row=60),
)


# ----------------------------------------------------------------------------- headline
def w0_effect(points, tol: float = 0.02) -> str:
    """What raising w0 does to leakage along ``points`` [(w0, leakage)]: ``helps``, ``hurts``,
    ``helps up to w0 = x, then hurts``, or ``no effect`` (every change within ``tol``)."""
    pts = sorted((float(w), float(v)) for w, v in points)
    if len(pts) < 2:
        return fmt.DASH
    leaks = [v for _, v in pts]
    lo = min(range(len(pts)), key=lambda i: leaks[i])
    if max(leaks) - leaks[lo] <= tol:
        return "no effect"
    down = leaks[0] - leaks[lo] > tol  # falls from the smallest w0 to the minimum
    up = leaks[-1] - leaks[lo] > tol   # rises from the minimum to the largest w0
    if down and up:
        return f"helps up to w0 = {pts[lo][0]:g}, then hurts"
    return "helps" if down else "hurts"


def regime_summary(results: dict) -> str | None:
    """One clause per (groups, dim) regime of ``sweeps.folding_regimes``: what raising w0 does."""
    groups = {}
    for r in results.get("sweeps", {}).get("folding_regimes", []):
        if fmt.is_num(r.get("leakage@10")):
            groups.setdefault((r["n_groups"], r["dim"]), []).append((r["w0"], r["leakage@10"]))
    if not groups:
        return None
    parts = [f"{g} groups / d {d}: {w0_effect(pts)}"
             for (g, d), pts in sorted(groups.items(), key=lambda kv: kv[0][0] / kv[0][1])]
    return "raising w0 (by regime, groups per dimension rising): " + "; ".join(parts)


def judge(claim: Claim, results: dict) -> ClaimResult:
    """The headline row: each family's lowest leakage@10, a DNN trained without negatives
    beside them, and what raising w0 does in each (groups, dim) regime."""
    def val(_n, m):
        v = m.get("folding", {}).get("leakage@10")
        return v if fmt.is_num(v) else None

    best, figures, models = best_per_family(results, val, min, lambda n, v: f"{v:.4f}")
    if len(best) < 2:
        return missing(claim, figures, models, "leakage@10 for both families")
    (mf_n, mf_v), (sm_n, sm_v) = best["mf"], best["softmax"]
    sign, rule = quality_gap(sm_v, mf_v, abs_tol=LEAKAGE_ABS_TOL)  # higher leakage loses
    winner = winner_of(sign)
    base = f"{mf_n} {mf_v:.4f} vs {sm_n} {sm_v:.4f} (threshold {rule})"
    pos = [(n, m["folding"]["leakage@10"]) for n, m in results["models"].items()
           if role_of(n, results) == "no-negatives" and val(n, m) is not None]
    if winner != "mf" and pos and quality_gap(pos[0][1], mf_v, abs_tol=LEAKAGE_ABS_TOL)[0] > 0:
        text = (f"softmax folds without negatives ({pos[0][0]} {pos[0][1]:.4f}) but "
                f"{sm_n} reaches {sm_v:.4f} vs {mf_n} {mf_v:.4f}")
        regimes = regime_summary(results)
        return ClaimResult(claim, figures, models, winner, "depends",
                           f"{text}; {regimes}" if regimes else text)
    verdict, text = verdict_of(claim, winner, f"MF leaks less: {base}",
                           f"no significant gap: {base}", f"softmax leaks less: {base}")
    regimes = regime_summary(results)
    if regimes:
        text = f"{text}; {regimes}"
    return ClaimResult(claim, figures, models, winner, verdict, text)


# ----------------------------------------------------------------------------- tables
def tables(runs, labels) -> list:
    """Leakage per model, against w0 and per softmax variant, then by regime."""
    out = []
    per_run = []
    for results in runs:
        rows = {}
        for name, model in results.get("models", {}).items():
            f = model.get("folding", {})
            vals = {c: (f[c], f"{f[c]:.4f}") for c in ("leakage@10", "users_with_leak", "xin_score")
                    if fmt.is_num(f.get(c))}
            if vals:
                if f.get("probe"):
                    vals["probe"] = str(f["probe"])
                rows[(name,)] = vals
        per_run.append(rows)
    lower = {"leakage@10": min, "users_with_leak": min, "xin_score": min}
    t = keyed_table("folding", "Folding per model", ["model"], per_run, labels,
                    columns=["probe", "leakage@10", "users_with_leak", "xin_score"], best=lower,
                    note="leakage@10 = share of top-10 from other groups/blocks (lower is better).")
    out.append(t)
    for key, title, kcols in (("folding_vs_w0", "Folding vs WALS unobserved weight w0", ["dim", "w0"]),
                              ("folding_vs_variant", "Folding per softmax variant", ["variant", "dim"])):
        per_run = []
        for results in runs:
            rows = {}
            for r in results.get("sweeps", {}).get(key, []):
                vals = {c: (r[c], f"{r[c]:.4f}") for c in
                        ("leakage@10", "users_with_leak", "xin_score", "recall@10") if fmt.is_num(r.get(c))}
                rows[tuple(f"{r[c]:g}" if fmt.is_num(r.get(c)) else str(r.get(c, fmt.DASH))
                           for c in kcols)] = vals
            per_run.append(rows)
        out.append(keyed_table(key, title, kcols, per_run, labels,
                               best={"leakage@10": min, "recall@10": max}))
    out.append(folding_regime_table(runs, labels))
    return [t for t in out if t]


def folding_regime_table(runs, labels):
    """WALS's leakage@10 against w0 per (groups, dim) regime (``sweeps.folding_regimes``), and
    what raising w0 does there."""
    per_run, w0s = [], set()
    for results in runs:
        rows = {}
        groups = {}
        for r in results.get("sweeps", {}).get("folding_regimes", []):
            if fmt.is_num(r.get("leakage@10")):
                groups.setdefault((r["model"], r["n_groups"], r["dim"]), []).append(r)
        for (model, g, d), rs in sorted(groups.items(), key=lambda kv: (kv[0][1] / kv[0][2], kv[0])):
            vals = {f"w0={r['w0']:g}": (r["leakage@10"], f"{r['leakage@10']:.3f}") for r in rs}
            w0s.update(vals)
            vals["raising w0"] = w0_effect([(r["w0"], r["leakage@10"]) for r in rs])
            rows[(model, str(g), str(d), f"{g / d:.1f}")] = vals
        per_run.append(rows)
    if not any(per_run):
        return None
    cols = sorted(w0s, key=lambda c: float(c.split("=")[1])) + ["raising w0"]
    return keyed_table("folding-regimes", "Folding regimes: WALS leakage@10 against w0",
                       ["model", "groups", "dim", "groups/dim"], per_run, labels, columns=cols,
                       note="Planted-groups probes regenerated with each number of groups; rows "
                            "ordered by groups per dimension. 'raising w0' reads the curve: "
                            "changes within 0.02 leakage are 'no effect'. w0 = 0 fits observed "
                            "entries only (the direct solver).")


# ----------------------------------------------------------------------------- plots
def plot(results):
    """Leakage@10 and Recall@10 against WALS w0, and per softmax variant."""
    sweeps = results.get("sweeps", {})
    w0 = sorted((r["w0"], r["leakage@10"], r.get("recall@10"), r.get("dim") or 0)
                for r in sweeps.get("folding_vs_w0", [])
                if fmt.is_num(r.get("w0")) and fmt.is_num(r.get("leakage@10")))
    var = [r for r in sweeps.get("folding_vs_variant", []) if fmt.is_num(r.get("leakage@10"))]
    panels = [p for p, ok in (("w0", w0), ("variant", var)) if ok]
    if not panels:
        return None
    import numpy as np  # lazy: with matplotlib, off the headline
    from matplotlib.lines import Line2D  # lazy: matplotlib, off the headline

    from mfsoftmax.reports.plots import DOUBLE, SINGLE, figure  # lazy: matplotlib, as above

    fig, axes = figure(DOUBLE if len(panels) == 2 else SINGLE, len(panels))
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
    models = {n: m for n, m in results.get("models", {}).items() if m.get("embeddings", {}).get("query")}

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
    import numpy as np  # lazy: with matplotlib, off the headline
    from matplotlib.lines import Line2D  # lazy: matplotlib, off the headline

    from mfsoftmax.folding import pca2  # lazy: numpy, off the headline
    from mfsoftmax.reports.plots import figure  # lazy: matplotlib, as above

    fig, axes = figure((4.0 * len(names) + 0.5, 4.0), len(names))
    groups_seen = set()
    for ax, name in zip(axes, names, strict=True):
        e = results.get("models", {})[name]["embeddings"]
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


PLOTS = (
    ("folding", "Folding", plot),
    ("embeddings_pca", "Embeddings (PCA)", embeddings_pca),
)


# ----------------------------------------------------------------------------- sparkline
def sparkline(res, results):
    """Leakage@10 of each family's best model, and of a DNN trained without negatives."""
    from mfsoftmax.reports import glance  # lazy: matplotlib, off the headline

    items = []
    for fam in COMPARED:
        v = glance.entry(results, res.models.get(fam)).get("folding", {}).get("leakage@10")
        if fmt.is_num(v):
            items.append((glance.SHORT[fam], v, None, model_color(res.models[fam])))
    pos = [(n, m["folding"]["leakage@10"]) for n, m in results.get("models", {}).items()
           if role_of(n, results) == "no-negatives"
           and fmt.is_num(m.get("folding", {}).get("leakage@10"))]
    if pos:
        items.append(("DNN no neg.", pos[0][1], None, model_color(pos[0][0])))
    return glance.bars(items, lambda v: f"{v:.3f}") if len(items) >= 2 else None


SPARKLINES = {"folding": sparkline}
