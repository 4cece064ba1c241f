"""The A/B gate's result: one row per kernel, and its three views (text, markdown, JSON).

Like ``compare``: text for the terminal (no line wider than 100 columns), markdown for the PR
comment, JSON with every figure; exit status 0 (no kernel slower), 1 (a kernel SLOWER, or a
kernel that runs in base but fails in head).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from mfsoftmax.compare.cells import cut, fmt_ratio
from mfsoftmax.compare.text import _wrap

from . import stats
from .session import Measured
from .worker import PROCESS_CPU

COLUMNS = ("kernel", "base", "head", "ratio", "interval", "rounds", "verdict")
MARKER = "<!-- mfsoftmax-ab -->"


@dataclass
class KernelRow:
    """One kernel: medians (CPU seconds per call), ratio head/base and its interval."""

    kernel: str
    base_s: float | None = None
    head_s: float | None = None
    ratio: float | None = None
    lo: float | None = None
    hi: float | None = None
    rounds: int = 0
    verdict: str = "ok"  # ok | faster | SLOWER | missing in base | ERROR in head
    note: str = ""

    @property
    def failed(self) -> bool:
        return self.verdict in ("SLOWER", "ERROR in head")


@dataclass
class AbResult:
    """The rows plus what was compared and how."""

    rows: list[KernelRow]
    base: dict
    head: dict
    settings: dict
    wall_s: float = 0.0
    workers: dict = field(default_factory=dict)
    samples: dict = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 1 if any(r.failed for r in self.rows) else 0

    def to_dict(self) -> dict:
        return {"verdict": "FAIL" if self.exit_code else "PASS", "exit_code": self.exit_code,
                "base": self.base, "head": self.head, "settings": self.settings,
                "wall_s": self.wall_s, "workers": self.workers,
                "rows": [asdict(r) for r in self.rows], "samples": self.samples}


def build(measured: Measured, kernels, max_slowdown: float) -> list[KernelRow]:
    """One row per kernel from the samples (or from why it was not measured)."""
    rows = []
    miss_b = measured.info.get("base", {}).get("missing", {})
    miss_h = measured.info.get("head", {}).get("missing", {})
    for k in kernels:
        if k in miss_b:
            rows.append(KernelRow(k, verdict="missing in base", note=miss_b[k]))
        elif k in miss_h:
            rows.append(KernelRow(k, verdict="ERROR in head", note=miss_h[k]))
        else:
            s = measured.samples[k]
            e = stats.estimate(s["base"], s["head"])
            rows.append(KernelRow(k, e.base, e.head, e.ratio, e.lo, e.hi, e.n,
                                  stats.verdict(e, max_slowdown), measured.stopped.get(k, "")))
    return rows


def fmt_time(s: float | None) -> str:
    """CPU seconds per call as ms or µs."""
    if s is None:
        return "-"
    return f"{s * 1e3:.2f} ms" if s >= 1e-3 else f"{s * 1e6:.1f} us"


def _cells(r: KernelRow) -> list[str]:
    interval = "-" if r.lo is None else f"{r.lo:.2f}-{r.hi:.2f}"
    return [r.kernel, fmt_time(r.base_s), fmt_time(r.head_s), fmt_ratio(r.ratio), interval,
            str(r.rounds or "-"), r.verdict]


def _summary(res: AbResult) -> str:
    slow = [r.kernel for r in res.rows if r.failed]
    head = f"FAIL: {len(slow)} kernel(s) slower or broken" if slow else "PASS: no kernel slower"
    return f"{head} (x{res.settings['max_slowdown']:g} and significant fails)"


def _header(res: AbResult) -> list[str]:
    s = res.settings
    return [f"base: {res.base['label']} ({res.base['sha'][:10] or 'working tree'})",
            f"head: {res.head['label']} ({res.head['sha'][:10] or 'working tree'})",
            f"gate: ratio of medians head/base >= x{s['max_slowdown']:g} with its "
            f"{s['confidence']:.0%} paired-bootstrap interval above 1 fails; CPU time of the "
            f"worker thread per call (of the process: {', '.join(PROCESS_CPU)}), 1 thread per "
            "pool, both workers on one CPU, fresh ones "
            f"every {s.get('rotate') or 'never'} rounds",
            f"rounds: {s['min_rounds']}-{s['max_rounds']} interleaved, budget "
            f"{s['budget_s']:g} s; took {res.wall_s:.0f} s"
            + (f"; injected slowdown {s['slowdown']}" if s.get("slowdown") else "")]


def format_text(res: AbResult) -> str:
    """Header, summary, the table; notes (why a kernel stopped or is missing) under it."""
    table = [list(COLUMNS)] + [_cells(r) for r in res.rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    lines = _wrap(_header(res)) + ["", _summary(res), ""]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
              for row in table[:1]]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
              for row in table[1:]]
    notes = [f"{r.kernel}: {r.note}" for r in res.rows if r.note and r.verdict != "ok"]
    return "\n".join(lines + [cut(n, 100) for n in notes]) + "\n"


def format_markdown(res: AbResult) -> str:
    """The PR comment: summary, header bullets, the table."""
    icon = ":x:" if res.exit_code else ":white_check_mark:"
    out = [MARKER, f"### {icon} mfsoftmax ab: {_summary(res)}", ""]
    out += [f"- {line}" for line in _header(res)] + ["", "| " + " | ".join(COLUMNS) + " |",
                                                     "|" + "---|" * len(COLUMNS)]
    for r in res.rows:
        cells = [c.replace("|", "\\|") for c in _cells(r)]
        if r.failed:
            cells[-1] = f"**{cells[-1]}**"
        out.append("| " + " | ".join(cells) + " |")
    notes = [f"- `{r.kernel}`: {cut(r.note, 200)}" for r in res.rows
             if r.note and r.verdict != "ok"]
    return "\n".join(out + ([""] + notes if notes else [])) + "\n"


def format_json(res: AbResult) -> str:
    """Every figure, samples included (``workers`` holds each side's setup answer)."""
    return json.dumps(res.to_dict(), indent=2) + "\n"
