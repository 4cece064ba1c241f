"""The report's Scale section: training cost per pass against data size (``sweeps.training_vs_size``),
its growth exponents, the cost of distributed engines, and its figure. The training claim that
this sweep judges is :mod:`~mfsoftmax.reports.sections.training`'s.

Old results files lack the per-pass keys (``s_per_pass``, ``engine``, ``workers``, ...): the time
of one pass falls back to the whole fit's ``wall_s`` and every missing figure shows a dash.
"""

from __future__ import annotations

from mfsoftmax.reports import fmt
from mfsoftmax.reports.colors import model_color
from mfsoftmax.reports.sections.training import growth_exponent, pass_times
from mfsoftmax.reports.tables import Table, keyed_table
from mfsoftmax.results.vocabulary import family_of

KEY = "scale"
TITLE = "Scale"
INTRO = ("Training cost of one pass (a WALS iteration, a DNN epoch) on synthetic data of "
         "growing size N; growth exponents are least-squares slopes on log-log axes. "
         "Distributed engines are measured on this one machine: a ratio above 1 is the "
         "price of the engine here, not a prediction for a cluster.")

# The single-process engine each family's distributed configurations are compared with.
REFERENCE_ENGINE = {"mf": "implicit", "softmax": "torch"}


def _rows(results) -> list:
    return [r for r in results.get("sweeps", {}).get("training_vs_size", [])
            if isinstance(r, dict) and r.get("model") is not None]


def _config(rows) -> dict:
    """Model name -> (family, engine, workers), read from its rows (rows of sizes not run carry
    no engine: they take the model's from the rows that ran)."""
    out = {}
    for r in rows:
        fam, eng, wk = out.get(r["model"], (None, None, None))
        out[r["model"]] = (fam or r.get("family"), eng or r.get("engine"),
                           wk if wk is not None else r.get("workers"))
    return out


def _family(name, fam, results) -> str:
    return fam or family_of(name, results)


def pass_s(row):
    """Seconds of one pass (``s_per_pass``), else the whole fit's ``wall_s`` (old files)."""
    v = row.get("s_per_pass")
    return v if fmt.is_num(v) else row.get("wall_s")


def _peak_mb(row):
    """Own high-water mark plus children's peak, MB (RSS growth in files without the mark)."""
    own = row.get("peak_rss_abs_mb")
    if not fmt.is_num(own):
        own = row.get("peak_rss_mb")
    if not fmt.is_num(own):
        return None
    kids = row.get("children_peak_rss_mb")
    return own + (kids if fmt.is_num(kids) else 0.0)


def _mb(v) -> str:
    return f"{fmt.num(v)} MB" if fmt.is_num(v) else fmt.DASH


def _rate(v) -> str:
    """Examples per second: '5.2k' above a thousand, three significant figures below."""
    return fmt.count(v) if fmt.is_num(v) and v >= 1000 else fmt.num(v)


def _workers(w) -> str:
    return str(w) if fmt.is_num(w) else fmt.DASH


def series(results) -> list:
    """Figure data: per (model, engine, workers) that ran at least one size,
    ``(model, engine, workers, Ns, seconds per pass, exponent or None)``, by model name."""
    rows = _rows(results)
    config = _config(rows)
    groups = {}
    for r in rows:
        _, eng, wk = config[r["model"]]
        groups.setdefault((r["model"], eng, wk), []).append(r)
    out = []
    for (name, eng, wk), rs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        pts = pass_times(rs)
        if not pts:
            continue
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        out.append((name, eng, wk, xs, ys, growth_exponent(xs, ys)))
    return out


def tables(runs, labels) -> list:
    """The Scale section's tables: cost per pass by size, growth exponents, and (when some family
    ran more than one engine configuration) the cost of distribution."""
    return [t for t in (cost_table(runs, labels), growth_table(runs, labels),
                        distribution_table(runs, labels)) if t is not None]


def cost_table(runs, labels) -> Table | None:
    """One row per (model, engine, workers, N): seconds and examples per second of one pass,
    peak RSS (own, children's where any), and why a size was not run."""
    per_run = []
    for results in runs:
        rows = _rows(results)
        config = _config(rows)
        out = {}
        order = {n: i for i, n in enumerate(config)}
        for r in sorted(rows, key=lambda r: (order[r["model"]], r.get("n_interactions") or 0)):
            _, eng, wk = config[r["model"]]
            k = (r["model"], eng or fmt.DASH, _workers(wk), fmt.count(r.get("n_interactions")))
            vals = {"s/pass": fmt.seconds(pass_s(r)), "examples/s": _rate(r.get("examples_per_s")),
                    "peak RSS": _mb(r.get("peak_rss_abs_mb")), "RSS growth": _mb(r.get("peak_rss_mb"))}
            kids = r.get("children_peak_rss_mb")
            if fmt.is_num(kids) and kids > 0:
                vals["children peak RSS"] = _mb(kids)
            if not fmt.is_num(r.get("wall_s")):
                vals["note"] = r.get("note") or "not run"
            out[k] = vals
        per_run.append(out)
    return keyed_table("training_vs_size", "Training cost vs data size (one pass)",
                       ["model", "engine", "workers", "N"], per_run, labels,
                       columns=["s/pass", "examples/s", "peak RSS", "children peak RSS",
                                "RSS growth", "note"],
                       note="One pass = one WALS iteration or one DNN epoch (files without "
                            "s_per_pass: the whole fit). Peak RSS: the process's high-water mark; "
                            "children: Spark JVMs or DDP ranks; RSS growth: during the fit.")


def growth_table(runs, labels) -> Table | None:
    """Per model: the exponent b of s/pass ∝ N^b over the sizes that ran, the largest N reached
    and the cost there."""
    per_run = []
    for results in runs:
        config = _config(_rows(results))
        out = {}
        for name, eng, wk, xs, ys, b in series(results):
            fam = _family(name, config[name][0], results)
            top = pass_times([r for r in _rows(results) if r["model"] == name])[-1][2]
            out[(name,)] = {"family": fam, "engine": eng or fmt.DASH, "workers": _workers(wk),
                            "exponent b": f"{b:.2f}" if b is not None else fmt.DASH,
                            "sizes": str(len(xs)), "largest N": fmt.count(xs[-1]),
                            "s/pass there": fmt.seconds(ys[-1]), "peak RSS there": _mb(_peak_mb(top))}
        per_run.append(out)
    return keyed_table("scale-growth", "Growth with data size", ["model"], per_run, labels,
                       note="b: least-squares slope of log(s/pass) on log(N) over the sizes that "
                            "ran (— with fewer than two). Peak RSS: own high-water mark plus "
                            "children's (RSS growth in files without the mark).")


def _at(pts, n):
    return next((p for p in pts if p[0] == n), None)


def _reference(fam, names, pts, config):
    """The family's single-process reference: a single-worker model on the family's usual engine,
    else any single-worker model; the fastest (s/pass at the largest N they share, else
    seconds per interaction at each one's largest N)."""
    single = [n for n in names if config[n][2] in (1, None) and pts[n]]
    preferred = [n for n in single if config[n][1] == REFERENCE_ENGINE.get(fam)]
    cands = preferred or single
    if not cands:
        return None
    shared = set.intersection(*({p[0] for p in pts[n]} for n in cands))
    if shared:
        top = max(shared)
        return min(cands, key=lambda n: (_at(pts[n], top)[1], n))
    return min(cands, key=lambda n: (pts[n][-1][1] / pts[n][-1][0], n))


def _ratio(r: float) -> str:
    if round(r, 1) == 1.0:
        return f"{r:.1f}x (same)"
    return f"{r:.1f}x slower" if r > 1 else f"{r:.1f}x (faster)"


def distribution_table(runs, labels) -> Table | None:
    """Each model whose (engine, workers) differs from its family's single-process reference,
    against that reference at the largest N both ran; only for families with more than one
    configuration."""
    per_run = []
    for results in runs:
        rows = _rows(results)
        config = _config(rows)
        pts = {n: pass_times([r for r in rows if r["model"] == n]) for n in config}
        fams = {}
        for name, (fam, _, _) in config.items():
            fams.setdefault(_family(name, fam, results), []).append(name)
        out = {}
        for fam, names in fams.items():
            if len({config[n][1:] for n in names if pts[n]}) < 2:
                continue
            ref = _reference(fam, names, pts, config)
            if ref is None:
                continue
            for name in names:
                if name == ref or config[name][1:] == config[ref][1:] or not pts[name]:
                    continue
                shared = {p[0] for p in pts[name]} & {p[0] for p in pts[ref]}
                key = (name, fam, config[name][1] or fmt.DASH, _workers(config[name][2]))
                if not shared:
                    out[key] = {"reference": ref, "N": fmt.DASH, "time": "no shared size"}
                    continue
                n = max(shared)
                (_, t, row), (_, t_ref, row_ref) = _at(pts[name], n), _at(pts[ref], n)
                m, m_ref = _peak_mb(row), _peak_mb(row_ref)
                out[key] = {"reference": ref, "N": fmt.count(n), "s/pass": fmt.seconds(t),
                            "reference s/pass": fmt.seconds(t_ref), "time": _ratio(t / t_ref),
                            "memory": f"{m / m_ref:.1f}x" if fmt.is_num(m) and fmt.is_num(m_ref)
                            and m_ref > 0 else fmt.DASH}
        per_run.append(out)
    return keyed_table("scale-distribution", "Cost of distribution",
                       ["model", "family", "engine", "workers"], per_run, labels,
                       columns=["reference", "N", "s/pass", "reference s/pass", "time", "memory"],
                       note="Against the family's single-process reference (implicit for MF, "
                            "torch for softmax; else the fastest single-worker model) at the "
                            "largest N both ran. Memory: own plus children's peak RSS. Measured "
                            "on one machine: a ratio above 1 is the engine's overhead here, not "
                            "a prediction for a cluster.")


# ----------------------------------------------------------------------------- plot
ENGINE_MARKERS = {"implicit": "o", "spark": "s", "torch": "^"}  # training_vs_size


def training_vs_size(results):
    """Seconds of one pass against data size, log-log, one line per model with its fitted growth
    exponent; marker by engine, dashed when it ran on several workers."""
    lines = series(results)
    if not lines:
        return None
    from mfsoftmax.reports.plots import figure  # lazy: matplotlib, off the headline

    fig, (ax,) = figure()
    for name, engine, workers, xs, ys, b in lines:
        how = [engine] if engine else []
        if fmt.is_num(workers) and workers > 1:
            how.append(f"{workers} workers")
        if b is not None:
            how.append(f"t ∝ $N^{{{b:.2f}}}$")
        label = f"{name} ({'; '.join(how)})" if how else name
        ax.plot(xs, ys, marker=ENGINE_MARKERS.get(engine, "D" if engine else "o"),
                ls="--" if fmt.is_num(workers) and workers > 1 else "-",
                color=model_color(name), label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("interactions N (log)")
    ax.set_ylabel("seconds per pass (log)")
    ax.set_title("Training cost vs data size (one pass)")
    ax.legend()
    return fig


PLOTS = (("training_vs_size", "Training cost vs data size (one pass)", training_vs_size),)
