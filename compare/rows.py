"""The data model of a comparison: one :class:`Row` per compared figure, and
:class:`CompareResult` (the rows, the settings, the calibration and the overall verdict).

:func:`shown_rows` picks the rows of the default view, which every formatter shares.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


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


def shown_rows(res: CompareResult, show_all: bool = False) -> list[Row]:
    """The rows of the default view (REGRESSION, missing, improved, failures and new models),
    or every row with ``show_all``. New metrics of a common model are counted, not listed."""
    if show_all:
        return list(res.rows)
    return [r for r in res.rows if r.failed or r.verdict in ("REGRESSION", "improved")
            or (r.verdict == "missing" and r.kind != "info")
            or (r.verdict == "new" and r.kind == "model")]
