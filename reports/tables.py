"""Report tables as plain data (title, key columns, one column group per run, rows of cells).

A cell is a string, or ``(text, css_class)`` where the class marks e.g. the best value of a column
("best"), a failed stage ("failed") or a verdict kind. Sections a run did not measure produce no
table (``None``): nothing is faked.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from mfsoftmax.reports import fmt
from mfsoftmax.reports.verdicts import (
    FAMILY_LABEL,
    SE_MULTIPLIER,
    headline,
    paired_se,
    seed_share,
    served_p50,
    w0_effect,
)
from mfsoftmax.results.schema import feature_pairs


@dataclass
class Table:
    key: str                         # stable identifier (HTML anchor, tests)
    title: str
    key_headers: list
    groups: list                     # [(run label, [column names])]
    rows: list = field(default_factory=list)  # [(key cells, value cells flattened over groups)]
    note: str = ""


class Folded(NamedTuple):
    """A ``(text, css class)`` cell shown short, with its ``full`` text one click away (HTML
    ``<details>``, a numbered note under a Markdown table) and, in HTML, plot ``plot`` of run
    ``run`` beside it (a headline sparkline, :mod:`mfsoftmax.reports.glance`)."""
    text: str
    cls: str
    full: str
    run: int = 0
    plot: str = ""


def cell_text(cell) -> str:
    return cell[0] if isinstance(cell, tuple) else cell


def run_label(results: dict, index: int) -> str:
    """'A: synthetic · 20250101-120000 · 6b20f43c' (letter, dataset, run id, commit)."""
    run, ds = results.get("run", {}), results.get("dataset", {})
    parts = [ds.get("name") or "?", run.get("id") or "?"]
    if run.get("git_commit"):
        parts.append(str(run["git_commit"])[:8])
    return f"{chr(ord('A') + index)}: " + " · ".join(parts)


def keyed_table(key, title, key_headers, per_run, labels, columns=None, best=None, note=""):
    """Line runs up by row key. ``per_run``: one ``{key tuple: {column: cell}}`` per run.

    ``best``: {column: max|min} marks each run's best numeric value of that column (cell values
    are then ``(number, text)`` pairs before marking). Returns None when every run is empty.
    """
    if not any(per_run):
        return None
    keys, cols = [], []
    for rows in per_run:
        for k, vals in rows.items():
            if k not in keys:
                keys.append(k)
            for c in vals:
                if c not in cols:
                    cols.append(c)
    if columns is not None:
        cols = [c for c in columns if c in cols]
    marked = [_mark_best(rows, cols, best or {}) for rows in per_run]
    groups = [(label if len(per_run) > 1 else "", cols) for label in labels]
    table = Table(key, title, list(key_headers), groups, note=note)
    for k in keys:
        vals = []
        for rows in marked:
            row = rows.get(k, {})
            vals.extend(row.get(c, fmt.DASH) for c in cols)
        table.rows.append(([str(x) for x in k], vals))
    return table


def _mark_best(rows, cols, best) -> dict:
    out = {k: dict(v) for k, v in rows.items()}
    for c in cols:
        nums = [(v[c][0], k) for k, v in rows.items() if _is_pair(v.get(c))]
        for v in out.values():
            if _is_pair(v.get(c)):
                v[c] = v[c][1]
        if c in best and len(nums) > 1:
            target = best[c](n for n, _ in nums)
            for n, k in nums:
                if n == target:
                    out[k][c] = (out[k][c], "best")
    return out


def _is_pair(cell) -> bool:
    """A ``(number, text)`` input cell (as opposed to a ``(text, css class)`` cell)."""
    return isinstance(cell, tuple) and fmt.is_num(cell[0])


# ----------------------------------------------------------------------------- sections
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


def serving_table(runs, labels):
    """Per model and mode: the production figure (``served p50``: the lean single-query path,
    the DNN's tower through its fastest correct runtime, the path named; files without a lean
    path fall back to the generic ``recommend`` p50, labelled so), the lean path with the
    eager tower where it differs, the floor and the ratio to it, then the generic
    ``recommend`` percentiles and the throughput."""
    per_run = []
    for results in runs:
        rows = {}
        entries = [(n, m["serving"]) for n, m in results.get("models", {}).items() if m.get("serving")]
        entries += [(r.get("model", "?"), r) for r in results.get("serving", [])]
        for name, s in entries:
            vals = {}
            served, path = served_p50(s)
            if served is not None:
                vals["served p50"] = (served, fmt.micros(served))
                vals["path"] = path
            eager = s.get("lean_eager_p50_us")
            if fmt.is_num(eager) and s.get("lean_runtime") not in (None, "eager"):
                vals["lean, eager tower"] = fmt.micros(eager)
            floor = s.get("floor_p50_us")
            if fmt.is_num(floor) and floor > 0:
                vals["floor p50"] = fmt.micros(floor)
                if served is not None and path != "generic recommend":
                    vals["served / floor"] = f"{served / floor:.2f}x"
            for q in ("p50", "p95", "p99"):
                v = s.get(f"{q}_us")
                if fmt.is_num(v):
                    vals[f"recommend {q}"] = (v, fmt.micros(v))
            for b, v in (s.get("qps") or {}).items():
                if fmt.is_num(v):
                    vals[f"QPS @ batch {b}"] = (v, fmt.count(v))
            if s.get("flags"):  # bench/floor.contention_flags: the lean figure is suspect
                vals["flags"] = "; ".join(s["flags"])
            if vals:
                rows[(name, s.get("mode") or fmt.DASH)] = vals
        per_run.append(rows)
    return keyed_table("serving", "Serving latency and throughput", ["model", "mode"], per_run,
                       labels, best={"served p50": min, "recommend p50": min},
                       note="Single-threaded latency per query (one request's torch and BLAS "
                       "threads: request_threads). flags: the lean path slower than the generic "
                       "recommend, or its embed inside the path over 2x the embed alone. Served p50: the production path, "
                       "one request through the model's lean single-query path (recommend_one; "
                       "the DNN's query tower through its fastest correct runtime, named in "
                       "path), the minimum over rounds of the round's median; 'generic "
                       "recommend' where the run recorded no lean path. Floor: a bare numpy "
                       "path doing the same work on the model's arrays. recommend p50/p95/p99: "
                       "the generic batch API for one query (pooled over rounds). Throughput in "
                       "queries per second at each batch size.")


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


def folding_tables(runs, labels) -> list:
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


def sweep_tables(runs, labels) -> list:
    specs = (
        ("serving_vs_corpus", "Serving latency vs corpus size (each index at its operating point)",
         ("model", "vectors", "index", "n_items"),
         (("p50_us", "p50", fmt.micros), ("p95_us", "p95", fmt.micros),
         ("recall_vs_exact", "recall vs exact", lambda v: f"{v:.3f}"))),
        ("hashing", "Hashed embedding tables (the DNN's memory lever): inputs = history and user "
         "features only, all = the item side too", ("model", "scope", "buckets"),
         (("embedding_mb", "embeddings", lambda v: f"{fmt.num(v)} MB"),
          ("recall@20", "recall@20", fmt.metric), ("ndcg@20", "ndcg@20", fmt.metric),
          ("wall_s", "train", fmt.seconds), ("peak_rss_mb", "peak RSS", lambda v: f"{fmt.num(v)} MB"))),
    )
    out = []
    for key, title, kcols, vcols in specs:
        per_run = []
        for results in runs:
            rows = {}
            for r in results.get("sweeps", {}).get(key, []):
                if not r.get("operating_point", True):  # ANN sweeps: one row per index
                    continue
                k = tuple(fmt.count(r[c]) if fmt.is_num(r.get(c)) else
                          str(r.get(c, "trained" if c == "vectors" else fmt.DASH)) for c in kcols)
                rows[k] = {label: f(r[c]) for c, label, f in vcols if fmt.is_num(r.get(c))}
            per_run.append(rows)
        t = keyed_table(key, title, [c.replace("_", " ") for c in kcols], per_run, labels)
        if t:
            out.append(t)
    per_run = []
    for results in runs:
        o = results.get("offline_topk")
        rows = {}
        if o:
            rows[("all users",)] = {
                "users": fmt.count(o.get("n_users")), "k": fmt.num(o.get("k")),
                "wall": fmt.seconds(o.get("wall_s")),
                "size": f"{fmt.num(o['bytes'] / 2**20)} MiB" if fmt.is_num(o.get("bytes")) else fmt.DASH}
        per_run.append(rows)
    t = keyed_table("offline_topk", "Offline top-k precomputation (MF)", ["scope"], per_run, labels)
    return out + ([t] if t else [])


def metadata_table(runs, labels):
    per_run = []
    for results in runs:
        run, ds = results.get("run", {}), results.get("dataset", {})
        machine, threads = run.get("machine", {}), run.get("threads", {})
        fields = [
            ("dataset", ds.get("name")), ("users", fmt.count(ds.get("n_users"))),
            ("items", fmt.count(ds.get("n_items"))), ("interactions", fmt.count(ds.get("n_interactions"))),
            ("density", fmt.num(ds["density"]) if fmt.is_num(ds.get("density")) else None),
            ("protocol", ds.get("protocol")),
            ("k", ", ".join(str(k) for k in ds["k"]) if ds.get("k") else None),
            ("run id", run.get("id")), ("started", run.get("started_at")),
            ("finished", run.get("finished_at")), ("git commit", run.get("git_commit")),
            ("seed", run.get("seed")), ("python", run.get("python")),
        ]
        fields += [(f"package {k}", v) for k, v in (run.get("packages") or {}).items()]
        fields += [("cpu", machine.get("cpu")), ("cores", machine.get("cores")),
                   ("memory", f"{machine['memory_gb']} GB" if fmt.is_num(machine.get("memory_gb")) else None),
                   ("gpu", machine.get("gpu") or ("none" if "gpu" in machine else None))]
        fields += [(f"threads {k}", v) for k, v in threads.items()]
        gflops = (run.get("calibration") or {}).get("matmul_gflops")
        fields.append(("matmul calibration", f"{fmt.num(gflops)} GFLOP/s" if fmt.is_num(gflops) else None))
        per_run.append({(name,): {"value": str(v)} for name, v in fields if v is not None})
    return keyed_table("metadata", "Run metadata", ["field"], per_run, labels)


def stages_table(runs, labels):
    per_run = []
    for results in runs:
        rows = {}
        for stage, st in (results.get("stages") or {}).items():
            status = st.get("status", "?")
            rows[(stage,)] = {
                "status": (status, "failed" if status != "ok" else "ok"),
                "wall": fmt.seconds(st.get("wall_s")),
                "error": _short(st.get("error") or st.get("reason")) or fmt.DASH,
            }
            if fmt.is_num(st.get("budget_s")):  # columns shown only where some stage has them
                rows[(stage,)]["budget"] = fmt.seconds(st["budget_s"])
            if fmt.is_num(st.get("peak_rss_mb")):
                rows[(stage,)]["peak RSS"] = f"{st['peak_rss_mb'] / 1024:.2f} GiB"
        per_run.append(rows)
    return keyed_table("stages", "Stages", ["stage"], per_run, labels,
                       columns=["status", "wall", "budget", "peak RSS", "error"],
                       note="A failed stage's sections are missing from this report, not estimated. "
                            "Peak RSS: the process tree's during the stage; budget: its time budget "
                            "([budgets]), where one was set.")


def _short(text, n=300) -> str:
    if not text:
        return ""
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text if len(text) <= n else text[: n - 1] + "…"


def headline_table(runs, labels):
    per_run = [{} for _ in runs]
    for i, results in enumerate(runs):
        for res in headline(results):
            c = res.claim
            k = (c.title, f"MF: {c.textbook_mf}.\nSoftmax: {c.textbook_softmax}.\n"
                          f"Expects {FAMILY_LABEL[c.expected]} ahead.", c.figure)
            per_run[i][k] = {
                "MF (WALS)": _fig(res, "mf"), "Softmax DNN": _fig(res, "softmax"),
                "winner": {"mf": "MF", "softmax": "softmax", "tie": "tie", None: fmt.DASH}[res.winner],
                "verdict": Folded(res.short, "verdict-" + res.verdict.replace(" ", "-"), res.line,
                                  i, f"glance_{c.key}"),
            }
    t = keyed_table("headline", "The textbook table, measured", ["claim", "textbook", "measured as"], per_run,
                    labels, columns=["MF (WALS)", "Softmax DNN", "winner", "verdict"])
    return t


def _fig(res, fam):
    if fam not in res.figures:
        return ("not measured", "fig")
    model = res.models.get(fam)
    return (res.figures[fam] + (f" [{model}]" if model else ""), "fig")


def config_blocks(runs) -> list:
    """(label, pretty JSON) of each run's resolved config."""
    return [(i, json.dumps(r.get("run", {}).get("config", {}), indent=2, sort_keys=True))
            for i, r in enumerate(runs) if r.get("run", {}).get("config")]


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
