"""What the three formatters share: value formatting and the header and summary lines.

Values are cut to a width (the cut marked with ``~``), deltas signed, ratios written ``x1.23``;
the header names the inputs, thresholds, calibration and warnings; the summary counts the
verdicts.
"""

from __future__ import annotations

import json
import math

from .rows import CompareResult, Row
from .rules import GATED_TIMINGS


def cut(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the cut marked with '~'."""
    text = " ".join(str(text).split())  # no newlines or runs of spaces inside a cell
    return text if len(text) <= width else text[:max(0, width - 1)] + "~"


def fmt_value(v, width: int = 12) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, str):
        return cut(v, width)
    if not isinstance(v, (int, float)):
        return cut(json.dumps(v, default=str), width)
    if math.isinf(v):
        return "inf"
    if abs(v) >= 1e6:
        return f"{v:.3g}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.4g}"


def fmt_delta(r: Row) -> str:
    if r.delta is None:
        return "-"
    return ("+" if r.delta >= 0 else "") + (f"{r.delta:.4f}" if r.kind in ("quality", "leakage")
                                            else fmt_value(r.delta))


def fmt_ratio(v) -> str:
    return "-" if v is None else f"x{v:.2f}" if math.isfinite(v) else "x inf"


def change(r: Row) -> str:
    """Timings: the normalised ratio; everything else: the delta."""
    return fmt_ratio(r.norm_ratio) if r.norm_ratio is not None else fmt_delta(r)


def _gated_names() -> str:
    return ", ".join(f"{sec}.{k}" for sec, keys in GATED_TIMINGS.items() for k in keys)


def header_lines(res: CompareResult, labels) -> list[str]:
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


def summary_line(res: CompareResult) -> str:
    counts = res.counts()
    parts = ", ".join(f"{counts[k]} {k}" for k in
                      ("REGRESSION", "missing", "improved", "new", "ok", "info") if k in counts)
    n_fail = len(res.failures)
    head = f"FAIL: {n_fail} failing row(s)" if n_fail else "PASS: no regression"
    return f"{head} ({parts})"


def new_metrics_lines(res: CompareResult, rows: list[Row]) -> list[str]:
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


def _short_list(names, n: int = 3) -> str:
    names = list(names)
    return ", ".join(names[:n]) + (f", ... (+{len(names) - n})" if len(names) > n else "")
