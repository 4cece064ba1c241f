"""The headline: the textbook's MF-vs-softmax table, each claim judged from measured numbers.

No verdict is written by hand: each follows from the figures and the thresholds below, which the
report prints next to the table.
"""

from __future__ import annotations

import importlib
import math
import warnings
from dataclasses import dataclass

from mfsoftmax.reports import fmt
from mfsoftmax.reports.shorten import shorten
from mfsoftmax.results.schema import feature_pairs

SE_MULTIPLIER = 2.0     # a quality gap is a win if > 2 se of the gap (paired when recorded)
REL_TOL = 0.05          # quality gap without standard errors: a win if > 5% of the larger value
LEAKAGE_ABS_TOL = 0.01  # leakage gaps below 0.01 (one leaked slot in a hundred) are ties
COST_RATIO = 1.25       # time, latency: a win only if the other side is at least 1.25x slower
EXPONENT_TOL = 0.10     # growth exponents t ~ N^b closer than 0.10 are ties
COLD_MAX_KNOWN = 5      # cold-start figure: mean Recall@10 over n_known <= 5
SERVING_RECALL = 0.95   # serving at each corpus size: each family's fastest point at this recall
SHORT_CHARS = 200       # a headline cell: its verdict and short text (the full text folds below)

THRESHOLDS = {
    "SE_MULTIPLIER": (SE_MULTIPLIER, "a quality gap is a win only if it exceeds this many standard "
                                     "errors of the gap: of the per-user differences (paired) when "
                                     "the run recorded them, else combined from both sides' own"),
    "REL_TOL": (REL_TOL, "without standard errors, a quality gap must exceed this share of the "
                         "larger value"),
    "LEAKAGE_ABS_TOL": (LEAKAGE_ABS_TOL, "leakage@10 gaps below this are ties"),
    "COST_RATIO": (COST_RATIO, "a time or latency is a win only if the other side is this many "
                               "times slower"),
    "EXPONENT_TOL": (EXPONENT_TOL, "growth exponents (t ∝ N^b) closer than this are ties"),
    "COLD_MAX_KNOWN": (COLD_MAX_KNOWN, "cold-start figure = mean Recall@10 over n_known ≤ this"),
    "SERVING_RECALL": (SERVING_RECALL, "serving vs corpus size: each family at its fastest point "
                                       "(exact or an ANN index) with recall@10 vs exact ≥ this "
                                       "(or the best recall both reach), plus its query embedding"),
}

FAMILIES = ("mf", "softmax")
FAMILY_LABEL = {"mf": "MF (WALS)", "softmax": "Softmax DNN"}
OTHER = {"mf": "softmax", "softmax": "mf"}


@dataclass(frozen=True)
class Claim:
    key: str
    title: str
    textbook_mf: str
    textbook_softmax: str
    expected: str  # the family the textbook expects to come out ahead
    figure: str    # what the measured figure is


CLAIMS = (
    Claim("quality", "Overall quality", "simpler model, fewer inputs",
          "captures more personalised preferences", "softmax", "best recall@10 (± se)"),
    Claim("strata", "Which family for whom", "simpler model, fewer inputs",
          "captures more personalised preferences", "softmax",
          "each family's best per stratum: users by history length, target items by "
          "popularity (first of strata.metrics)"),
    Claim("query_features", "Query features", "not easy to include",
          "can be included", "softmax",
          "largest lift from user features (ablation): recall@20, or recall@20 of new users with no history"),
    Claim("cold_users", "Cold start: new users", "needs heuristics (fold-in, feature averages)",
          "easily handles new queries", "softmax",
          f"mean Recall@10, n_known ≤ {COLD_MAX_KNOWN}"),
    Claim("cold_items", "Cold start: new items", "needs heuristics (feature averages, fold-in)",
          "item tower embeds new items", "softmax",
          f"mean Recall@10 on new items, n_known ≤ {COLD_MAX_KNOWN}"),
    Claim("folding", "Folding", "easily reduced by the unobserved weight w0",
          "prone to folding; needs negative sampling or gravity", "mf",
          "lowest leakage@10 (lower is better)"),
    Claim("training", "Training scalability", "scales to huge sparse corpora",
          "harder to scale; needs sampling/hashing", "mf",
          "growth exponent of training time, time at the largest size"),
    Claim("serving", "Serving scalability", "U, V static; candidates precomputable",
          "query embedding computed at request time", "mf",
          "p50 latency per query on the production path (lean single-query path, the DNN's "
          "tower through its fastest correct runtime)"),
)


@dataclass
class ClaimResult:
    claim: Claim
    figures: dict          # family -> display string (absent family: not measured)
    models: dict           # family -> model name behind the figure
    winner: str | None     # "mf", "softmax", "tie", or None when not measured
    verdict: str           # "confirmed", "not confirmed", "depends", "not measured"
    text: str              # one line, generated from the numbers
    summary: str | None = None  # optional short text a claim may set; else shortened from text

    @property
    def line(self) -> str:
        return self.text if self.verdict == "not measured" else f"{self.verdict}: {self.text}"

    @property
    def short(self) -> str:
        """``line`` within SHORT_CHARS: the headline cell (the full ``line`` goes below it)."""
        return self.short_line(SHORT_CHARS)

    def short_line(self, width: int) -> str:
        """``line`` within ``width`` characters: the verdict word, then ``summary`` or the
        :func:`~mfsoftmax.reports.shorten.shorten` form of ``text``."""
        head = "" if self.verdict == "not measured" else f"{self.verdict}: "
        return head + shorten(self.summary or self.text, width - len(head))


# ----------------------------------------------------------------------------- comparisons
# The rows of serving_vs_corpus are labelled by family, not by a configured model.
SWEEP_FAMILIES = {"mf": "mf", "dnn": "softmax"}


def family_of(name: str, results: dict) -> str:
    """The family of model ``name`` as results.json records it (every model's ``family``; the
    corpus sweep's ``mf``/``dnn`` rows), else ``baseline``."""
    fam = results.get("models", {}).get(name, {}).get("family")
    return fam or SWEEP_FAMILIES.get(name, "baseline")


def role_of(name: str, results: dict) -> str | None:
    """What model ``name``'s embeddings illustrate (``mf``, ``no-negatives``, ``negatives``), as
    the model declared it (``models.<name>.embedding_role``). Files written before that key
    existed fall back to the loss the model recorded in its params."""
    m = results.get("models", {}).get(name, {})
    if "embedding_role" in m:
        return m["embedding_role"]
    if m.get("embeddings", {}).get("role"):
        return m["embeddings"]["role"]
    fam = m.get("family")
    if fam == "mf":
        return "mf"
    if fam == "softmax":
        loss = (m.get("params") or {}).get("loss")
        if loss is None:
            return "no-negatives" if "positives-only" in name else "negatives"
        return "no-negatives" if loss == "positives-only" else "negatives"
    return None


def quality_gap(a, b, se_a=None, se_b=None, abs_tol=0.0, se_gap=None) -> tuple[int, str]:
    """+1 if ``a`` beats ``b`` (higher is better), -1 if ``b`` wins, 0 for a tie; and the rule.

    ``se_gap``, the standard error of the per-user difference (paired: both evaluated on the same
    users), takes precedence over ``hypot(se_a, se_b)``, which ignores that correlation.
    """
    if fmt.is_num(se_gap):
        thr, rule = SE_MULTIPLIER * se_gap, f"{SE_MULTIPLIER:g} paired se"
    elif fmt.is_num(se_a) and fmt.is_num(se_b):
        thr, rule = SE_MULTIPLIER * math.hypot(se_a, se_b), f"{SE_MULTIPLIER:g} se"
    else:
        thr, rule = REL_TOL * max(abs(a), abs(b)), f"{REL_TOL:.0%}"
    if abs_tol > thr:
        thr, rule = abs_tol, f"{abs_tol:g}"
    gap = a - b
    return (0 if abs(gap) <= thr else (1 if gap > 0 else -1)), rule


def cost_gap(a, b) -> tuple[int, float]:
    """+1 if cost ``a`` beats ``b`` (lower is better by COST_RATIO), -1, or 0; and the ratio."""
    if a <= 0 or b <= 0:
        return 0, float("nan")
    ratio = max(a, b) / min(a, b)
    if ratio < COST_RATIO:
        return 0, ratio
    return (1 if a < b else -1), ratio


def _judge(claim: Claim, winner: str, win_text: str, tie_text: str, lose_text: str):
    if winner == claim.expected:
        return "confirmed", win_text
    if winner == "tie":
        return "not confirmed", tie_text
    return "not confirmed", lose_text


def _missing(claim: Claim, figures: dict, models: dict, what: str) -> ClaimResult:
    return ClaimResult(claim, figures, models, None, "not measured", f"not measured ({what})")


def _winner(sign: int, fam_a: str = "mf") -> str:
    return "tie" if sign == 0 else (fam_a if sign > 0 else OTHER[fam_a])


def _best_per_family(results: dict, value, better, figure) -> tuple[dict, dict, dict]:
    """Best model per family (:func:`_by_family`), its figure text ``figure(name, value)`` and
    its name, each keyed by family."""
    best = _by_family(results, value, better=better)
    figures = {f: figure(n, v) for f, (n, v) in best.items()}
    models = {f: n for f, (n, _) in best.items()}
    return best, figures, models


def _by_family(results: dict, value, better=max) -> dict:
    """family -> (model, value) for the model with the best ``value(name, model)`` (not None)."""
    out = {}
    for name, model in results.get("models", {}).items():
        fam = family_of(name, results)
        if fam not in FAMILIES:
            continue
        v = value(name, model)
        if v is None:
            continue
        if fam not in out or better(v, out[fam][1]) == v and v != out[fam][1]:
            out[fam] = (name, v)
    return out


def _quality_metric(results: dict) -> str:
    keys = set()
    for model in results.get("models", {}).values():
        keys.update(model.get("quality", {}))
    if "recall@10" in keys:
        return "recall@10"
    recalls = sorted((k for k in keys if k.startswith("recall@")), key=lambda k: int(k.split("@")[1]))
    return recalls[0] if recalls else "recall@10"


# ----------------------------------------------------------------------------- the claims
def _quality(claim: Claim, results: dict) -> ClaimResult:
    metric = _quality_metric(results)

    def val(_n, m):
        v = m.get("quality", {}).get(metric)
        return v if fmt.is_num(v) else None

    best, figures, models = _best_per_family(
        results, val, max, lambda n, v: f"{v:.4f}" + _se_suffix(results, n, metric))
    if len(best) < 2:
        return _missing(claim, figures, models, f"{metric} for both families")
    (mf_n, mf_v), (sm_n, sm_v) = best["mf"], best["softmax"]
    ses = _ses(results, mf_n, sm_n, metric)
    sign, rule = quality_gap(mf_v, sm_v, **ses)
    winner = _winner(sign)
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
        parts = ", ".join(f"{label[_winner(s)]} at {k}" for k, s in signs.items())
        return ClaimResult(claim, figures, models, winner, "depends", f"cut-off matters: {parts}")
    verdict, text = _judge(claim, winner, base, f"no significant gap: {base}", f"MF ahead: {base}")
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


def paired_se(results, a, b, metric, section="quality_paired_se", **match):
    """Standard error of the per-user difference between models ``a`` and ``b`` (either order)
    from ``section`` (rows also equal to ``match``, e.g. ``n_known=0``); None when the run did
    not record it."""
    for row in results.get(section, []):
        if {row.get("a"), row.get("b")} == {a, b} and fmt.is_num(row.get(metric)) \
                and all(row.get(k) == v for k, v in match.items()):
            return row[metric]
    return None


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


def _query_features(claim: Claim, results: dict) -> ClaimResult:
    rows = [r for r in results.get("ablation", []) if fmt.is_num(r.get("recall@20"))]
    if not rows:
        return _missing(claim, {}, {}, "no feature ablation in this run")
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
    for fam in FAMILIES:
        fam_rows = [r for r in rows if family_of(r["model"], results) == fam]
        if fam in lifts:
            best[fam] = max(lifts[fam])
            figures[fam] = f"{fmt.pct(best[fam][0])} {best[fam][4]}"
            models[fam] = best[fam][2]
        elif fam_rows:
            figures[fam] = "no feature input"
    if "softmax" not in best:
        return _missing(claim, figures, models, "no softmax row with and without user features"
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
    verdict, line = _judge(claim, winner, text + f" ({name})",
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


def _cold(claim: Claim, results: dict, side: str) -> ClaimResult:
    def curve(m):
        pts = {int(p["n_known"]): p["recall@10"] for p in m.get("cold_start", {}).get(side, [])
               if fmt.is_num(p.get("recall@10")) and fmt.is_num(p.get("n_known"))}
        return pts or None

    def val(_n, m):
        pts = curve(m)
        low = [v for k, v in (pts or {}).items() if k <= COLD_MAX_KNOWN]
        return sum(low) / len(low) if low else None

    best, figures, models = _best_per_family(results, val, max, lambda n, v: f"{v:.4f}")
    if len(best) < 2:
        return _missing(claim, figures, models, f"cold-start {side} curve for both families")
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
    winner = _winner(sign)
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
    verdict, text = _judge(claim, winner, f"{base}; softmax never behind on the curve",
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


def _folding(claim: Claim, results: dict) -> ClaimResult:
    def val(_n, m):
        v = m.get("folding", {}).get("leakage@10")
        return v if fmt.is_num(v) else None

    best, figures, models = _best_per_family(results, val, min, lambda n, v: f"{v:.4f}")
    if len(best) < 2:
        return _missing(claim, figures, models, "leakage@10 for both families")
    (mf_n, mf_v), (sm_n, sm_v) = best["mf"], best["softmax"]
    sign, rule = quality_gap(sm_v, mf_v, abs_tol=LEAKAGE_ABS_TOL)  # higher leakage loses
    winner = _winner(sign)
    base = f"{mf_n} {mf_v:.4f} vs {sm_n} {sm_v:.4f} (threshold {rule})"
    pos = [(n, m["folding"]["leakage@10"]) for n, m in results["models"].items()
           if role_of(n, results) == "no-negatives" and val(n, m) is not None]
    if winner != "mf" and pos and quality_gap(pos[0][1], mf_v, abs_tol=LEAKAGE_ABS_TOL)[0] > 0:
        text = (f"softmax folds without negatives ({pos[0][0]} {pos[0][1]:.4f}) but "
                f"{sm_n} reaches {sm_v:.4f} vs {mf_n} {mf_v:.4f}")
        regimes = regime_summary(results)
        return ClaimResult(claim, figures, models, winner, "depends",
                           f"{text}; {regimes}" if regimes else text)
    verdict, text = _judge(claim, winner, f"MF leaks less: {base}",
                           f"no significant gap: {base}", f"softmax leaks less: {base}")
    regimes = regime_summary(results)
    if regimes:
        text = f"{text}; {regimes}"
    return ClaimResult(claim, figures, models, winner, verdict, text)


def growth_exponent(xs, ys) -> float | None:
    """Least-squares slope of log(y) on log(x); None with fewer than two distinct x."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    if len({p[0] for p in pts}) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx


def pass_times(rows) -> list:
    """``(N, seconds of one pass, row)`` for the rows of one model's training sweep that ran,
    by N: ``s_per_pass`` (an ALS iteration, a DNN epoch without setup) where every such row has
    it, else the whole fit's ``wall_s`` (files before s_per_pass), so a curve never mixes the
    two. Used by the training claim and the report's Scale section."""
    ran = [r for r in rows if fmt.is_num(r.get("n_interactions")) and fmt.is_num(r.get("wall_s"))]
    key = "s_per_pass" if all(fmt.is_num(r.get("s_per_pass")) for r in ran) else "wall_s"
    return sorted(((r["n_interactions"], r[key], r) for r in ran if r[key] > 0),
                  key=lambda p: p[0])


def _training(claim: Claim, results: dict) -> ClaimResult:
    per_model = {}
    for r in results.get("sweeps", {}).get("training_vs_size", []):
        per_model.setdefault(r["model"], []).append(r)
    # "t": the time of one pass (pass_times)
    per_model = {name: [{**r, "t": t} for _, t, r in pass_times(rs)] for name, rs in per_model.items()}
    per_model = {name: rs for name, rs in per_model.items() if rs}
    picks = {}
    for name, rs in per_model.items():
        fam = rs[0].get("family") or family_of(name, results)
        top = max(rs, key=lambda r: r["n_interactions"])
        b = growth_exponent([r["n_interactions"] for r in rs], [r["t"] for r in rs])
        if fam in FAMILIES and b is not None and (fam not in picks or top["t"] < picks[fam][2]["t"]):
            picks[fam] = (name, b, top, rs)
    if len(picks) < 2:
        return _training_one_size(claim, results)
    figures = {f: f"N^{b:.2f}; {fmt.seconds(top['t'])} @ {fmt.count(top['n_interactions'])}"
               for f, (_, b, top, _) in picks.items()}
    models = {f: p[0] for f, p in picks.items()}
    (mf_n, mf_b, _, mf_rows), (sm_n, sm_b, _, sm_rows) = picks["mf"], picks["softmax"]
    exp_sign = 0 if abs(mf_b - sm_b) <= EXPONENT_TOL else (1 if mf_b < sm_b else -1)
    common = {r["n_interactions"]: r["t"] for r in mf_rows}.keys() & \
        {r["n_interactions"]: r["t"] for r in sm_rows}.keys()
    time_sign, ratio, size = 0, float("nan"), None
    if common:
        size = max(common)
        t_mf = next(r["t"] for r in mf_rows if r["n_interactions"] == size)
        t_sm = next(r["t"] for r in sm_rows if r["n_interactions"] == size)
        time_sign, ratio = cost_gap(t_mf, t_sm)
    signs = {s for s in (exp_sign, time_sign) if s}
    if len(signs) > 1:
        slower = mf_n if exp_sign < 0 else sm_n
        faster_now = mf_n if time_sign > 0 else sm_n
        return ClaimResult(claim, figures, models, "tie", "depends",
                           f"{slower} grows faster (N^{max(mf_b, sm_b):.2f} vs N^{min(mf_b, sm_b):.2f}) "
                           f"but {faster_now} is still {ratio:.1f}x faster at {fmt.count(size)}"
                           + _precision_note(results, {mf_n: mf_rows[-1], sm_n: sm_rows[-1]}))
    winner = _winner(signs.pop() if signs else 0)
    base = f"N^{mf_b:.2f} ({mf_n}) vs N^{sm_b:.2f} ({sm_n})"
    if size is not None and ratio == ratio:
        base += f"; {ratio:.1f}x apart at {fmt.count(size)} interactions"
    base += _precision_note(results, {mf_n: mf_rows[-1], sm_n: sm_rows[-1]})
    verdict, text = _judge(claim, winner, f"MF scales better: {base}",
                           f"no significant gap: {base}", f"softmax scales better: {base}")
    return ClaimResult(claim, figures, models, winner, verdict, text)


def _training_one_size(claim: Claim, results: dict) -> ClaimResult:
    def val(_n, m):
        v = m.get("training", {}).get("wall_s")
        return v if fmt.is_num(v) else None

    best, figures, models = _best_per_family(results, val, min,
                                             lambda n, v: f"{fmt.seconds(v)} (one size)")
    if len(best) < 2:
        return _missing(claim, figures, models, "training time for both families")
    (mf_n, mf_v), (sm_n, sm_v) = best["mf"], best["softmax"]
    sign, ratio = cost_gap(mf_v, sm_v)
    winner = _winner(sign)
    base = (f"one data size only: {mf_n} {fmt.seconds(mf_v)} vs {sm_n} {fmt.seconds(sm_v)} "
            f"({ratio:.1f}x)" + _precision_note(results, {mf_n: None, sm_n: None}))
    verdict, text = _judge(claim, winner, base, base, base)
    return ClaimResult(claim, figures, models, winner, verdict, text)


RUNTIME_LABELS = {"torchscript": "TorchScript", "eager": "eager", "compiled": "torch.compile",
                  "onnx": "ONNX Runtime", "generic": "generic"}


def served_p50(prof: dict) -> tuple[float | None, str]:
    """The production serving figure of a serving row and which path it is: the lean
    single-query path (``lean_p50_us``; for a query tower the runtime it ran, ``lean_runtime``:
    "lean, TorchScript tower"), else (files written before the lean path) the generic
    ``recommend`` p50 ("generic recommend"). ``(None, "")`` when neither is recorded."""
    prof = prof or {}
    lean = prof.get("lean_p50_us")
    if fmt.is_num(lean):
        rt = prof.get("lean_runtime")
        if rt:
            return float(lean), f"lean, {RUNTIME_LABELS.get(rt, rt)} tower"
        # runs before the DNN's lean path had a runtime of its own ran its tower eagerly
        return float(lean), "lean, eager tower" if prof.get("tower") else "lean"
    v = prof.get("p50_us")
    return (float(v), "generic recommend") if fmt.is_num(v) else (None, "")


def _serving_row(results: dict, name: str) -> dict:
    return (results.get("models", {}).get(name) or {}).get("serving") or {}


def _query_cost(row: dict, results: dict) -> tuple[float, str]:
    """A corpus-sweep row's query-embedding cost (µs) and where it comes from: for the DNN the
    lean path's embed with its fastest correct tower runtime (``lean_embed_us`` of the serving
    row of the model the vectors come from; else ``embed_fast_us``), in place of the sweep's
    own eager ``query_embedding_us``; for MF the sweep's (lookup or fold-in). 0 when the row
    records none (older sweeps: its ``p50_us`` is then the whole request)."""
    own = row.get("query_embedding_us")
    if not fmt.is_num(own):
        return 0.0, ""
    if family_of(row.get("model", ""), results) == "softmax":
        prof = _serving_row(results, row.get("source_model") or "")
        if not prof:  # no source recorded: the best softmax model's row
            prof = next((m.get("serving") or {} for n, m in results.get("models", {}).items()
                         if family_of(n, results) == "softmax" and (m.get("serving") or {}).get(
                             "lean_embed_us") is not None), {})
        for key in ("lean_embed_us", "embed_fast_us"):
            if fmt.is_num(prof.get(key)):
                rt = prof.get("lean_runtime") or (prof.get("tower") or {}).get("chosen") or "eager"
                return float(prof[key]), f"{RUNTIME_LABELS.get(rt, rt)} tower"
    return float(own), "as the sweep measured it"


def serving_at_recall(results: dict, target: float = SERVING_RECALL) -> dict:
    """Per corpus size of ``serving_vs_corpus``: ``{n: {"recall": r, family: {"total_us",
    "search_us", "query_us", "query_from", "index", "param", "recall"}}}``, each family at its
    fastest point (exact or ANN; trained vectors, not the random worst case) with recall@10 vs
    exact ≥ ``r``, the smaller of ``target`` and the best recall both families reach there."""
    rows = [r for r in results.get("sweeps", {}).get("serving_vs_corpus", []) or []
            if fmt.is_num(r.get("p50_us")) and r.get("index") != "skipped"
            and r.get("vectors", "trained") == "trained"]
    by: dict = {}
    for r in rows:
        fam = family_of(r.get("model", ""), results)
        if fam not in FAMILIES:
            continue
        rec = r.get("recall_vs_exact", 1.0 if r.get("index", "exact") == "exact" else None)
        if not fmt.is_num(rec):
            continue
        by.setdefault(int(r["n_items"]), {}).setdefault(fam, []).append((float(rec), r))
    out = {}
    for n, fams in sorted(by.items()):
        if not all(f in fams for f in FAMILIES):
            continue
        r_star = min(target, *(max(rec for rec, _ in fams[f]) for f in FAMILIES))
        entry = {"recall": r_star}
        for f in FAMILIES:
            best = None
            for rec, r in fams[f]:
                if rec < r_star - 1e-12:
                    continue
                q, src = _query_cost(r, results)
                total = float(r["p50_us"]) + q
                if best is None or total < best["total_us"]:
                    best = {"total_us": total, "search_us": float(r["p50_us"]), "query_us": q,
                            "query_from": src, "index": r.get("index", "exact"),
                            "param": (f"{r['param']}={r['param_value']}" if r.get("param") else None),
                            "recall": rec}
            entry[f] = best
        out[n] = entry
    return out


def _serving(claim: Claim, results: dict) -> ClaimResult:
    paths = {}

    def val(n, m):
        v, label = served_p50(m.get("serving") or {})
        paths[n] = label
        return v

    def figure(n, v):
        mode = _serving_row(results, n).get("mode")
        return f"{fmt.micros(v)} ({paths.get(n) or 'p50'}" + (f"; {mode})" if mode else ")")

    best, figures, models = _best_per_family(results, val, min, figure)
    # The corpus sweep says whether the gap holds as the catalogue grows, at the same recall.
    at = serving_at_recall(results)
    size_signs = {n: cost_gap(e["mf"]["total_us"], e["softmax"]["total_us"]) for n, e in at.items()}
    if len(best) < 2:
        if not size_signs:
            return _missing(claim, figures, models, "serving latency for both families")
        n_max = max(size_signs)
        best = {f: (SWEEP_NAME[f], at[n_max][f]["total_us"]) for f in FAMILIES}
        figures = {f: f"{fmt.micros(v)} @ {fmt.count(n_max)} items" for f, (_, v) in best.items()}
        models = {f: SWEEP_NAME[f] for f in FAMILIES}
    (mf_n, mf_v), (sm_n, sm_v) = best["mf"], best["softmax"]
    sign, ratio = cost_gap(mf_v, sm_v)
    winner = _winner(sign)
    corpus = _corpus_text(at, size_signs)
    kinds = {s for s, _ in size_signs.values()}
    # "depends" when the corpus sizes disagree with each other or with the run's own serving
    # figures (MF ahead per request, behind at every size of the sweep: the sweep's MF queries are
    # fold-ins where its test users are new)
    if len(kinds) > 1 or (kinds and kinds != {sign}):
        groups = {s: [n for n, (v, _) in size_signs.items() if v == s] for s in kinds}
        parts = []
        for s, label in ((1, "MF faster"), (-1, "softmax faster"), (0, "within " + f"{COST_RATIO:g}x")):
            if s in groups:
                parts.append(f"{label} at n ∈ {{{', '.join(fmt.count(n) for n in groups[s])}}}")
        head = ""
        if all(n in paths for n in (mf_n, sm_n)):  # the serving stage's own figures
            head = (f"p50 {fmt.micros(mf_v)} ({mf_n}, {paths[mf_n]}) vs {fmt.micros(sm_v)} "
                    f"({sm_n}, {paths[sm_n]}), {ratio:.1f}x, at the run's corpus; by corpus size, ")
        text = (head + "; ".join(parts) + f" (same recall per size; {corpus})"
                + _precision_note(results, {mf_n: None, sm_n: None}, serving=True)
                + _flag_note(results, (mf_n, sm_n)))
        return ClaimResult(claim, figures, models, winner, "depends", text)
    base = (f"p50 {fmt.micros(mf_v)} ({mf_n}, {paths.get(mf_n) or 'p50'}) vs {fmt.micros(sm_v)} "
            f"({sm_n}, {paths.get(sm_n) or 'p50'}), {ratio:.1f}x"
            + _precision_note(results, {mf_n: None, sm_n: None}, serving=True)
            + _flag_note(results, (mf_n, sm_n)))
    generic = [_serving_row(results, n).get("p50_us") for n in (mf_n, sm_n)]
    if all(fmt.is_num(g) for g in generic) and any(paths.get(n, "").startswith("lean") for n in (mf_n, sm_n)):
        base += f" (generic recommend {fmt.micros(generic[0])} vs {fmt.micros(generic[1])})"
    if size_signs:
        base += f"; same at every corpus size to {fmt.count(max(size_signs))} ({corpus})"
    parts = _serving_parts(results, mf_n, sm_n)
    if parts:
        base += "; " + parts
    verdict, text = _judge(claim, winner, f"MF cheaper to serve: {base}",
                           f"within {COST_RATIO:g}x: {base}", f"softmax cheaper to serve: {base}")
    return ClaimResult(claim, figures, models, winner, verdict, text)


SWEEP_NAME = {"mf": "mf", "softmax": "dnn"}


def _flag_note(results: dict, names) -> str:
    """``"; FLAGGED dnn: ..."`` for a judged serving row whose lean path the serving stage
    flagged (``flags``: its steps slowed each other down), else empty."""
    notes = [f"{n}: {'; '.join(_serving_row(results, n)['flags'])}" for n in names
             if _serving_row(results, n).get("flags")]
    return "; FLAGGED " + "; ".join(notes) if notes else ""


def precision_of(results: dict, name: str, row: dict | None = None) -> str:
    """The precision model ``name`` computed in: the sweep ``row``'s or its training row's
    ``precision``, else its params' resolved one; ``fp32`` in files from before the
    ``precision`` option (everything ran in float32 then)."""
    m = results.get("models", {}).get(name) or {}
    for src in (row or {}, m.get("training") or {}):
        if src.get("precision"):
            return str(src["precision"])
    return "fp32"


def _precision_note(results: dict, picks: dict, serving: bool = False) -> str:
    """``"; judged in fp32 (wals), bf16 (softmax-x)"``: the precision each judged model ran in
    (``picks``: name -> its sweep row or None). Serving: the query tower's precision with the
    scoring's (fp32: the lean path scores in float32), and the fastest reduced-precision
    scoring that the run measured beside it (``score_precision``: p50 and recall@k vs fp32)."""
    parts = []
    for name, row in picks.items():
        p = precision_of(results, name, row)
        text = f"{p} ({name})"
        if serving:
            fam = family_of(name, results)
            text = (f"{p} tower, fp32 scoring ({name})" if fam == "softmax"
                    else f"fp32 ({name})")
            sp = _serving_row(results, name).get("score_precision") or {}
            fast = min(((v.get("p50_us"), k, v) for k, v in sp.items()
                        if k != "fp32" and fmt.is_num(v.get("p50_us"))), default=None,
                       key=lambda t: t[0])
            if fast is not None and fmt.is_num((sp.get("fp32") or {}).get("p50_us")):
                rec = next((v for k, v in fast[2].items() if k.startswith("recall@")), None)
                text += (f" [scoring {fast[1]} {fmt.micros(fast[0])} vs fp32 "
                         f"{fmt.micros(sp['fp32']['p50_us'])}"
                         + (f", recall {rec:.3f}" if fmt.is_num(rec) else "") + "]")
        parts.append(text)
    return "; judged in " + ", ".join(parts)


def _corpus_text(at: dict, size_signs: dict) -> str:
    """Each corpus size's comparison at the same recall, and where the DNN's query embedding
    is most of its cost (small corpora) and where the search is (large)."""
    if not at:
        return ""
    bits = []
    for n, e in at.items():
        mf, sm = e["mf"], e["softmax"]
        _, ratio = size_signs[n]
        where = lambda x: x["index"] + (f" {x['param']}" if x["param"] else "")  # noqa: E731
        bits.append(f"{fmt.count(n)}: {fmt.micros(mf['total_us'])} ({where(mf)}) vs "
                    f"{fmt.micros(sm['total_us'])} ({where(sm)}), {ratio:.1f}x")
    rec = min(e["recall"] for e in at.values())
    txt = f"recall@10 ≥ {rec:.2f}: " + ", ".join(bits)
    sources = {f: next((e[f]["query_from"] for e in at.values() if e[f]["query_from"]), "")
               for f in FAMILIES}
    if any(sources.values()):
        txt += ("; query embeddings included: MF's " + (sources["mf"] or "not recorded")
                + " (the sweep's test users: a fold-in where they are new), the DNN's "
                + (sources["softmax"] or "not recorded"))
    share = {n: e["softmax"]["query_us"] / e["softmax"]["total_us"]
             for n, e in at.items() if e["softmax"]["total_us"] > 0 and e["softmax"]["query_from"]}
    if share:
        emb = [n for n, v in share.items() if v >= 0.5]
        srch = [n for n, v in share.items() if v < 0.5]
        src = next(e["softmax"]["query_from"] for e in at.values() if e["softmax"]["query_from"])
        if emb:
            txt += (f"; the DNN's query embedding ({src}) is most of its cost at n ≤ "
                    f"{fmt.count(max(emb))}")
        if srch:
            txt += f"; the search dominates at n ≥ {fmt.count(min(srch))}"
    return txt


def _serving_parts(results: dict, mf_n: str, sm_n: str) -> str:
    """Where each family's serving time goes, from the rows' floor decomposition (``embed_us``,
    ``score_us``, ``topk_us``; the DNN's embed with its fastest correct tower runtime,
    ``lean_embed_us`` where recorded, else ``embed_fast_us``): which part dominates, and
    whether the gap is the query embedding (the textbook's claim: MF looks a row up, the DNN
    runs a network) or scoring (the same ``V @ q`` on the same corpus). Empty when the rows
    carry no decomposition."""
    def parts(name):
        prof = _serving_row(results, name)
        e = prof.get("lean_embed_us", prof.get("embed_fast_us", prof.get("embed_us")))
        sc, t = prof.get("score_us"), prof.get("topk_us")
        if not all(fmt.is_num(x) for x in (e, sc, t)):
            return None
        return {"query embedding": float(e), "scoring": float(sc), "top-k": float(t)}, prof

    mf, sm = parts(mf_n), parts(sm_n)
    if mf is None or sm is None:
        return ""
    (mf_p, mf_prof), (sm_p, sm_prof) = mf, sm

    def describe(label, p, prof):
        dom = max(p, key=p.get)
        txt = (f"{label} embed {fmt.micros(p['query embedding'])}, score {fmt.micros(p['scoring'])}, "
               f"top-k {fmt.micros(p['top-k'])} ({dom} dominates")
        v, path = served_p50(prof)
        if path.startswith("lean") and fmt.is_num(prof.get("floor_p50_us")) and prof["floor_p50_us"] > 0:
            txt += f"; lean path at {v / prof['floor_p50_us']:.1f}x its floor"
        elif fmt.is_num(prof.get("ratio_to_floor")):
            txt += f"; served at {prof['ratio_to_floor']:.1f}x its floor"
        return txt + ")"

    tower = sm_prof.get("tower") or {}
    sm_label = "DNN"
    runtime = sm_prof.get("lean_runtime") or tower.get("chosen")
    if runtime:
        sm_label += f" (tower via {runtime})"
    gaps = {k: sm_p[k] - mf_p[k] for k in mf_p}
    slower = "DNN" if sum(gaps.values()) > 0 else "MF"
    extra = {k: (g if slower == "DNN" else -g) for k, g in gaps.items()}  # > 0: the slower's cost
    main = max(extra, key=extra.get)
    offset = [k for k, g in extra.items() if g < 0 and abs(g) >= 0.05 * abs(sum(extra.values()))]
    dims = [(results.get("models", {}).get(n, {}).get("params") or {}).get("dim") for n in (mf_n, sm_n)]
    txt = (f"{describe('MF', mf_p, mf_prof)}; {describe(sm_label, sm_p, sm_prof)}; "
           f"{slower} is {fmt.micros(abs(sum(gaps.values())))} slower per query at the same corpus, "
           f"mostly in {main} (+{fmt.micros(extra[main])})")
    if offset:
        txt += ", partly offset by " + ", ".join(f"{k} ({fmt.micros(extra[k])})" for k in offset)
    if all(fmt.is_num(d) for d in dims) and dims[0] != dims[1]:
        txt += (f"; embedding dims differ (MF {dims[0]}, DNN {dims[1]}): scoring reads "
                f"n_items x d floats per query")
    return txt


JUDGES = {
    "quality": _quality,
    "query_features": _query_features,
    "cold_users": lambda c, r: _cold(c, r, "users"),
    "cold_items": lambda c, r: _cold(c, r, "items"),
    "folding": _folding,
    "training": _training,
    "serving": _serving,
    "strata": lambda claim, results: _section("strata").judge(claim, results),
}


def _section(name: str):
    """The report section module (``reports/sections/<name>.py``) that holds its claim's verdict
    (imported on use, never at import time: it imports this module)."""
    return importlib.import_module(f"mfsoftmax.reports.sections.{name}")


def headline(results: dict) -> list[ClaimResult]:
    """One ClaimResult per textbook claim, in the order of CLAIMS."""
    out = []
    for c in CLAIMS:
        try:
            out.append(JUDGES[c.key](c, results))
        except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as exc:
            warnings.warn(f"claim {c.key!r}: cannot read its figures: {exc!r}", stacklevel=2)
            out.append(_missing(c, {}, {}, f"figures unreadable: {type(exc).__name__} {exc}"))
    return out
