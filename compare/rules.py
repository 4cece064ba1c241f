"""What ``compare`` gates on and its default thresholds.

Which figures are higher-is-better quality metrics, which timings are gated (robust
statistics) and which are informational, and the default drop/slowdown/noise-floor thresholds
the CLI and :func:`~mfsoftmax.compare.engine.compare` start from.
"""

from __future__ import annotations

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
EPS = 1e-9  # so that a drop of exactly the threshold is not a float-rounding failure
GOOD_STAGE = {"ok", "done", "success", "passed", "skipped"}
