"""The A/B gate's proof: false alarms and detection rates, measured (docs/regression-tracking.md).

Under a concurrent CPU-bound process (a busy Python loop started here), repeat N times:

- ``null``: the gate on two identical commits (``--base REV --head REV``, every kernel): any
  SLOWER row is a false alarm;
- ``inject``: for each factor and each gated kernel in turn, the gate on that kernel alone with
  the slowdown injected into head (``MFSOFTMAX_AB_SLOWDOWN``: a busy loop of (F-1) x the
  kernel's own CPU time): SLOWER is a detection.

Each gate run is appended as one JSON line to ``OUT/runs.jsonl`` as it finishes, so a run cut
short still counts what it finished; ``--summarise`` (or the end of a run) writes
``OUT/summary.md`` from that file. The issue asks N = 20:

    python -m mfsoftmax.bench.ab.proof --out /tmp/ab-proof --repeats 20
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from .cli import add_arguments, run
from .session import KERNELS

BUSY = "while True: pass"


def _gate(rev: str, kernels, inject: str | None, cache: str | None):
    p = argparse.ArgumentParser()
    add_arguments(p)
    argv = ["--base", rev, "--head", rev, "--kernels", *kernels]
    argv += ["--inject", inject] if inject else []
    argv += ["--cache", cache] if cache else []
    return run(p.parse_args(argv))


def _record(out: Path, kind: str, factor: float, target: str, res) -> None:
    row = {"kind": kind, "factor": factor, "target": target, "wall_s": res.wall_s,
           "rows": {r.kernel: {"ratio": r.ratio, "lo": r.lo, "hi": r.hi, "rounds": r.rounds,
                               "verdict": r.verdict} for r in res.rows},
           "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(out / "runs.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


def collect(args) -> None:
    """Run the repeats (null, then each factor x kernel), appending to runs.jsonl."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    busy = subprocess.Popen([sys.executable, "-c", BUSY]) if args.busy else None
    try:
        for rep in range(args.repeats):
            print(f"proof: repeat {rep + 1}/{args.repeats}", file=sys.stderr, flush=True)
            if not args.skip_null:
                _record(out, "null", 1.0, "*", _gate(args.rev, args.kernels, None, args.cache))
            for factor in args.factors:
                for k in args.kernels:
                    res = _gate(args.rev, [k], f"{k}={factor:g}", args.cache)
                    _record(out, "inject", factor, k, res)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()


def summarise(out: Path) -> str:
    """The markdown tables of ``out/runs.jsonl``: false alarms, detection per factor."""
    runs = [json.loads(x) for x in (out / "runs.jsonl").read_text().splitlines() if x.strip()]
    null = [r for r in runs if r["kind"] == "null"]
    lines = ["# A/B gate proof", "", f"{len(null)} null run(s) (identical commits, all kernels)"]
    if null:
        alarms = sum(any(v["verdict"] == "SLOWER" for v in r["rows"].values()) for r in null)
        walls = sorted(r["wall_s"] for r in null)
        lines += [f"- runs with a false alarm: {alarms} of {len(null)}",
                  f"- gate wall time: median {walls[len(walls) // 2]:.0f} s, max {walls[-1]:.0f} s",
                  "", "| kernel | false alarms | largest ratio | rounds (median) |",
                  "|---|---|---|---|"]
        for k in null[0]["rows"]:
            vs = [r["rows"][k] for r in null if k in r["rows"]]
            fa = sum(v["verdict"] == "SLOWER" for v in vs)
            big = max((v["ratio"] or 0) for v in vs)
            rounds = sorted(v["rounds"] for v in vs)[len(vs) // 2]
            lines.append(f"| {k} | {fa}/{len(vs)} | x{big:.3f} | {rounds} |")
    inj = [r for r in runs if r["kind"] == "inject"]
    factors = sorted({r["factor"] for r in inj})
    if inj:
        lines += ["", "Detection rate (SLOWER) of an injected slowdown, kernel by kernel "
                  "(median measured ratio):", "",
                  "| kernel | " + " | ".join(f"x{f:g}" for f in factors) + " |",
                  "|---|" + "---|" * len(factors)]
        for k in dict.fromkeys(r["target"] for r in inj):
            cells = []
            for f in factors:
                vs = [r["rows"][k] for r in inj if r["target"] == k and r["factor"] == f]
                hit = sum(v["verdict"] == "SLOWER" for v in vs)
                mid = sorted(v["ratio"] or 0 for v in vs)[len(vs) // 2] if vs else 0
                cells.append(f"{hit}/{len(vs)} (x{mid:.2f})" if vs else "-")
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for runs.jsonl and summary.md")
    p.add_argument("--rev", default="HEAD", help="the commit measured against itself")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--factors", type=float, nargs="+", default=[1.25])
    p.add_argument("--kernels", nargs="+", default=list(KERNELS))
    p.add_argument("--cache", default=None, help="the gate's environment cache")
    p.add_argument("--no-busy", dest="busy", action="store_false",
                   help="no concurrent busy process")
    p.add_argument("--skip-null", action="store_true", help="injections only")
    p.add_argument("--summarise", action="store_true", help="only summarise OUT/runs.jsonl")
    args = p.parse_args(argv)
    if not args.summarise:
        collect(args)
    sys.stdout.write(summarise(Path(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
