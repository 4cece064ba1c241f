"""Compare two results.json files (a stored baseline and a new run); exit 1 on a regression.

Models are lined up by name. Each row holds one metric of one model: baseline, current,
delta and a verdict (ok / improved / REGRESSION / new / missing / info).

Gated (can fail the comparison):
  quality      recall/ndcg/precision/hr/map/mrr@k and coverage@k, plus the cold-start curves
               (cold_start.users/items, by n_known): REGRESSION when the value drops by more
               than --max-quality-drop (absolute).
  folding      leakage@k (lower is better): REGRESSION when it rises by more than
               --max-quality-drop.
  timings      robust statistics only: serving.p50_min_us (the fastest of several interleaved
               rounds' median latency) and training.epoch_thread_min_s (the fastest epoch's CPU
               time of the fitting thread): REGRESSION when the time grows by more than
               --max-slowdown (a ratio). Times are normalised by each run's best matmul
               calibration (run.calibration.matmul_gflops and matmul_gflops_samples; time x
               GFLOP/s = work units), so a baseline from a faster machine does not fail a slower
               one; the raw ratio is shown too. Timings where both values are under the floor
               (--min-time-us for latencies, --min-time-s for training) are never regressions.
  models       a model in the baseline but not in the current run (unless --allow-missing).
Informational (shown with their ratios, never failing): tail latencies (p95/p99/mean, pooled
p50), throughput (qps, read as time per batch), single wall/CPU times of a whole fit, avg_pop@k,
peak_rss_mb, epochs, other folding figures, new models/metrics. They are noise on a shared
machine: one preemption is milliseconds.

Output: a header, the summary counts and only the rows that need a look (REGRESSION, missing,
improved, new models); --all shows every row. Long values are cut so that no line is wider
than 100 columns; --format json holds every row with full values.

Exit status: 0 no regression, 1 regression (or missing model/metric), 2 unusable input
(missing file, invalid JSON, wrong schema_version, no model in common).

Examples
--------
  mfsoftmax compare bench/baselines/default-quick.json reports/latest/results.json
  mfsoftmax compare base.json new.json --all
  mfsoftmax compare base.json new.json --format markdown > compare.md
  mfsoftmax compare base.json new.json --metrics 'recall@*' 'serving.*' --max-slowdown 1.3
"""

from __future__ import annotations

import json
import math
import sys
import textwrap
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatch
from pathlib import Path

from .schema import ensure_valid, read_results

HIGHER_BETTER = ("recall", "ndcg", "precision", "hr", "map", "mrr", "coverage")
# section -> {key: unit}; lower is better. Gated: robust statistics of repeated measurements.
GATED_TIMINGS = {
    "training": {"epoch_thread_min_s": "s"},
    "serving": {"p50_min_us": "us"},
}
# shown with their ratios, never failing: tails, pooled figures and single measurements
INFO_TIMINGS = {
    "training": {"wall_s": "s", "cpu_s": "s", "eval_s": "s", "epoch_wall_min_s": "s",
                 "epoch_cpu_min_s": "s", "epoch_thread_median_s": "s"},
    "serving": {"p50_us": "us", "p95_us": "us", "p99_us": "us", "mean_us": "us"},
}
TIMINGS = {sec: {**GATED_TIMINGS[sec], **INFO_TIMINGS[sec]} for sec in GATED_TIMINGS}
QPS_KEYS = ("qps", "qps_median")  # batch size -> queries/s; informational (time per batch)

# Defaults, measured on a loaded 2-core runner (README "Regression tracking"): the same commit
# against itself, quiet and under two busy processes, read up to x1.47 on the gated timings
# (training epochs under load; serving up to x1.28), a real 2x slowdown x1.9-2.3.
DEFAULT_MAX_QUALITY_DROP = 0.02
DEFAULT_MAX_SLOWDOWN = 1.6
DEFAULT_MIN_TIME_US = 20.0
DEFAULT_MIN_TIME_S = 0.001
MAX_WIDTH = 100  # text output: no line is wider
EPS = 1e-9  # so that a drop of exactly the threshold is not a float-rounding failure
GOOD_STAGE = {"ok", "done", "success", "passed", "skipped"}


class CompareError(ValueError):
    """Unusable input (the message names the file or parameter)."""


@dataclass
class Row:
    """One compared figure. ``ratio``/``norm_ratio`` are slowdowns (>1 = slower), timings only."""

    model: str
    metric: str  # full name, e.g. "quality.recall@10", "serving.qps[32]"
    kind: str  # quality | leakage | timing | info | stage | model
    baseline: float | str | None = None
    current: float | str | None = None
    delta: float | None = None
    ratio: float | None = None
    norm_ratio: float | None = None
    verdict: str = "ok"
    note: str = ""
    failed: bool = False


@dataclass
class CompareResult:
    """Rows plus the overall verdict; ``exit_code`` is 0 (pass) or 1 (regression)."""

    rows: list[Row]
    settings: dict
    calibration: dict
    warnings: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if r.failed]

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0

    @property
    def verdict(self) -> str:
        return "FAIL" if self.failures else "PASS"

    def counts(self) -> dict:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.verdict] = out.get(r.verdict, 0) + 1
        return out

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "exit_code": self.exit_code, "settings": self.settings,
                "calibration": self.calibration, "warnings": self.warnings,
                "counts": self.counts(), "rows": [asdict(r) for r in self.rows]}


# ---------------------------------------------------------------- loading and validation


def load_results(path: str | Path) -> dict:
    """Read and validate one results.json; :class:`CompareError` naming the file on bad input."""
    data = read_results(path, CompareError)
    validate(data, str(path))
    return data


def validate(data, label: str = "results") -> None:
    """Check ``data`` against the results contract (docs/results.md; the one validator of
    bench/schema.py, read as partial: absent figures become missing rows) plus what compare
    needs."""
    ensure_valid(data, label, CompareError, partial=True)
    if not isinstance(data.get("models"), dict):
        raise CompareError(f"{label}: no 'models' object")


def _num(v) -> float | None:
    """A finite float, or None (absent, null, NaN, not a number)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _gflops(data: dict) -> float | None:
    """The run's robust calibration: the best of ``matmul_gflops`` and every sample in
    ``matmul_gflops_samples`` (a busy machine only ever makes a sample slower)."""
    cal = (data.get("run") or {}).get("calibration") or {}
    samples = cal.get("matmul_gflops_samples")
    values = [cal.get("matmul_gflops"), *(samples if isinstance(samples, list) else [])]
    good = [g for g in map(_num, values) if g is not None and g > 0]
    return max(good) if good else None


# ---------------------------------------------------------------- comparison


class _Ctx:
    def __init__(self, max_quality_drop, max_slowdown, min_time_us, min_time_s,
                 allow_missing, metrics, g_base, g_cur):
        self.max_drop = max_quality_drop
        self.max_slowdown = max_slowdown
        self.floor = {"us": min_time_us, "s": min_time_s}
        self.allow_missing = allow_missing
        self.metrics = metrics
        self.g_base, self.g_cur = g_base, g_cur
        self.rows: list[Row] = []

    def wanted(self, name: str) -> bool:
        if not self.metrics:
            return True
        return any(fnmatch(name, p) or fnmatch(name, "*." + p) for p in self.metrics)

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
        b, c = _num(b), _num(c)
        if self.missing_or_new(model, name, "quality", b, c):
            return
        d = c - b
        tol = self.max_drop + EPS
        verdict = "REGRESSION" if d < -tol else "improved" if d > tol else "ok"
        self.add(Row(model, name, "quality", b, c, d, verdict=verdict,
                     failed=verdict == "REGRESSION"))

    def lower(self, model, name, b, c) -> None:
        b, c = _num(b), _num(c)
        if self.missing_or_new(model, name, "leakage", b, c):
            return
        d = c - b
        tol = self.max_drop + EPS
        verdict = "REGRESSION" if d > tol else "improved" if d < -tol else "ok"
        self.add(Row(model, name, "leakage", b, c, d, verdict=verdict,
                     failed=verdict == "REGRESSION"))

    def info(self, model, name, b, c) -> None:
        if isinstance(b, (list, dict)) or isinstance(c, (list, dict)):
            return  # per-epoch/per-round lists: their robust summaries have rows of their own
        bn, cn = _num(b), _num(c)
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
        b, c = _num(b), _num(c)
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
    b, c = _num(b), _num(c)
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
        if isinstance(p, dict) and _num(p.get("n_known")) is not None:
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
                        and _num(data["models"][m][section].get(key)) is None)
                if n:
                    lacks.append(f"{section}.{key} ({n} model(s))")
        if lacks:
            out.append(f"{label} lacks {', '.join(lacks)}: not gated there (a file from before "
                       "robust timings were recorded?)")
    return out


def _short_list(names, n: int = 3) -> str:
    names = list(names)
    return ", ".join(names[:n]) + (f", ... (+{len(names) - n})" if len(names) > n else "")


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
    if not (_num(max_quality_drop) is not None and max_quality_drop >= 0):
        raise CompareError(f"--max-quality-drop must be >= 0, got {max_quality_drop!r}")
    if not (_num(max_slowdown) is not None and max_slowdown >= 1):
        raise CompareError(f"--max-slowdown must be >= 1 (a ratio), got {max_slowdown!r}")
    for pname, v in (("--min-time-us", min_time_us), ("--min-time-s", min_time_s)):
        if _num(v) is None or v < 0:
            raise CompareError(f"{pname} must be >= 0, got {v!r}")
    bmodels, cmodels = baseline["models"], current["models"]
    common = [m for m in bmodels if m in cmodels]
    if not common:
        raise CompareError(f"no model in common between {labels[0]} ({sorted(bmodels)}) "
                           f"and {labels[1]} ({sorted(cmodels)})")
    g_base, g_cur = _gflops(baseline), _gflops(current)
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
    settings = {"max_quality_drop": max_quality_drop, "max_slowdown": max_slowdown,
                "min_time_us": min_time_us, "min_time_s": min_time_s,
                "allow_missing": allow_missing, "metrics": list(metrics or [])}
    calibration = {"baseline_gflops": g_base, "current_gflops": g_cur,
                   "normalised": bool(g_base and g_cur),
                   "machine_speed_ratio": (g_cur / g_base) if g_base and g_cur else None}
    return CompareResult(ctx.rows, settings, calibration, warnings)


# ---------------------------------------------------------------- rendering

def shown_rows(res: CompareResult, show_all: bool = False) -> list[Row]:
    """The rows of the default view (REGRESSION, missing, improved, failures and new models),
    or every row with ``show_all``. New metrics of a common model are counted, not listed."""
    if show_all:
        return list(res.rows)
    return [r for r in res.rows if r.failed or r.verdict in ("REGRESSION", "improved")
            or (r.verdict == "missing" and r.kind != "info")
            or (r.verdict == "new" and r.kind == "model")]


def _cut(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the cut marked with '~'."""
    text = " ".join(str(text).split())  # no newlines or runs of spaces inside a cell
    return text if len(text) <= width else text[:max(0, width - 1)] + "~"


def _fmt(v, width: int = 12) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, str):
        return _cut(v, width)
    if not isinstance(v, (int, float)):
        return _cut(json.dumps(v, default=str), width)
    if math.isinf(v):
        return "inf"
    if abs(v) >= 1e6:
        return f"{v:.3g}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.4g}"


def _fmt_delta(r: Row) -> str:
    if r.delta is None:
        return "-"
    return ("+" if r.delta >= 0 else "") + (f"{r.delta:.4f}" if r.kind in ("quality", "leakage")
                                            else _fmt(r.delta))


def _fmt_ratio(v) -> str:
    return "-" if v is None else f"x{v:.2f}" if math.isfinite(v) else "x inf"


def _change(r: Row) -> str:
    """Timings: the normalised ratio; everything else: the delta."""
    return _fmt_ratio(r.norm_ratio) if r.norm_ratio is not None else _fmt_delta(r)


COLUMNS = ("model", "metric", "baseline", "current", "delta", "raw ratio", "norm ratio",
           "verdict", "note")
TEXT_COLUMNS = ("metric", "baseline", "current", "change", "raw", "verdict", "note")
TEXT_CAPS = (44, 10, 10, 9, 7, 10)  # widest cell of each column but the note


def _cells(r: Row, width: int = 12) -> list[str]:
    """Markdown cells (values cut to ``width``; notes to 60)."""
    return [r.model, r.metric, _fmt(r.baseline, width), _fmt(r.current, width), _fmt_delta(r),
            _fmt_ratio(r.ratio), _fmt_ratio(r.norm_ratio), r.verdict, _cut(r.note, 60)]


def _text_cells(r: Row) -> list[str]:
    cells = [r.metric, _fmt(r.baseline, TEXT_CAPS[1]), _fmt(r.current, TEXT_CAPS[2]), _change(r),
             _fmt_ratio(r.ratio) if r.ratio is not None else "", r.verdict]
    return [_cut(c, w) for c, w in zip(cells, TEXT_CAPS, strict=True)] + [r.note]


def _gated_names() -> str:
    return ", ".join(f"{sec}.{k}" for sec, keys in GATED_TIMINGS.items() for k in keys)


def _header_lines(res: CompareResult, labels) -> list[str]:
    s, cal = res.settings, res.calibration
    lines = [f"baseline: {labels[0]}", f"current:  {labels[1]}",
             f"thresholds: quality drop > {s['max_quality_drop']:g} (absolute), leakage rise > "
             f"{s['max_quality_drop']:g}, slowdown > x{s['max_slowdown']:g} (normalised)",
             f"gated timings: {_gated_names()}; tails, walls and qps are info",
             f"noise floors: below {s['min_time_us']:g} us (latency) or {s['min_time_s']:g} s "
             "(training epoch) in both runs is not a regression"]
    if cal["normalised"]:
        lines.append(f"calibration: baseline {cal['baseline_gflops']:.1f} GFLOP/s, current "
                     f"{cal['current_gflops']:.1f} GFLOP/s (best samples); change = normalised "
                     "time ratio, raw = time ratio")
    return lines + [f"warning: {w}" for w in res.warnings]


def _summary(res: CompareResult) -> str:
    counts = res.counts()
    parts = ", ".join(f"{counts[k]} {k}" for k in
                      ("REGRESSION", "missing", "improved", "new", "ok", "info") if k in counts)
    n_fail = len(res.failures)
    head = f"FAIL: {n_fail} failing row(s)" if n_fail else "PASS: no regression"
    return f"{head} ({parts})"


def _fit(line: str, width: int = MAX_WIDTH) -> str:
    return line if len(line) <= width else line[:width - 1] + "~"


def _wrap(lines, width: int = MAX_WIDTH) -> list[str]:
    """Header lines wrapped (not cut) to ``width``, continuation lines indented."""
    out = []
    for line in lines:
        out += textwrap.wrap(line, width, subsequent_indent="    ", break_on_hyphens=False,
                             break_long_words=True) or [""]
    return out


def _new_metrics_line(res: CompareResult, rows: list[Row]) -> list[str]:
    """One line each counting the new metrics and the missing informational ones left out."""
    shown = {id(r) for r in rows}
    out = []
    for verdict, what in (("new", "new metric row(s) not in the baseline"),
                          ("missing", "informational row(s) missing from the current run")):
        hidden = [r for r in res.rows if r.verdict == verdict and r.kind != "model"
                  and id(r) not in shown]
        if hidden:
            names = list(dict.fromkeys(r.metric for r in hidden))
            out.append(f"{len(hidden)} {what}: {_short_list(names)}")
    return out


def format_text(res: CompareResult, labels=("baseline", "current"), changes_only=False,
                show_all=False) -> str:
    """Plain-text view: header, summary, then the rows that need a look grouped by model
    (every row with ``show_all``, unless ``changes_only``); no line is wider than
    ``MAX_WIDTH``."""
    show_all = show_all and not changes_only
    rows = shown_rows(res, show_all)
    out = _wrap(_header_lines(res, labels))
    out += [""] + _wrap([_summary(res), *_new_metrics_line(res, rows)])
    if not rows:
        hidden = len(res.rows)
        out.append(f"no row to show ({hidden} row(s) ok or info; --all lists them)")
        return "\n".join(out) + "\n"
    table = [list(TEXT_COLUMNS[:-1])] + [_text_cells(r)[:-1] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(TEXT_COLUMNS) - 1)]
    indent = "  "

    def line(cells, note=""):
        body = indent + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
        if note:
            room = MAX_WIDTH - len(body) - 2
            body = body + "  " + _cut(note, room) if room >= 8 else body
        return _fit(body.rstrip())

    out += ["", line(TEXT_COLUMNS[:-1], "note"),
            _fit(indent + "  ".join("-" * w for w in [*widths, 4]))]
    model = None
    for r in rows:
        if r.model != model:
            model = r.model
            out.append(_fit(model))
        cells = _text_cells(r)
        out.append(line(cells[:-1], cells[-1]))
    if not show_all:
        out += ["", f"showing {len(rows)} of {len(res.rows)} rows; --all lists every row"]
    return "\n".join(out) + "\n"


def _md_table(rows: list[Row]) -> list[str]:
    def esc(c: str) -> str:
        return c.replace("|", "\\|")

    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = _cells(r)
        if r.failed:
            cells[7] = f"**{cells[7]}**"
        out.append("| " + " | ".join(esc(c) for c in cells) + " |")
    return out


def format_markdown(res: CompareResult, labels=("baseline", "current"), changes_only=False,
                    show_all=False) -> str:
    """GitHub markdown: summary, the rows that need a look, then (with ``show_all``) every row
    in a <details> block."""
    icon = ":x:" if res.failures else ":white_check_mark:"
    out = ["<!-- mfsoftmax-compare -->", f"### {icon} mfsoftmax compare: {_summary(res)}", ""]
    out += [f"- {line}" for line in _header_lines(res, labels)]
    out += [f"- {line}" for line in _new_metrics_line(res, shown_rows(res))] + [""]
    changed = shown_rows(res)
    if changed:
        out += ["**Regressions, missing, improved and new models**", ""] + _md_table(changed) + [""]
    if show_all and not changes_only:
        out += [f"<details><summary>All {len(res.rows)} rows</summary>", ""]
        out += _md_table(res.rows) + ["", "</details>"]
    else:
        out += [f"{len(changed)} of {len(res.rows)} rows shown (`--all` adds every row)."]
    return "\n".join(out) + "\n"


def format_json(res: CompareResult, labels=("baseline", "current")) -> str:
    """The result as JSON, every row with full values (infinite ratios become null)."""
    d = res.to_dict()
    d["baseline"], d["current"] = labels
    for row in d["rows"]:
        for key in ("ratio", "norm_ratio", "delta", "baseline", "current"):
            v = row[key]
            if isinstance(v, float) and not math.isfinite(v):
                row[key] = None
    return json.dumps(d, indent=2) + "\n"


# ---------------------------------------------------------------- CLI


def add_arguments(p) -> None:
    p.add_argument("baseline", help="results.json of the reference run (e.g. a stored baseline)")
    p.add_argument("current", help="results.json of the run to check")
    p.add_argument("--max-quality-drop", type=float, default=DEFAULT_MAX_QUALITY_DROP,
                   metavar="ABS", help="largest allowed absolute drop of a quality metric "
                                       f"(default {DEFAULT_MAX_QUALITY_DROP:g})")
    p.add_argument("--max-slowdown", type=float, default=DEFAULT_MAX_SLOWDOWN, metavar="RATIO",
                   help="largest allowed normalised ratio current/baseline of a gated timing "
                        f"(default {DEFAULT_MAX_SLOWDOWN:g})")
    p.add_argument("--min-time-us", type=float, default=DEFAULT_MIN_TIME_US, metavar="US",
                   help=f"latency noise floor in microseconds (default {DEFAULT_MIN_TIME_US:g})")
    p.add_argument("--min-time-s", type=float, default=DEFAULT_MIN_TIME_S, metavar="S",
                   help="training-epoch noise floor in seconds "
                        f"(default {DEFAULT_MIN_TIME_S:g})")
    p.add_argument("--allow-missing", action="store_true",
                   help="do not fail on models or metrics missing from the current run")
    p.add_argument("--metrics", nargs="+", default=None, metavar="PATTERN",
                   help="only compare metrics matching these fnmatch patterns, "
                        "e.g. 'recall@*' 'serving.*' 'quality.ndcg@10'")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text",
                   help="output format (default text; json always holds every row)")
    p.add_argument("--all", "--verbose", "-v", dest="show_all", action="store_true",
                   help="show every row (default: only regressions, missing, improved rows and "
                        "new models)")
    p.add_argument("--changes-only", action="store_true",
                   help="only the rows that need a look (the default; overrides --all)")


def main(args) -> int:
    labels = (str(args.baseline), str(args.current))
    try:
        base = load_results(args.baseline)
        cur = load_results(args.current)
        res = compare(base, cur, args.max_quality_drop, args.max_slowdown,
                      min_time_us=args.min_time_us, min_time_s=args.min_time_s,
                      allow_missing=args.allow_missing, metrics=args.metrics, labels=labels)
    except CompareError as exc:
        print(f"mfsoftmax compare: error: {exc}", file=sys.stderr)
        return 2
    show_all = bool(getattr(args, "show_all", False)) and not args.changes_only
    if args.format == "json":
        text = format_json(res, labels)
    elif args.format == "markdown":
        text = format_markdown(res, labels, show_all=show_all)
    else:
        text = format_text(res, labels, show_all=show_all)
    sys.stdout.write(text)
    if res.failures:
        print(f"mfsoftmax compare: {len(res.failures)} failing row(s) (regression or missing) "
              f"against {labels[0]}", file=sys.stderr)
    return res.exit_code
