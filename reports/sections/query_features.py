"""Query features: the ablation of user (and item) features, with and without history
(results.json ``ablation``, its paired lifts ``lift_se`` and ``item_lift_se``), and the
headline's query-features claim.
"""

from __future__ import annotations

from mfsoftmax.reports import fmt
from mfsoftmax.reports.colors import model_color
from mfsoftmax.reports.judge import Claim, ClaimResult, missing, quality_gap, verdict_of
from mfsoftmax.reports.tables import keyed_table
from mfsoftmax.results.schema import feature_pairs
from mfsoftmax.results.vocabulary import COMPARED, family_of

KEY = "features"
TITLE = "Query features"
INTRO = ""
CLAIMS = (
    Claim("query_features", "Query features", "not easy to include",
          "can be included", "softmax",
          "largest lift from user features (ablation): recall@20, or recall@20 of new users with no history",
          row=30),
)
PLOTS = ()


# ----------------------------------------------------------------------------- headline
def judge(claim: Claim, results: dict) -> ClaimResult:
    """The headline row: the largest significant lift from user features per family (warm
    recall@20, or recall@20 of new users with no history), paired by user."""
    rows = [r for r in results.get("ablation", []) if fmt.is_num(r.get("recall@20"))]
    if not rows:
        return missing(claim, {}, {}, "no feature ablation in this run")
    lifts = {}  # family -> list of (rel lift, significant sign, model, history, ...)
    for on, off in ((rows[i], rows[j]) for i, j in feature_pairs(rows)):
        # warm quality, and new users with no history (where features matter most)
        for metric in ("recall@20", "cold_recall@20"):
            if not (fmt.is_num(on.get(metric)) and fmt.is_num(off.get(metric))):
                continue
            a, b = on[metric], off[metric]
            se = (on.get("lift_se") or {}).get(metric)  # paired over the same users
            sign, rule = quality_gap(a, b, se_gap=se)
            rel = (a - b) / b if b else float("inf") if a > b else 0.0
            lifts.setdefault(family_of(on["model"], results), []).append(
                (rel, sign, on["model"], bool(on.get("history")), metric,
                 f"{a - b:+.4f} ± {se:.4f}, " if fmt.is_num(se) else "", rule))
    figures, models, best = {}, {}, {}
    for fam in COMPARED:
        fam_rows = [r for r in rows if family_of(r["model"], results) == fam]
        if fam in lifts:
            best[fam] = max(lifts[fam])
            figures[fam] = f"{fmt.pct(best[fam][0])} {best[fam][4]}"
            models[fam] = best[fam][2]
        elif fam_rows:
            figures[fam] = "no feature input"
    if "softmax" not in best:
        return missing(claim, figures, models, "no softmax row with and without user features"
                        + _item_feature_note(rows))
    sm_sig = best["softmax"][1] > 0
    mf_sig = "mf" in best and best["mf"][1] > 0
    if sm_sig and (not mf_sig or best["softmax"][0] > best["mf"][0]):
        winner = "softmax"
    elif mf_sig:
        winner = "mf"
    else:
        winner = "tie"
    sm = lifts["softmax"]
    items = _item_feature_note(rows)
    by_hist = {h: max((r for r in sm if r[3] == h), default=None) for h in (True, False)}
    if winner == "softmax" and all(by_hist.values()) and len({by_hist[h][1] > 0 for h in by_hist}) > 1:
        helps = "without" if by_hist[False][1] > 0 else "with"
        return ClaimResult(claim, figures, models, winner, "depends",
                           f"user features help softmax only {helps} history "
                           f"({fmt.pct(by_hist[False][0])} without, {fmt.pct(by_hist[True][0])} with)"
                           + items)
    rel, _, name, _, metric, gap, rule = best["softmax"]
    text = f"user features move softmax {metric} by {gap}{fmt.pct(rel)}"
    verdict, line = verdict_of(claim, winner, text + f" ({name})",
                           text + f" (not beyond {rule})", text + "; MF gains more")
    return ClaimResult(claim, figures, models, winner, verdict, line + items)


def _item_feature_note(rows: list) -> str:
    """``"; item features move recall@20 by ..."`` from the ablation's item-feature pair, or
    ``"; item features not measured"``."""
    pairs = feature_pairs(rows, "item_features")
    if not pairs:
        return "; item features not measured"
    on, off = rows[pairs[0][0]], rows[pairs[0][1]]
    se = (on.get("item_lift_se") or {}).get("recall@20")
    gap = on["recall@20"] - off["recall@20"]
    rel = gap / off["recall@20"] if off["recall@20"] else 0.0
    return (f"; item features move {on['model']} recall@20 by {gap:+.4f}"
            + (f" ± {se:.4f}" if fmt.is_num(se) else "") + f", {fmt.pct(rel)}")


# ----------------------------------------------------------------------------- table
def tables(runs, labels) -> list:
    """The ablation, one row per model and feature setting."""
    return [ablation_table(runs, labels)]


def ablation_table(runs, labels):
    per_run = []
    for results in runs:
        rows = {}
        abl = results.get("ablation", [])
        keys = [(r.get("model", "?") + (" +item features" if r.get("item_features") else ""),
                 "yes" if r.get("history") else "no",
                 "yes" if r.get("user_features") else "no") for r in abl]
        for k, r in zip(keys, abl, strict=True):
            rows[k] = {c: (r[c], f"{r[c]:.4f}") for c in ("recall@20", "ndcg@20", "cold_recall@20")
                       if fmt.is_num(r.get(c))}
        pairs = [(i, j, "lift_se") for i, j in feature_pairs(abl)] + [
            (i, j, "item_lift_se") for i, j in feature_pairs(abl, "item_features")]
        for i, j, key in pairs:
            on, off = abl[i], abl[j]
            for c, se in (on.get(key) or {}).items():
                if c in ("recall@20", "cold_recall@20") and fmt.is_num(se) \
                        and fmt.is_num(on.get(c)) and fmt.is_num(off.get(c)):
                    rows[keys[i]][f"features' lift, {c}"] = f"{on[c] - off[c]:+.4f} ± {se:.4f}"
        per_run.append(rows)
    return keyed_table("ablation", "Query-feature ablation", ["model", "history", "user features"],
                       per_run, labels, best={"recall@20": max, "cold_recall@20": max},
                       columns=["recall@20", "ndcg@20", "cold_recall@20", "features' lift, recall@20",
                                "features' lift, cold_recall@20"],
                       note="cold_recall@20: users with no known history (n_known = 0). Features' "
                            "lift: this row minus the same model without user features (a "
                            "+item features row: without item features), ± the "
                            "standard error of the per-user differences (same users, paired).")


# ----------------------------------------------------------------------------- sparkline
def sparkline(res, results):
    """The feature lift of each family's model: its figure without and with user features."""
    from mfsoftmax.reports import glance  # lazy: matplotlib, off the headline

    rows = results.get("ablation", [])
    items = []
    for fam in COMPARED:
        name = res.models.get(fam)
        metric = "cold_recall@20" if "cold_recall@20" in res.figures.get(fam, "") else "recall@20"
        for i, j in feature_pairs(rows):
            on, off = rows[i], rows[j]
            if on.get("model") == name and fmt.is_num(on.get(metric)) and fmt.is_num(off.get(metric)):
                color = model_color(name)
                items += [(f"{glance.SHORT[fam]} −f", off[metric], None, "#c9ced8"),
                          (f"{glance.SHORT[fam]} +f", on[metric], (on.get("lift_se") or {}).get(metric),
                           color)]
                break
    return glance.bars(items, lambda v: f"{v:.3f}") if items else None


SPARKLINES = {"query_features": sparkline}
