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
(missing file, invalid JSON, wrong schema_version, no model in common, a NaN, infinite or
out-of-range figure, a --metrics pattern that matches no metric of either run).

--metrics patterns are fnmatch globs or exact names as shown (serving.qps[32]), matched on
the full name or after its section (recall@* matches quality.recall@10).

Examples
--------
  mfsoftmax compare bench/baselines/default-quick.json reports/latest/results.json
  mfsoftmax compare base.json new.json --all
  mfsoftmax compare base.json new.json --format markdown > compare.md
  mfsoftmax compare base.json new.json --metrics 'recall@*' 'serving.*' --max-slowdown 1.3
"""

# The package docstring above is the `mfsoftmax compare --help` text. One job per module:
#   rules.py     what is gated and the default thresholds
#   load.py      reading and validating the two results files (CompareError)
#   rows.py      the data model: Row, CompareResult, the rows a view shows
#   engine.py    compare(): rows, thresholds, verdicts
#   cells.py     value formatting and the header/summary lines the views share
#   text.py      the plain-text view (the default)
#   markdown.py  the GitHub-markdown view
#   jsonout.py   the JSON view
#   cli.py       add_arguments() and main() of `mfsoftmax compare`

from __future__ import annotations

from .cli import add_arguments, main
from .engine import compare
from .jsonout import format_json
from .load import CompareError, load_results, validate
from .markdown import COLUMNS, format_markdown
from .rows import CompareResult, Row, shown_rows
from .rules import (
    DEFAULT_MAX_QUALITY_DROP,
    DEFAULT_MAX_SLOWDOWN,
    DEFAULT_MIN_TIME_S,
    DEFAULT_MIN_TIME_US,
    EPS,
    GATED_TIMINGS,
    GOOD_STAGE,
    HIGHER_BETTER,
    INFO_TIMINGS,
    QPS_KEYS,
    TIMINGS,
)
from .text import MAX_WIDTH, TEXT_CAPS, TEXT_COLUMNS, format_text

__all__ = [
    "COLUMNS", "DEFAULT_MAX_QUALITY_DROP", "DEFAULT_MAX_SLOWDOWN", "DEFAULT_MIN_TIME_S",
    "DEFAULT_MIN_TIME_US", "EPS", "GATED_TIMINGS", "GOOD_STAGE", "HIGHER_BETTER", "INFO_TIMINGS",
    "MAX_WIDTH", "QPS_KEYS", "TEXT_CAPS", "TEXT_COLUMNS", "TIMINGS", "CompareError",
    "CompareResult", "Row", "add_arguments", "compare", "format_json", "format_markdown",
    "format_text", "load_results", "main", "shown_rows", "validate",
]
