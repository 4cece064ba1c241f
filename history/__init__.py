"""A history of gated figures over commits, with trends and the commits where they stepped.

  mfsoftmax history add RESULTS.json --store DIR [--commit SHA]
  mfsoftmax history show --store DIR [--html PAGE] [--figures PATTERN ...] [--format text|json]

``add`` stores every figure ``compare`` gates of one results.json (quality and cold-start
metrics, leakage@k, serving.p50_min_us, training.epoch_thread_min_s), named MODEL/METRIC, in
DIR/history.sqlite (one SQLite file: keep the folder as a CI artifact or on a branch). Timings
are normalised as compare does (time x the run's best matmul GFLOP/s). The commit is the run's
run.git_commit unless --commit is given; runs are kept in the order added (add each commit's
run once, oldest first); a run already stored (the same run.id and run.started_at) is refused.

``show`` finds the change points of every figure (binary segmentation on the series over
commits: a step at least 5% of the level before it and 5 noise units, the noise read robustly
from successive differences) and names the first commit of each step up or down. --html writes
one self-contained page with a trend plot per figure (steps marked).

Exit status: 0, or 2 on unusable input (missing or invalid file, no commit, a run already
stored, no store), with a one-line message naming the file or option.
"""

# One job per module:
#   store.py         the SQLite store: add a results file, read the series back
#   changepoints.py  change-point detection on one series
#   views.py         text / JSON / HTML (matplotlib trend plots)
#   cli.py           add_arguments() and main() of `mfsoftmax history`

from __future__ import annotations

from .cli import add_arguments, main

__all__ = ["add_arguments", "main"]
