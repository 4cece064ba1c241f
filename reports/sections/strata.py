"""Which family for whom: quality by the test user's history length and by the target item's
popularity (results.json ``strata``, written by ``bench/stages/strata.py``; definitions in
docs/definitions.md#strata). This claim's tables, plot and headline line.

Per stratum, each family's best model by the first of ``strata.metrics``; the gap (softmax -
MF) is judged by the quality claim's rule (:func:`~mfsoftmax.reports.judge.quality_gap`:
more than 2 standard errors of the per-user differences of the two models in that stratum).
"""

from __future__ import annotations

from itertools import groupby

from mfsoftmax.reports import fmt
from mfsoftmax.reports.colors import model_color
from mfsoftmax.reports.judge import SE_MULTIPLIER, Claim, ClaimResult, paired_se, quality_gap
from mfsoftmax.reports.tables import keyed_table
from mfsoftmax.results.vocabulary import COMPARED, FAMILY_LABEL, FAMILY_WORD, family_of

KEY = "strata"
TITLE = "Which family for whom"
INTRO = ("Quality of every model for light and heavy users (quantile strata of the test user's "
         "history length) and on popular and rare targets (head / torso / tail items by "
         "training popularity), and the gap between the best model of each family per stratum, "
         f"judged like overall quality: a win only beyond {SE_MULTIPLIER:g} standard errors of "
         "the per-user differences (same users, paired).")
CLAIMS = (
    Claim("strata", "Which family for whom", "simpler model, fewer inputs",
          "captures more personalised preferences", "softmax",
          "each family's best per stratum: users by history length, target items by "
          "popularity (first of strata.metrics)", row=20),
)
SIDES = {"users": "user history length", "items": "target item popularity"}


def metric(results) -> str | None:
    """The metric the section judges: the first of ``strata.metrics``; None without strata."""
    metrics = (results.get("strata") or {}).get("metrics") or []
    return metrics[0] if metrics else None


def label(side: str, st: dict) -> str:
    """'4–6 items' (a user stratum), 'head (32 items)' (an item stratum)."""
    if side == "users":
        return f"{_extent(side, st)} items"
    return f"{st.get('name')} ({st.get('n_items', fmt.DASH)} items)"


def family_gaps(results, side: str) -> list:
    """Per stratum of ``side``: ``{"stratum", "label", "best": {family: (model, value)}}`` and,
    where both families were measured, ``gap`` (softmax - MF), its paired ``se``, the
    ``winner`` ("mf", "softmax" or "tie") and the ``rule`` applied."""
    m = metric(results)
    out = []
    for st in (results.get("strata") or {}).get(side) or []:
        best = {}
        for name, vals in (st.get("models") or {}).items():
            fam, v = family_of(name, results), vals.get(m)
            if fam in COMPARED and fmt.is_num(v) and (fam not in best or v > best[fam][1]):
                best[fam] = (name, v)
        row = {"stratum": st, "label": label(side, st), "best": best}
        if len(best) == 2:
            (mf_n, mf_v), (sm_n, sm_v) = best["mf"], best["softmax"]
            se = paired_se(st, mf_n, sm_n, m, section="paired_se")
            sign, rule = quality_gap(mf_v, sm_v, se_a=st["models"][mf_n].get(f"{m}_se"),
                                     se_b=st["models"][sm_n].get(f"{m}_se"), se_gap=se)
            row.update(gap=sm_v - mf_v, se=se, rule=rule,
                       winner="tie" if sign == 0 else ("mf" if sign > 0 else "softmax"))
        out.append(row)
    return out


# ----------------------------------------------------------------------------- tables
def tables(runs, labels) -> list:
    """Every model per stratum (users, items), then each family's best per stratum."""
    return [_models_table(runs, labels, side) for side in SIDES] + [_gaps_table(runs, labels)]


def _models_table(runs, labels, side: str):
    per_run, cols, m = [], [], None
    for results in runs:
        m = m or metric(results)
        rows = {}
        for st in (results.get("strata") or {}).get(side) or []:
            col = st.get("name")
            if col not in cols:
                cols.append(col)
            rows.setdefault(_what(side), {})[col] = _extent(side, st)
            rows.setdefault(("test users",), {})[col] = str(st.get("n_users", fmt.DASH))
            for name, vals in (st.get("models") or {}).items():
                v = vals.get(metric(results))
                if fmt.is_num(v):
                    rows.setdefault((name,), {})[col] = (v, f"{v:.4f}")
        per_run.append(rows if len(rows) > 2 else {})
    note = ("Test users in quantile strata of their history length (the items the model may "
            "use for them), lightest first." if side == "users" else
            "Target items by training popularity: the head holds the most popular items up to "
            "the first share of the training interactions, the torso the next share, the tail the "
            "rest. A user's figure in a column counts only their targets among those items (the "
            "ranking is over all items, as everywhere); users without such targets are left out.")
    return keyed_table(f"strata-{side}", f"{m} by {SIDES[side]}", ["model"], per_run, labels,
                       columns=cols, best={c: max for c in cols}, note=note)


def _what(side: str) -> tuple:
    return ("history items",) if side == "users" else ("items (share of interactions)",)


def _extent(side: str, st: dict) -> str:
    """'4–6' (a user stratum's history lengths), '32 (20%)' (an item stratum's size)."""
    if side == "users":
        lo, hi = st.get("min_items"), st.get("max_items")
        return str(lo) if lo == hi else f"{lo}–{hi}"
    share = st.get("interaction_share")
    return f"{st.get('n_items', fmt.DASH)}" + (f" ({share:.0%})" if fmt.is_num(share) else "")


def _gaps_table(runs, labels):
    per_run, m = [], None
    for results in runs:
        m = m or metric(results)
        rows = {}
        for side in SIDES:
            for g in family_gaps(results, side):
                if "winner" not in g:
                    continue
                cells = {FAMILY_LABEL[f]: f"{g['best'][f][1]:.4f} [{g['best'][f][0]}]"
                         for f in COMPARED}
                se = f" ± {g['se']:.4f}" if fmt.is_num(g["se"]) else ""
                cells["gap (softmax − MF)"] = f"{g['gap']:+.4f}{se}"
                cells["winner"] = FAMILY_WORD[g["winner"]]
                rows[(SIDES[side], g["label"])] = cells
        per_run.append(rows)
    return keyed_table("strata-gaps", f"Best of each family per stratum ({m}), paired by user",
                       ["split by", "stratum"], per_run, labels,
                       note=f"Each family's best model in each stratum; the gap ± the standard "
                            f"error of the per-user differences between those two models in "
                            f"that stratum. 'tie' = within {SE_MULTIPLIER:g} se.")


# ----------------------------------------------------------------------------- headline
def _span(side: str, run: list, gaps: list) -> str | None:
    """The strata of a run of consecutive ones: '≥ 24', '5–9', '≤ 4' (users' history items;
    None: all of them), 'head and torso' (items)."""
    if side == "items":
        return " and ".join(g["stratum"].get("name") for g in run)
    lo, hi = run[0]["stratum"].get("min_items"), run[-1]["stratum"].get("max_items")
    first, last = run[0] is gaps[0], run[-1] is gaps[-1]
    if first and last:
        return None
    return f"≥ {lo}" if last else f"≤ {hi}" if first else f"{lo}–{hi}"


def _where(side: str, spans: list) -> str:
    """'for users with ≤ 4 or ≥ 24 items', 'for users of every history length', 'on tail
    items', from the spans of one family's runs on ``side``."""
    if side == "items":
        return f"on {' and '.join(spans)} items"
    if None in spans:
        return "for users of every history length"
    return f"for users with {' or '.join(spans)} items"


def _parts(side: str, gaps: list) -> list:
    """'MF ahead for users with ≥ 24 items', one per family ahead somewhere on ``side``."""
    spans = {}
    for fam, run in groupby(gaps, key=lambda g: g["winner"]):
        if fam != "tie":
            spans.setdefault(fam, []).append(_span(side, list(run), gaps))
    return [f"{FAMILY_WORD[fam]} ahead {_where(side, s)}" for fam, s in spans.items()]


def judge(claim, results) -> ClaimResult:
    """The headline row: where each family is ahead, or 'no difference'."""
    m = metric(results)
    gaps = {side: [g for g in family_gaps(results, side) if "winner" in g] for side in SIDES}
    if not m or not any(gaps.values()):
        return ClaimResult(claim, {}, {}, None, "not measured",
                           "not measured (no stratum with both families)")
    winners = [g["winner"] for side in SIDES for g in gaps[side]]
    n = len(winners)
    figures = {f: f"ahead in {winners.count(f)} of {n} strata" for f in COMPARED}
    parts = [p for side in SIDES for p in _parts(side, gaps[side])]
    ahead = set(winners) - {"tie"}
    if not ahead:
        return ClaimResult(claim, figures, {}, "tie", "not confirmed",
                           f"no difference: no stratum's gap exceeds {SE_MULTIPLIER:g} paired se "
                           f"({m}, {n} strata)")
    text = "; ".join(parts) + (f" ({m}; elsewhere within {SE_MULTIPLIER:g} paired se)"
                               if "tie" in winners else f" ({m}, {SE_MULTIPLIER:g} paired se)")
    if ahead == {"softmax"} and "tie" not in winners:
        return ClaimResult(claim, figures, {}, "softmax", "confirmed", text)
    if set(winners) == {"mf"}:
        return ClaimResult(claim, figures, {}, "mf", "not confirmed", text)
    return ClaimResult(claim, figures, {}, ahead.pop() if len(ahead) == 1 else None,
                       "depends", text)


# ----------------------------------------------------------------------------- plot
def plot(results):
    """Top: every model's metric per stratum (± its se); bottom: best softmax - best MF per
    stratum ± the threshold (2 paired se). One column per split (users, items)."""
    m = metric(results)
    sides = [s for s in SIDES if any(st.get("models") for st in results["strata"].get(s) or [])] \
        if m else []
    if not sides:
        return None
    import matplotlib.pyplot as plt  # lazy: matplotlib; the headline reads this module too
    from matplotlib.lines import Line2D  # lazy: matplotlib, as above

    fig, axes = plt.subplots(2, len(sides), figsize=(5.2 * len(sides) + 2.2, 7.0), squeeze=False,
                             layout="constrained")
    for j, side in enumerate(sides):
        strata = [st for st in results["strata"][side] if st.get("models")]
        xs = list(range(len(strata)))
        top, bottom = axes[0][j], axes[1][j]
        names = list(dict.fromkeys(n for st in strata for n in st["models"]))
        for name in names:
            vals = [st["models"].get(name, {}) for st in strata]
            ys = [v.get(m) if fmt.is_num(v.get(m)) else float("nan") for v in vals]
            es = [v.get(f"{m}_se") if fmt.is_num(v.get(f"{m}_se")) else 0.0 for v in vals]
            top.errorbar(xs, ys, yerr=es, marker="o", ms=4, capsize=2, lw=1.2,
                         color=model_color(name), label=name)
        top.set_xticks(xs, [label(side, st) for st in strata], rotation=20, ha="right")
        top.set_ylabel(m)
        top.set_title(f"{m} by {SIDES[side]}")
        gaps = {id(g["stratum"]): g for g in family_gaps(results, side) if "winner" in g}
        bottom.axhline(0.0, color="#999", lw=1)
        for x, st in zip(xs, strata, strict=True):
            g = gaps.get(id(st))
            if g is None:
                continue
            err = SE_MULTIPLIER * g["se"] if fmt.is_num(g["se"]) else None
            bottom.errorbar([x], [g["gap"]], yerr=err, fmt="o", capsize=4,
                            color=WINNER_COLORS[g["winner"]][0])
        bottom.set_xticks(xs, [label(side, st) for st in strata], rotation=20, ha="right")
        bottom.set_ylabel(f"gap in {m}")
        bottom.set_title(f"best softmax − best MF, ± {SE_MULTIPLIER:g} paired se")
    handles, names = axes[0][0].get_legend_handles_labels()
    keys = [Line2D([], [], marker="o", ls="", color=c, label=t) for c, t in WINNER_COLORS.values()]
    fig.legend(handles=handles + keys, labels=names + [k.get_label() for k in keys],
               loc="outside right upper", fontsize=7.5)
    return fig


WINNER_COLORS = {"softmax": ("#d62728", "gap: softmax ahead"), "mf": ("#1f77b4", "gap: MF ahead"),
                 "tie": ("#777777", "gap: within the threshold")}


PLOTS = (("strata", "Which family for whom: quality by user history and item popularity", plot),)


def sparkline(res, results):
    """Best softmax - best MF per stratum (users, lightest first, then items, head first), each
    ± its threshold (2 paired se), coloured by the stratum's winner; None without a gap."""
    from mfsoftmax.reports import glance  # lazy: matplotlib, off the headline

    rows = [(side, g) for side in SIDES for g in family_gaps(results, side) if "winner" in g]
    if not rows:
        return None
    import matplotlib.pyplot as plt  # lazy: matplotlib, as above

    fig, ax = plt.subplots(figsize=glance.SIZE)
    gap = int(any(side == "users" for side, _ in rows))  # a blank slot between the two splits
    xs = [i + (gap if side == "items" else 0) for i, (side, _) in enumerate(rows)]
    ax.axhline(0.0, color="#999", lw=0.6)
    for x, (_, g) in zip(xs, rows, strict=True):
        err = SE_MULTIPLIER * g["se"] if fmt.is_num(g["se"]) else None
        ax.errorbar([x], [g["gap"]], yerr=err, fmt="o", ms=2.5, capsize=1.5, lw=0.8,
                    color=WINNER_COLORS[g["winner"]][0])
    ticks = {side: [x for x, (s, _) in zip(xs, rows, strict=True) if s == side] for side in SIDES}
    ax.set_xticks([sum(v) / len(v) for v in ticks.values() if v], [s for s, v in ticks.items() if v])
    ax.margins(x=0.08, y=0.2)
    ax.set_ylabel("DNN − MF", fontsize=5.5, labelpad=1)
    return fig


SPARKLINES = {"strata": sparkline}
