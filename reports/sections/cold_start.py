"""Cold start: new users and new items, quality against the number of revealed interactions
(``models.<name>.cold_start``, the paired gaps ``cold_<side>_paired_se``, the split-seed sweep
``sweeps.cold_start_seeds`` and the true new items ``cold_items_new``), its plot and the
headline's two cold-start claims.
"""

from __future__ import annotations

from mfsoftmax.reports import fmt
from mfsoftmax.reports.colors import model_color
from mfsoftmax.reports.judge import (
    COLD_MAX_KNOWN,
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

KEY = "cold-start"
TITLE = "Cold start"
INTRO = ""
CLAIMS = (
    Claim("cold_users", "Cold start: new users", "needs heuristics (fold-in, feature averages)",
          "easily handles new queries", "softmax",
          f"mean Recall@10, n_known ≤ {COLD_MAX_KNOWN}", row=40),
    Claim("cold_items", "Cold start: new items", "needs heuristics (feature averages, fold-in)",
          "item tower embeds new items", "softmax",
          f"mean Recall@10 on new items, n_known ≤ {COLD_MAX_KNOWN}", row=50),
)
SIDES = {"cold_users": "users", "cold_items": "items"}


# ----------------------------------------------------------------------------- headline
def judge(claim: Claim, results: dict) -> ClaimResult:
    """The headline row of new users (``cold_users``) or new items (``cold_items``)."""
    return _cold(claim, results, SIDES[claim.key])


def _cold(claim: Claim, results: dict, side: str) -> ClaimResult:
    """Each family's best mean Recall@10 over n_known <= COLD_MAX_KNOWN on ``side``, and
    whether the same family is ahead at every point of the curve (paired by user)."""
    def curve(m):
        pts = {int(p["n_known"]): p["recall@10"] for p in m.get("cold_start", {}).get(side, [])
               if fmt.is_num(p.get("recall@10")) and fmt.is_num(p.get("n_known"))}
        return pts or None

    def val(_n, m):
        pts = curve(m)
        low = [v for k, v in (pts or {}).items() if k <= COLD_MAX_KNOWN]
        return sum(low) / len(low) if low else None

    best, figures, models = best_per_family(results, val, max, lambda n, v: f"{v:.4f}")
    if len(best) < 2:
        return missing(claim, figures, models, f"cold-start {side} curve for both families")
    mf_n, sm_n = models["mf"], models["softmax"]
    a, b = curve(results["models"][mf_n]), curve(results["models"][sm_n])
    # per-point standard errors of the paired (same users) differences, when recorded
    ses = {k: paired_se(results, mf_n, sm_n, "recall@10", f"cold_{side}_paired_se", n_known=k)
           for k in set(a) & set(b)}
    signs = {k: quality_gap(a[k], b[k], se_gap=ses.get(k))[0] for k in sorted(set(a) & set(b))}
    low = [ses.get(k) for k in set(a) & set(b) if k <= COLD_MAX_KNOWN]
    # the mean over points: its standard error is at most the mean of the points' (same users)
    se_mean = sum(low) / len(low) if low and all(fmt.is_num(x) for x in low) else None
    sign, rule = quality_gap(best["mf"][1], best["softmax"][1], se_gap=se_mean)
    winner = winner_of(sign)
    nonzero = {s for s in signs.values() if s}
    note = _true_new_items_note(results, (sm_n, mf_n)) if side == "items" else ""
    if len(nonzero) > 1:
        ahead = {s: [k for k, v in signs.items() if v == s] for s in nonzero}
        return ClaimResult(claim, figures, models, winner, "depends",
                           f"{sm_n} ahead at n_known ∈ {_ks(ahead[-1])}, "
                           f"{mf_n} ahead at n_known ∈ {_ks(ahead[1])}" + note)
    base = f"{sm_n} {best['softmax'][1]:.4f} vs {mf_n} {best['mf'][1]:.4f}"
    if se_mean is not None:
        base += f" (gap {best['softmax'][1] - best['mf'][1]:+.4f} ± {se_mean:.4f} at most)"
    verdict, text = verdict_of(claim, winner, f"{base}; softmax never behind on the curve",
                           f"{base}; within {rule}", f"{base}; MF ahead")
    return ClaimResult(claim, figures, models, winner, verdict, text + note)


def _true_new_items_note(results: dict, names) -> str:
    """``"; N true new items (item table only): ..."`` from ``cold_items_new``, or ""."""
    new = results.get("cold_items_new") or {}
    if not new.get("n_new_items"):
        return ""
    k = new.get("k", 10)
    shares = [f"{n} {fmt.pct(m[f'share@{k}'], signed=False)}" for n in names
              if fmt.is_num((m := (new.get("models") or {}).get(n) or {}).get(f"share@{k}"))]
    return (f"; {new['n_new_items']} true new items (item table only), share of top-{k}: "
            + (", ".join(shares) or fmt.DASH)
            + f" (chance {fmt.pct(new.get('chance_share'), signed=False)})")


def _ks(ks) -> str:
    return "{" + ", ".join(str(k) for k in ks) + "}"


# ----------------------------------------------------------------------------- tables
def tables(runs, labels) -> list:
    """The curves, the gaps to MF paired by user, then new users over split seeds."""
    return cold_tables(runs, labels) + cold_gap_tables(runs, labels) + [cold_seeds_table(runs, labels)]


def cold_tables(runs, labels) -> list:
    out = []
    for side, metric, title in (("users", "recall@10", "Cold start, new users: Recall@10"),
                                ("users", "recall@20", "Cold start, new users: Recall@20"),
                                ("users", "ndcg@10", "Cold start, new users: NDCG@10"),
                                ("items", "recall@10", "Cold start, new items: Recall@10")):
        per_run, ns, protocols = [], set(), set()
        for results in runs:
            rows = {}
            for name, model in results.get("models", {}).items():
                curve = model.get("cold_start", {}).get(side, [])
                protocols.update(p.get("protocol", "reveal-rest") for p in curve)
                pts = {p["n_known"]: (p[metric], p.get(f"{metric}_se"))
                       for p in curve if fmt.is_num(p.get(metric)) and "n_known" in p}
                ns.update(pts)
                if pts:
                    rows[(name,)] = {f"n_known={n}": (v, fmt.metric(v, se)) for n, (v, se) in pts.items()}
            per_run.append(rows)
        cols = [f"n_known={n}" for n in sorted(ns)]
        t = keyed_table(f"cold-{side}-{metric}", title, ["model"], per_run, labels, columns=cols,
                        best={c: max for c in cols},
                        note=_cold_note(side, protocols))
        if t:
            out.append(t)
    return out


def _cold_note(side: str, protocols: set) -> str:
    fixed = (f"Fixed targets: the same held-out {side} and targets at every n_known, n_known of "
             "the fold-in part revealed")
    old = f"Held-out {side} with n_known revealed interactions, the rest ranked (older runs)"
    parts = ([fixed] if "fixed-target" in protocols else []) + \
        ([old] if protocols - {"fixed-target"} else [])
    return "; ".join(parts or [fixed]) + " (± one standard error over users, where recorded)."


def cold_gap_tables(runs, labels, metric="recall@10") -> list:
    """Each model's cold-start ``metric`` minus the MF model's (the first of family ``mf``) at
    every n_known, ± the standard error of the per-user differences (``cold_<side>_paired_se``)."""
    who = {"users": "held-out users", "items": "users of the held-out items"}
    out = []
    for side in ("users", "items"):
        per_run, ns = [], set()
        for results in runs:
            models = results.get("models", {})
            ref = next((n for n, m in models.items() if m.get("family") == "mf"
                        and m.get("cold_start", {}).get(side)), None)
            rows = {}
            if ref is not None:
                base = {p["n_known"]: p.get(metric) for p in models[ref]["cold_start"][side]}
                for name, model in models.items():
                    for p in model.get("cold_start", {}).get(side, []) if name != ref else ():
                        n, v = p.get("n_known"), p.get(metric)
                        if not (fmt.is_num(v) and fmt.is_num(base.get(n))):
                            continue
                        se = paired_se(results, name, ref, metric, f"cold_{side}_paired_se", n_known=n)
                        if fmt.is_num(se):
                            ns.add(n)
                            gap = v - base[n]
                            tag = "" if abs(gap) <= SE_MULTIPLIER * se else " ▲" if gap > 0 else " ▼"
                            rows.setdefault((name, ref), {})[f"n_known={n}"] = f"{gap:+.4f} ± {se:.4f}{tag}"
            per_run.append(rows)
        t = keyed_table(f"cold-{side}-gap", f"Cold start, new {side}: {metric} gap to MF, paired by user",
                        ["model", "vs"], per_run, labels, columns=[f"n_known={n}" for n in sorted(ns)],
                        note=f"This model minus the MF model for the same {who[side]} ± the "
                             f"standard error of the per-user differences; ▲/▼ = ahead/behind by "
                             f"more than {SE_MULTIPLIER:g} of them.")
        if t:
            out.append(t)
    return out


def cold_seeds_table(runs, labels):
    """New users with 0 revealed items over several strong splits: each model's mean Recall@10
    and Recall@20 (± standard error over split seeds) and the splits where its Recall@20 is
    above popularity's (paired by split)."""
    per_run = []
    for results in runs:
        by_model: dict = {}
        for r in results.get("sweeps", {}).get("cold_start_seeds", []):
            if fmt.is_num(r.get("recall@20")):
                by_model.setdefault(r.get("model", "?"), {})[r.get("seed")] = r
        pop = by_model.get("popularity", {})
        rows = {}
        for name, seeds in by_model.items():
            vals = {"split seeds": str(len(seeds))}
            for m in ("recall@10", "recall@20"):
                xs = [r[m] for r in seeds.values() if fmt.is_num(r.get(m))]
                if xs:
                    mean, se = _mean_se(xs)
                    vals[m] = (mean, fmt.metric(mean, se))
            paired = [s for s in seeds if s in pop]
            if name != "popularity" and paired:
                diffs = [seeds[s]["recall@20"] - pop[s]["recall@20"] for s in paired]
                mean, se = _mean_se(diffs)
                vals["recall@20 − popularity"] = (
                    f"{mean:+.4f} ± {se:.4f}" if se is not None else f"{mean:+.4f}")
                vals["recall@20 above popularity"] = f"{sum(d > 0 for d in diffs)} of {len(paired)}"
            rows[(name,)] = vals
        per_run.append(rows)
    return keyed_table("cold-seeds", "Cold start, new users with 0 items, over split seeds", ["model"],
                       per_run, labels, columns=["split seeds", "recall@10", "recall@20",
                                                 "recall@20 − popularity", "recall@20 above popularity"],
                       best={"recall@10": max, "recall@20": max},
                       note="Each split holds out different users; ± one standard error over the "
                            "split seeds. 'recall@20 − popularity' pairs each split with "
                            "popularity's on the same split (mean difference ± its standard "
                            "error over splits), which removes the split-to-split variation both "
                            "share. One split's 0-item comparison is often within noise.")


def _mean_se(xs):
    """Mean and standard error of the mean (None for a single value)."""
    mean = sum(xs) / len(xs)
    se = (sum((x - mean) ** 2 for x in xs) / (len(xs) - 1) / len(xs)) ** 0.5 if len(xs) > 1 else None
    return mean, se


# ----------------------------------------------------------------------------- plot
def plot(results):
    """Recall@10 against n_known for new users and new items."""
    sides = []
    for side in ("users", "items"):
        curves = {}
        for n, m in results.get("models", {}).items():
            pts = sorted((p["n_known"], p["recall@10"]) for p in m.get("cold_start", {}).get(side, [])
                         if fmt.is_num(p.get("n_known")) and fmt.is_num(p.get("recall@10")))
            if pts:
                curves[n] = pts
        if curves:
            sides.append((side, curves))
    if not sides:
        return None
    from mfsoftmax.reports.plots import DOUBLE, SINGLE, figure  # lazy: matplotlib, off the headline

    fig, axes = figure(DOUBLE if len(sides) == 2 else SINGLE, len(sides))
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


PLOTS = (("cold_start", "Cold start", plot),)


# ----------------------------------------------------------------------------- sparkline
def sparkline(res, results):
    """The two families' Recall@10 curves against known interactions, the averaged range
    shaded."""
    from mfsoftmax.reports import glance  # lazy: matplotlib, off the headline

    side = SIDES[res.claim.key]
    series = []
    for fam in COMPARED:
        name = res.models.get(fam)
        pts = sorted((int(p["n_known"]), p["recall@10"])
                     for p in glance.entry(results, name).get("cold_start", {}).get(side, [])
                     if fmt.is_num(p.get("recall@10")) and fmt.is_num(p.get("n_known")))
        if pts:
            xs, ys = zip(*pts, strict=True)
            series.append((glance.SHORT[fam], xs, ys, model_color(name)))
    if len(series) < 2:
        return None
    return glance.lines(series, f"known {side[:-1]} interactions (shaded: ≤ {COLD_MAX_KNOWN})",
                  lambda v: f"{v:.3f}", shade_to=COLD_MAX_KNOWN)


SPARKLINES = {"cold_users": sparkline, "cold_items": sparkline}
