"""Training cost: the final fits' wall and CPU time, memory and tuning, and the headline's
training claim, judged on the growth of one pass with data size (``sweeps.training_vs_size``;
its tables and plot are the Scale section, :mod:`~mfsoftmax.reports.sections.scale`).
"""

from __future__ import annotations

import math

from mfsoftmax.reports import fmt
from mfsoftmax.reports.colors import model_color
from mfsoftmax.reports.judge import (
    EXPONENT_TOL,
    Claim,
    ClaimResult,
    best_per_family,
    cost_gap,
    missing,
    precision_note,
    verdict_of,
    winner_of,
)
from mfsoftmax.reports.tables import keyed_table
from mfsoftmax.results.vocabulary import COMPARED, family_of

KEY = "training"
TITLE = "Training cost"
INTRO = ""
CLAIMS = (
    Claim("training", "Training scalability", "scales to huge sparse corpora",
          "harder to scale; needs sampling/hashing", "mf",
          "growth exponent of training time, time at the largest size", row=70),
)
PLOTS = ()


# ----------------------------------------------------------------------------- headline
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


def judge(claim: Claim, results: dict) -> ClaimResult:
    """The headline row: each family's growth exponent of one pass against data size (the
    ``training_vs_size`` sweep) and its time at the largest common size; one size only when
    the run has no sweep."""
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
        if fam in COMPARED and b is not None and (fam not in picks or top["t"] < picks[fam][2]["t"]):
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
                           + precision_note(results, {mf_n: mf_rows[-1], sm_n: sm_rows[-1]}))
    winner = winner_of(signs.pop() if signs else 0)
    base = f"N^{mf_b:.2f} ({mf_n}) vs N^{sm_b:.2f} ({sm_n})"
    if size is not None and ratio == ratio:
        base += f"; {ratio:.1f}x apart at {fmt.count(size)} interactions"
    base += precision_note(results, {mf_n: mf_rows[-1], sm_n: sm_rows[-1]})
    verdict, text = verdict_of(claim, winner, f"MF scales better: {base}",
                           f"no significant gap: {base}", f"softmax scales better: {base}")
    return ClaimResult(claim, figures, models, winner, verdict, text)


def _training_one_size(claim: Claim, results: dict) -> ClaimResult:
    def val(_n, m):
        v = m.get("training", {}).get("wall_s")
        return v if fmt.is_num(v) else None

    best, figures, models = best_per_family(results, val, min,
                                             lambda n, v: f"{fmt.seconds(v)} (one size)")
    if len(best) < 2:
        return missing(claim, figures, models, "training time for both families")
    (mf_n, mf_v), (sm_n, sm_v) = best["mf"], best["softmax"]
    sign, ratio = cost_gap(mf_v, sm_v)
    winner = winner_of(sign)
    base = (f"one data size only: {mf_n} {fmt.seconds(mf_v)} vs {sm_n} {fmt.seconds(sm_v)} "
            f"({ratio:.1f}x)" + precision_note(results, {mf_n: None, sm_n: None}))
    verdict, text = verdict_of(claim, winner, base, base, base)
    return ClaimResult(claim, figures, models, winner, verdict, text)


# ----------------------------------------------------------------------------- tables
def tables(runs, labels) -> list:
    """The final fits' cost."""
    return [training_table(runs, labels)]


def training_table(runs, labels):
    per_run = []
    for results in runs:
        rows = {}
        for name, model in results.get("models", {}).items():
            tr, tu = model.get("training", {}), model.get("tuning", {})
            vals = {}
            for col, v, f in (("wall", tr.get("wall_s"), fmt.seconds), ("cpu", tr.get("cpu_s"), fmt.seconds),
                              ("peak RSS", tr.get("peak_rss_mb"), lambda x: f"{fmt.num(x)} MB"),
                              ("epochs", tr.get("epochs"), fmt.num), ("eval", tr.get("eval_s"), fmt.seconds),
                              ("tuning trials", tu.get("trials"), fmt.num),
                              ("tuning search", tu.get("search_s"), fmt.seconds)):
                if fmt.is_num(v):
                    vals[col] = (v, f(v))
            if isinstance(tu.get("best_params"), dict) and tu["best_params"]:
                vals["best params"] = ", ".join(f"{k}={v}" for k, v in tu["best_params"].items())
            if vals:
                rows[(name, model.get("family", "?"))] = vals
        per_run.append(rows)
    return keyed_table("training", "Training cost", ["model", "family"], per_run, labels,
                       best={"wall": min, "cpu": min, "peak RSS": min},
                       note="Wall and CPU time of the final fit; tuning = the search that chose "
                            "its parameters (same budget for every model).")


# ----------------------------------------------------------------------------- sparkline
def sparkline(res, results):
    """Seconds per pass against data size (log-log), each line named by its growth exponent."""
    from mfsoftmax.reports import glance  # lazy: matplotlib, off the headline

    series = []
    for fam in COMPARED:
        name = res.models.get(fam)
        rows = [r for r in results.get("sweeps", {}).get("training_vs_size", [])
                if r.get("model") == name]
        pts = [(n, t) for n, t, _ in pass_times(rows)]
        if len(pts) >= 2:
            xs, ys = zip(*pts, strict=True)
            expo = res.figures.get(fam, "").split(";")[0]
            series.append((f"{glance.SHORT[fam]} {expo}".strip(), xs, ys, model_color(name)))
    if len(series) == 2:
        return glance.lines(series, "interactions N (log-log)", log=True)
    items = [(glance.SHORT[f], v, None, model_color(res.models[f])) for f in COMPARED
             if fmt.is_num(v := glance.entry(results, res.models.get(f)).get("training", {}).get("wall_s"))]
    return glance.bars(items, fmt.seconds) if len(items) == 2 else None


SPARKLINES = {"training": sparkline}
