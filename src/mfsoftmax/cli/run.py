"""Run the benchmark suite: both families plus the popularity baseline on one dataset and one
split; measure quality, training cost, serving, query-feature ablation, cold start, folding and
the scaling sweeps; write results.json (and the report) atomically.

Examples
--------
  mfsoftmax run                                   # default config: synthetic planted groups
  mfsoftmax run --quick                           # smoke run (small data at any catalogue size)
  mfsoftmax run --config ml-100k --data-dir ../shared/datasets
  mfsoftmax run --config scale                    # the scaling sweeps
  mfsoftmax run --models popularity wals --stages quality,serving --set tuning.trials=8

Exit status: 0 when every stage succeeded, 1 when a stage failed (results still written, the
stage marked failed, or results.json could not be written), 2 on a bad config, dataset or
--out (or an --out another run is writing), 130 when interrupted (Ctrl-C), 143 on SIGTERM, 129
on SIGHUP. results.json is rewritten atomically after every stage, so a killed run keeps every
stage it finished. Each run claims its own folder atomically: two runs never share one.
"""

# (not in the docstring, which is `mfsoftmax run --help`) The command composes the writer and the
# readers: the suite (mfsoftmax.bench.suite) runs the stages and writes results.json; this module
# hands it the report renderer and the terminal headline (mfsoftmax.reports), so the suite
# imports no reader.

from __future__ import annotations

from mfsoftmax.bench.suite import Readers, add_arguments
from mfsoftmax.bench.suite import main as run_suite

__all__ = ["HEADLINE_COLS", "add_arguments", "headline_text", "main", "render"]

HEADLINE_COLS = 120  # the printed headline: one line per claim, at most this many columns


def main(args) -> int:
    """``mfsoftmax run``: the suite, then the report and the headline; the exit status."""
    return run_suite(args, Readers(render=render, headline=headline_text))


def render(results: dict, run_dir, sources: list) -> dict:
    """Render the report of ``results`` into ``run_dir``; what it wrote (``render_report``)."""
    from mfsoftmax import reports  # lazy: matplotlib (~0.5 s), only after the stages

    return reports.render_report(results, run_dir, sources=sources)


def headline_text(results: dict) -> str:
    """The report's headline verdicts, one line per textbook claim, each within
    HEADLINE_COLS columns (the short form; the report has the full sentence)."""
    from mfsoftmax.reports.verdicts import headline  # lazy: numpy, only after the stages
    from mfsoftmax.runtime import to_jsonable  # lazy: numpy, only after the stages

    try:
        rows = headline(to_jsonable(results))
    except Exception as exc:  # the summary must print even if a verdict cannot be read
        return f"\nheadline: not available ({type(exc).__name__}: {exc})"
    width = max(len(r.claim.title) for r in rows)
    return "\nheadline (textbook claim: verdict)\n" + "\n".join(
        f"  {r.claim.title:<{width}}  {r.short_line(HEADLINE_COLS - 4 - width)}" for r in rows)
