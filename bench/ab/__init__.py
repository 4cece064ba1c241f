"""A/B regression gate: base and head measured side by side, interleaved, on this machine.

``mfsoftmax ab --base REF [--head REF|.]`` installs REF into its own environment (cached by
commit under .ab-cache/<sha>: the commit's tree and a venv sharing this environment's packages,
made in seconds), starts one worker process per commit (each imports its own commit's code;
both pinned to one CPU, a fresh pair every --rotate rounds) and times a fixed set of kernels,
base and head back to back, round after round:

  train.wals_iteration     one WALS (implicit ALS) iteration
  train.dnn_sampled_epoch  one softmax-DNN epoch, sampled-uniform loss
  train.dnn_inbatch_epoch  one softmax-DNN epoch, in-batch loss
  serve.wals_one           100 single queries on the lean path (recommend_one), WALS
  serve.dnn_one            100 single queries on the lean path, softmax DNN
  harness.evaluate         the evaluation harness (recall/ndcg@10,20) on the fixed split's test
  data.load_file           parsing a CSV of the data through the 'file' loader

Fixed seeds, seeded synthetic data (800 users x 1000 items), one thread per pool (BLAS,
OpenMP, torch, implicit). A sample is the worker thread's CPU time per call (the whole
process's for data.load_file, whose parse runs on polars' threads; per query for the serving
kernels), over enough calls for 50 ms. Each kernel runs
--min-rounds rounds, then stops once its interval lies wholly below or above the threshold, at
--max-rounds, or when --budget-s is spent.

Verdict per kernel: ratio of medians head/base with a 95% paired-bootstrap interval (rounds
resampled whole). SLOWER (fails) when the ratio is >= --max-slowdown (1.15) and the interval
lies above 1; 'faster' the mirror image; 'missing in base' when the older commit lacks the API
(reported, not failing); 'ERROR in head' (fails) when head cannot run a kernel base runs.

Output: the table (kernel, base, head, ratio, interval, rounds, verdict) as text, markdown (the
PR comment) or JSON (every sample). Exit status: 0 no kernel slower, 1 a kernel SLOWER or
broken in head, 2 unusable input (unknown REF, failed install, bad option).

Examples
--------
  mfsoftmax ab --base main
  mfsoftmax ab --base $(git merge-base HEAD main) --format markdown > ab.md
  mfsoftmax ab --base HEAD --inject train.dnn_sampled_epoch=1.25   # must fail
"""

# One job per module:
#   worktree.py  one environment per commit (.ab-cache/<sha>: git archive + venv)
#   worker.py    the kernels, run by each commit's interpreter (stdlib + that commit's API)
#   session.py   the two workers, interleaved rounds, adaptive stopping
#   stats.py     ratio of medians, paired bootstrap interval, verdict
#   report.py    rows and the text / markdown / JSON views
#   cli.py       add_arguments() and main() of `mfsoftmax ab`

from __future__ import annotations

from .cli import add_arguments, main

__all__ = ["add_arguments", "main"]
