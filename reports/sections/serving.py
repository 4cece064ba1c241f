"""Serving: each model's latency on the production path and the generic API, its floor, its
throughput, and the headline's serving claim, judged per request and at every corpus size of
the ``serving_vs_corpus`` sweep at the same recall (that sweep's tables and plots are
:mod:`~mfsoftmax.reports.sections.serving_corpus`).
"""

from __future__ import annotations

from functools import partial

from mfsoftmax.reports import fmt
from mfsoftmax.reports.colors import model_color
from mfsoftmax.reports.judge import (
    COST_RATIO,
    SERVING_RECALL,
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
from mfsoftmax.results.vocabulary import COMPARED, SWEEP_NAME, family_of

KEY = "serving"
TITLE = "Serving"
INTRO = ""
CLAIMS = (
    Claim("serving", "Serving scalability", "U, V static; candidates precomputable",
          "query embedding computed at request time", "mf",
          "p50 latency per query on the production path (lean single-query path, the DNN's "
          "tower through its fastest correct runtime)", row=80),
)
PLOTS = ()


# ----------------------------------------------------------------------------- figures
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


def serving_row(results: dict, name: str) -> dict:
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
        prof = serving_row(results, row.get("source_model") or "")
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
        if fam not in COMPARED:
            continue
        rec = r.get("recall_vs_exact", 1.0 if r.get("index", "exact") == "exact" else None)
        if not fmt.is_num(rec):
            continue
        by.setdefault(int(r["n_items"]), {}).setdefault(fam, []).append((float(rec), r))
    out = {}
    for n, fams in sorted(by.items()):
        if not all(f in fams for f in COMPARED):
            continue
        r_star = min(target, *(max(rec for rec, _ in fams[f]) for f in COMPARED))
        entry = {"recall": r_star}
        for f in COMPARED:
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


# ----------------------------------------------------------------------------- headline
def judge(claim: Claim, results: dict) -> ClaimResult:
    """The headline row: each family's p50 on the production path, and whether the gap holds
    at every corpus size of the ``serving_vs_corpus`` sweep at the same recall."""
    paths = {}

    def val(n, m):
        v, label = served_p50(m.get("serving") or {})
        paths[n] = label
        return v

    def figure(n, v):
        mode = serving_row(results, n).get("mode")
        return f"{fmt.micros(v)} ({paths.get(n) or 'p50'}" + (f"; {mode})" if mode else ")")

    best, figures, models = best_per_family(results, val, min, figure)
    # The corpus sweep says whether the gap holds as the catalogue grows, at the same recall.
    at = serving_at_recall(results)
    size_signs = {n: cost_gap(e["mf"]["total_us"], e["softmax"]["total_us"]) for n, e in at.items()}
    if len(best) < 2:
        if not size_signs:
            return missing(claim, figures, models, "serving latency for both families")
        n_max = max(size_signs)
        best = {f: (SWEEP_NAME[f], at[n_max][f]["total_us"]) for f in COMPARED}
        figures = {f: f"{fmt.micros(v)} @ {fmt.count(n_max)} items" for f, (_, v) in best.items()}
        models = {f: SWEEP_NAME[f] for f in COMPARED}
    (mf_n, mf_v), (sm_n, sm_v) = best["mf"], best["softmax"]
    sign, ratio = cost_gap(mf_v, sm_v)
    winner = winner_of(sign)
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
                + precision_note(results, {mf_n: None, sm_n: None}, partial(_precision_words, results))
                + _flag_note(results, (mf_n, sm_n)))
        return ClaimResult(claim, figures, models, winner, "depends", text)
    base = (f"p50 {fmt.micros(mf_v)} ({mf_n}, {paths.get(mf_n) or 'p50'}) vs {fmt.micros(sm_v)} "
            f"({sm_n}, {paths.get(sm_n) or 'p50'}), {ratio:.1f}x"
            + precision_note(results, {mf_n: None, sm_n: None}, partial(_precision_words, results))
            + _flag_note(results, (mf_n, sm_n)))
    generic = [serving_row(results, n).get("p50_us") for n in (mf_n, sm_n)]
    if all(fmt.is_num(g) for g in generic) and any(paths.get(n, "").startswith("lean") for n in (mf_n, sm_n)):
        base += f" (generic recommend {fmt.micros(generic[0])} vs {fmt.micros(generic[1])})"
    if size_signs:
        base += f"; same at every corpus size to {fmt.count(max(size_signs))} ({corpus})"
    parts = _serving_parts(results, mf_n, sm_n)
    if parts:
        base += "; " + parts
    verdict, text = verdict_of(claim, winner, f"MF cheaper to serve: {base}",
                           f"within {COST_RATIO:g}x: {base}", f"softmax cheaper to serve: {base}")
    return ClaimResult(claim, figures, models, winner, verdict, text)


def _flag_note(results: dict, names) -> str:
    """``"; FLAGGED dnn: ..."`` for a judged serving row whose lean path the serving stage
    flagged (``flags``: its steps slowed each other down), else empty."""
    notes = [f"{n}: {'; '.join(serving_row(results, n)['flags'])}" for n in names
             if serving_row(results, n).get("flags")]
    return "; FLAGGED " + "; ".join(notes) if notes else ""


def _precision_words(results: dict, name: str, p: str) -> str:
    """One judged model's precision in the serving verdict: the query tower's with the
    scoring's (fp32: the lean path scores in float32), and the fastest reduced-precision
    scoring the run measured beside it (``score_precision``: p50 and recall@k vs fp32)."""
    fam = family_of(name, results)
    text = f"{p} tower, fp32 scoring ({name})" if fam == "softmax" else f"fp32 ({name})"
    sp = serving_row(results, name).get("score_precision") or {}
    fast = min(((v.get("p50_us"), k, v) for k, v in sp.items()
                if k != "fp32" and fmt.is_num(v.get("p50_us"))), default=None,
               key=lambda t: t[0])
    if fast is not None and fmt.is_num((sp.get("fp32") or {}).get("p50_us")):
        rec = next((v for k, v in fast[2].items() if k.startswith("recall@")), None)
        text += (f" [scoring {fast[1]} {fmt.micros(fast[0])} vs fp32 "
                 f"{fmt.micros(sp['fp32']['p50_us'])}"
                 + (f", recall {rec:.3f}" if fmt.is_num(rec) else "") + "]")
    return text


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
               for f in COMPARED}
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
        prof = serving_row(results, name)
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


# ----------------------------------------------------------------------------- tables
def tables(runs, labels) -> list:
    """Latency and throughput per model and mode."""
    return [serving_table(runs, labels)]


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


# ----------------------------------------------------------------------------- sparkline
def sparkline(res, results):
    """Latency against corpus size at the same recall (the corpus sweep), else each family's
    p50 on the production path as a bar."""
    from mfsoftmax.reports import glance  # lazy: matplotlib, off the headline

    at = serving_at_recall(results)
    if len(at) >= 2:
        series = [(glance.SHORT[f], list(at), [e[f]["total_us"] for e in at.values()],
                   model_color(SWEEP_NAME[f])) for f in COMPARED]
        rec = min(e["recall"] for e in at.values())
        return glance.lines(series, f"corpus items, recall@10 ≥ {rec:.2f} (log-log)", fmt.micros, log=True)
    items = []
    for fam in COMPARED:
        v, _ = served_p50(glance.entry(results, res.models.get(fam)).get("serving"))
        if v is not None:
            items.append((glance.SHORT[fam], v, None, model_color(res.models[fam])))
    return glance.bars(items, fmt.micros) if len(items) == 2 else None


SPARKLINES = {"serving": sparkline}
