"""The comparison engine: two results dicts in, a :class:`CompareResult` out.

Models are lined up by name and each figure becomes one :class:`Row` with its verdict: quality
metrics and cold-start curves gated on an absolute drop, leakage@k on an absolute rise, the
robust timings on a calibration-normalised slowdown above their noise floors; everything else
is informational. Stage statuses, dataset mismatches and files without the robust timings add
rows or warnings. The thresholds are checked here (:class:`CompareError` on a bad one).
"""

from __future__ import annotations

import math
from fnmatch import fnmatch

from .load import CompareError, best_gflops, finite_num, validate
from .rows import CompareResult, Row
from .rules import (
    DEFAULT_MAX_QUALITY_DROP,
    DEFAULT_MAX_SLOWDOWN,
    DEFAULT_MIN_TIME_S,
    DEFAULT_MIN_TIME_US,
    EPS,
    GATED_TIMINGS,
    GOOD_STAGE,
    HIGHER_BETTER,
    QPS_KEYS,
    TIMINGS,
)


class _Ctx:
    def __init__(self, max_quality_drop, max_slowdown, min_time_us, min_time_s,
                 allow_missing, metrics, g_base, g_cur):
        self.max_drop = max_quality_drop
        self.max_slowdown = max_slowdown
        self.floor = {"us": min_time_us, "s": min_time_s}
        self.allow_missing = allow_missing
        self.metrics = metrics
        self.matched: set[str] = set()  # the --metrics patterns that matched some figure
        self.g_base, self.g_cur = g_base, g_cur
        self.rows: list[Row] = []

    def wanted(self, name: str) -> bool:
        if not self.metrics:
            return True
        hits = [p for p in self.metrics if _matches(name, p)]
        self.matched.update(hits)
        return bool(hits)

    def add(self, row: Row) -> None:
        if row.kind == "model" or self.wanted(row.metric):
            self.rows.append(row)

    def missing_or_new(self, model, name, kind, b, c) -> bool:
        """Add a new/missing row when one side lacks the value; True if a row was added."""
        if b is not None and c is None:
            gated = kind != "info"
            fail = gated and not self.allow_missing
            note = "" if gated else "not gated"
            self.add(Row(model, name, kind, b, None, verdict="missing", failed=fail, note=note))
            return True
        if b is None:
            if c is not None:
                self.add(Row(model, name, kind, None, c, verdict="new"))
            return True
        return False

    def higher(self, model, name, b, c) -> None:
        """A quality metric (higher is better), gated on an absolute drop."""
        self._absolute(model, name, "quality", b, c, sign=1)

    def lower(self, model, name, b, c) -> None:
        """Leakage (lower is better), gated on an absolute rise."""
        self._absolute(model, name, "leakage", b, c, sign=-1)

    def _absolute(self, model, name, kind, b, c, sign: int) -> None:
        b, c = finite_num(b), finite_num(c)
        if self.missing_or_new(model, name, kind, b, c):
            return
        d = c - b
        tol = self.max_drop + EPS
        gain = sign * d  # > 0: better
        verdict = "REGRESSION" if gain < -tol else "improved" if gain > tol else "ok"
        self.add(Row(model, name, kind, b, c, d, verdict=verdict, failed=verdict == "REGRESSION"))

    def info(self, model, name, b, c) -> None:
        if isinstance(b, (list, dict)) or isinstance(c, (list, dict)):
            return  # per-epoch/per-round lists: their robust summaries have rows of their own
        bn, cn = finite_num(b), finite_num(c)
        if bn is None and cn is None:
            if b is not None or c is not None:  # e.g. strings
                same = b == c
                if self.missing_or_new(model, name, "info", b, c):
                    return
                self.add(Row(model, name, "info", b, c, verdict="info",
                             note="" if same else "changed"))
            return
        if self.missing_or_new(model, name, "info", bn, cn):
            return
        self.add(Row(model, name, "info", bn, cn, cn - bn, verdict="info"))

    def timing(self, model, name, b, c, unit, tb=None, tc=None, note="", gated=True) -> None:
        """``b``/``c`` are the shown values; ``tb``/``tc`` the times (default: same). A timing
        that is not ``gated`` gets its ratios but the verdict ``info``."""
        b, c = finite_num(b), finite_num(c)
        if self.missing_or_new(model, name, "timing" if gated else "info", b, c):
            return
        tb = b if tb is None else tb
        tc = c if tc is None else tc
        ratio = _ratio(tc, tb)
        if self.g_base and self.g_cur:
            norm = _ratio(tc * self.g_cur, tb * self.g_base)
        else:
            norm = ratio
        floor = self.floor[unit]
        notes = [note] if note else []
        if not gated:
            self.add(Row(model, name, "info", b, c, c - b, ratio, norm, "info", "; ".join(notes)))
            return
        if tb < floor and tc < floor:
            verdict = "ok"
            notes.append(f"< floor {floor:g} {unit}")
        elif norm > self.max_slowdown:
            verdict = "REGRESSION"
        elif norm < 1.0 / self.max_slowdown:
            verdict = "improved"
        else:
            verdict = "ok"
        self.add(Row(model, name, "timing", b, c, c - b, ratio, norm, verdict,
                     "; ".join(notes), failed=verdict == "REGRESSION"))


def _matches(name: str, pattern: str) -> bool:
    """``pattern`` (fnmatch, or the exact name as shown, brackets and all) names the metric
    ``name`` in full or after its section (``recall@*`` matches ``quality.recall@10``)."""
    return (name == pattern or name.endswith("." + pattern)
            or fnmatch(name, pattern) or fnmatch(name, "*." + pattern))


def _check_patterns(ctx: _Ctx, labels) -> None:
    """A ``--metrics`` pattern that matched no figure of either run is a typo (or a glob such
    as ``[``): :class:`CompareError` naming it, never a pass with nothing compared."""
    unmatched = [p for p in ctx.metrics if p not in ctx.matched]
    if unmatched:
        names = ", ".join(repr(p) for p in unmatched)
        raise CompareError(f"--metrics {names} matches no metric of {labels[0]} or {labels[1]} "
                           "(names look like quality.recall@10, serving.p50_min_us, "
                           "training.epoch_thread_min_s; --all without --metrics lists them)")


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return 1.0 if num <= 0 else math.inf


def _is_higher_better(key: str) -> bool:
    """A quality metric (``recall@10``, ...); its standard error (``recall@10_se``) is info."""
    return key.split("@", 1)[0] in HIGHER_BETTER and not key.endswith("_se")


def _section(m: dict, key: str) -> dict:
    v = m.get(key)
    return v if isinstance(v, dict) else {}


def _compare_quality(ctx: _Ctx, name: str, prefix: str, b: dict, c: dict, skip=()) -> None:
    """Higher-is-better metrics are gated; the rest of the keys are shown as info."""
    for key in _keys(b, c):
        if key in skip:
            continue
        if _is_higher_better(key):
            ctx.higher(name, prefix + key, b.get(key), c.get(key))
        else:
            ctx.info(name, prefix + key, b.get(key), c.get(key))


def _compare_model(ctx: _Ctx, name: str, bm: dict, cm: dict) -> None:
    # quality
    bq, cq = _section(bm, "quality"), _section(cm, "quality")
    _compare_quality(ctx, name, "quality.", bq, cq)
    # training
    bt, ct = _section(bm, "training"), _section(cm, "training")
    for key in _keys(bt, ct):
        if key == "curve":
            continue
        full = f"training.{key}"
        if key in TIMINGS["training"]:
            ctx.timing(name, full, bt.get(key), ct.get(key), "s",
                       gated=key in GATED_TIMINGS["training"])
        else:
            ctx.info(name, full, bt.get(key), ct.get(key))
    # serving
    bs, cs = _section(bm, "serving"), _section(cm, "serving")
    mode_note = ""
    if bs.get("mode") != cs.get("mode") and bs and cs:
        mode_note = f"mode {bs.get('mode')} -> {cs.get('mode')}"
    for key in _keys(bs, cs):
        full = f"serving.{key}"
        if key in TIMINGS["serving"]:
            ctx.timing(name, full, bs.get(key), cs.get(key), "us", note=mode_note,
                       gated=key in GATED_TIMINGS["serving"])
        elif key in QPS_KEYS:
            bqps, cqps = _section(bs, key), _section(cs, key)
            for batch in _keys(bqps, cqps):
                _compare_qps(ctx, name, key, batch, bqps.get(batch), cqps.get(batch), mode_note)
        else:
            ctx.info(name, full, bs.get(key), cs.get(key))
    # cold start curves, lined up by n_known
    bc, cc = _section(bm, "cold_start"), _section(cm, "cold_start")
    for side in _keys(bc, cc):
        bcurve, ccurve = _curve(bc.get(side)), _curve(cc.get(side))
        for n in sorted(set(bcurve) | set(ccurve)):
            _compare_quality(ctx, name, f"cold_start.{side}[n_known={n}].",
                             bcurve.get(n, {}), ccurve.get(n, {}), skip=("n_known",))
    # folding
    bf, cf = _section(bm, "folding"), _section(cm, "folding")
    for key in _keys(bf, cf):
        full = f"folding.{key}"
        if key.startswith("leakage@"):
            ctx.lower(name, full, bf.get(key), cf.get(key))
        else:
            ctx.info(name, full, bf.get(key), cf.get(key))


def _compare_qps(ctx, name, key, batch, b, c, mode_note) -> None:
    """qps is higher-better: compare the time per batch (batch / qps), shown as qps. Throughput
    windows are long enough to be preempted, so the rows are informational."""
    b, c = finite_num(b), finite_num(c)
    full = f"serving.{key}[{batch}]"
    if ctx.missing_or_new(name, full, "info", b, c):
        return
    try:
        size = max(1, int(batch))
    except ValueError:
        size = 1
    tb = size / b * 1e6 if b > 0 else math.inf
    tc = size / c * 1e6 if c > 0 else math.inf
    ctx.timing(name, full, b, c, "us", tb, tc, note=mode_note, gated=False)


def _curve(points) -> dict:
    out = {}
    for p in points if isinstance(points, list) else []:
        if isinstance(p, dict) and finite_num(p.get("n_known")) is not None:
            out[int(p["n_known"])] = p
    return out


def _keys(a: dict, b: dict) -> list:
    """Keys of ``a`` in order, then those only in ``b``."""
    return list(a) + [k for k in b if k not in a]


def _compare_stages(ctx: _Ctx, base: dict, cur: dict) -> None:
    bst, cst = _section(base, "stages"), _section(cur, "stages")
    for stage in _keys(bst, cst):
        b, c = bst.get(stage), cst.get(stage)
        b = b if isinstance(b, dict) else {}
        c = c if isinstance(c, dict) else {}
        b_ok = str(b.get("status", "")).lower() in GOOD_STAGE and not b.get("error")
        c_ok = str(c.get("status", "")).lower() in GOOD_STAGE and not c.get("error")
        if not c:
            continue
        if c_ok:
            verdict, failed, note = ("improved", False, "") if b and not b_ok else ("ok", False, "")
        elif b and b_ok:
            verdict, failed, note = "REGRESSION", True, str(c.get("error") or "")[:120]
        else:
            verdict, failed, note = "info", False, str(c.get("error") or "")[:120]
        ctx.add(Row("(run)", f"stages.{stage}", "stage", b.get("status"), c.get("status"),
                    verdict=verdict, note=note, failed=failed))


def _dataset_warnings(base: dict, cur: dict) -> list[str]:
    bd, cd = _section(base, "dataset"), _section(cur, "dataset")
    out = []
    for key in ("name", "protocol", "n_users", "n_items", "n_interactions", "k"):
        if key in bd and key in cd and bd[key] != cd[key]:
            out.append(f"dataset.{key} differs: {bd[key]!r} (baseline) vs {cd[key]!r} (current); "
                       "quality figures may not be comparable")
    return out


def _robust_warnings(baseline: dict, current: dict, labels, common) -> list[str]:
    """One warning per side whose models lack some gated timing (a results file from before
    the robust figures were recorded, or a section not measured): not gated for them."""
    out = []
    for label, data in zip(labels, (baseline, current), strict=True):
        lacks = []
        for section, keys in GATED_TIMINGS.items():
            for key in keys:
                n = sum(1 for m in common
                        if isinstance(data["models"].get(m), dict)
                        and isinstance(data["models"][m].get(section), dict)
                        and finite_num(data["models"][m][section].get(key)) is None)
                if n:
                    lacks.append(f"{section}.{key} ({n} model(s))")
        if lacks:
            out.append(f"{label} lacks {', '.join(lacks)}: not gated there (a file from before "
                       "robust timings were recorded?)")
    return out


def compare(baseline: dict, current: dict, max_quality_drop: float = DEFAULT_MAX_QUALITY_DROP,
            max_slowdown: float = DEFAULT_MAX_SLOWDOWN, *, min_time_us: float = DEFAULT_MIN_TIME_US,
            min_time_s: float = DEFAULT_MIN_TIME_S,
            allow_missing: bool = False, metrics=None, labels=("baseline", "current")
            ) -> CompareResult:
    """Compare two results dicts (docs/results.md contract).

    Parameters
    ----------
    baseline, current : dict
        Parsed results.json contents.
    max_quality_drop : float
        Largest allowed absolute drop of a quality metric (and rise of leakage@k).
    max_slowdown : float
        Largest allowed ratio of calibration-normalised times (current / baseline), >= 1.
    min_time_us, min_time_s : float
        Noise floors: a timing below its floor in both runs is never a regression.
    allow_missing : bool
        Do not fail on models/metrics that the current run lacks.
    metrics : list of str, optional
        fnmatch patterns on metric names (``quality.recall@10``, ``recall@*``, ``serving.*``).
    labels : (str, str)
        Names for the two inputs in error messages.

    Returns
    -------
    CompareResult

    Raises
    ------
    CompareError
        Bad schema, bad thresholds, or no model in common.
    """
    validate(baseline, labels[0])
    validate(current, labels[1])
    if not (finite_num(max_quality_drop) is not None and max_quality_drop >= 0):
        raise CompareError(f"--max-quality-drop must be >= 0, got {max_quality_drop!r}")
    if not (finite_num(max_slowdown) is not None and max_slowdown >= 1):
        raise CompareError(f"--max-slowdown must be >= 1 (a ratio), got {max_slowdown!r}")
    for pname, v in (("--min-time-us", min_time_us), ("--min-time-s", min_time_s)):
        if finite_num(v) is None or v < 0:
            raise CompareError(f"{pname} must be >= 0, got {v!r}")
    bmodels, cmodels = baseline["models"], current["models"]
    common = [m for m in bmodels if m in cmodels]
    if not common:
        raise CompareError(f"no model in common between {labels[0]} ({sorted(bmodels)}) "
                           f"and {labels[1]} ({sorted(cmodels)})")
    g_base, g_cur = best_gflops(baseline), best_gflops(current)
    ctx = _Ctx(max_quality_drop, max_slowdown, min_time_us, min_time_s, allow_missing,
               list(metrics or []), g_base, g_cur)
    warnings = _dataset_warnings(baseline, current)
    if not (g_base and g_cur):
        side = " and ".join(lbl for lbl, g in zip(labels, (g_base, g_cur), strict=True) if not g)
        warnings.append(f"no run.calibration.matmul_gflops in {side}: timings compared raw")
    _compare_stages(ctx, baseline, current)
    warnings += _robust_warnings(baseline, current, labels, common)
    for name in bmodels:
        if name not in cmodels:
            ctx.add(Row(name, "(model)", "model", "present", None, verdict="missing",
                        failed=not allow_missing,
                        note="allowed (--allow-missing)" if allow_missing else ""))
            continue
        bm, cm = bmodels[name], cmodels[name]
        _compare_model(ctx, name, bm if isinstance(bm, dict) else {},
                       cm if isinstance(cm, dict) else {})
    for name in cmodels:
        if name not in bmodels:
            ctx.add(Row(name, "(model)", "model", None, "present", verdict="new"))
    _check_patterns(ctx, labels)
    settings = {"max_quality_drop": max_quality_drop, "max_slowdown": max_slowdown,
                "min_time_us": min_time_us, "min_time_s": min_time_s,
                "allow_missing": allow_missing, "metrics": list(metrics or [])}
    calibration = {"baseline_gflops": g_base, "current_gflops": g_cur,
                   "normalised": bool(g_base and g_cur),
                   "machine_speed_ratio": (g_cur / g_base) if g_base and g_cur else None}
    return CompareResult(ctx.rows, settings, calibration, warnings)
