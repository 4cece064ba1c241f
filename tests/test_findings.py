"""The findings page quotes named runs' report.md tables; `mfsoftmax findings` refreshes them."""

from __future__ import annotations

import json

import pytest

from mfsoftmax.cli import main
from mfsoftmax.reports.findings import FindingsError, refresh, report_tables

REPORT = """# MF vs softmax DNN: benchmark report

## Quality

### Quality @20

_caption_

| model | recall@20 |
|---|---|
| wals | 0.4675 |

### Serving latency

| model | p50 |
|---|---|
| wals | 50 us |

## Config
"""

PAGE = """# Findings

<!-- runs -->
old runs table
<!-- /runs -->

Prose stays.

<!-- quote run=r1 table="Quality @20" -->
> *Quality @20* (`report.md` of run `r1`)

| model | recall@20 |
|---|---|
| wals | 0.4579 |
<!-- /quote -->

More prose.
"""


def _run(tmp_path, name="r1", report=REPORT):
    d = tmp_path / name
    d.mkdir()
    (d / "report.md").write_text(report)
    (d / "results.json").write_text(json.dumps({"run": {
        "git_commit": "abcdef0123456", "started_at": "2026-12-02T19:00:00+00:00",
        "argv": ["mfsoftmax", "run", "--config", "ml-100k"], "machine": {"cores": 2},
        "threads": {"blas": 1}, "calibration": {"matmul_gflops": 150.2}}}))
    return d


def test_report_tables_split_at_headings():
    t = report_tables(REPORT)
    assert set(t) == {"Quality @20", "Serving latency"}
    assert t["Quality @20"].startswith("_caption_") and "0.4675" in t["Quality @20"]
    assert "50 us" not in t["Quality @20"]


def test_refresh_replaces_quotes_and_runs_table_only(tmp_path):
    d = _run(tmp_path)
    new = refresh(PAGE, {"r1": d}, {"r1": REPORT})
    assert "0.4675" in new and "0.4579" not in new
    assert "Prose stays." in new and "More prose." in new
    assert "old runs table" not in new
    assert "| `r1` | `mfsoftmax run --config ml-100k` | `abcdef0` |" in new
    assert "calibration 150 GFLOP/s" in new
    assert refresh(new, {"r1": d}, {"r1": REPORT}) == new  # idempotent


def test_unknown_table_and_run_are_errors(tmp_path):
    d = _run(tmp_path)
    with pytest.raises(FindingsError, match="no table 'Quality @50'"):
        refresh(PAGE.replace('table="Quality @20"', 'table="Quality @50"'), {"r1": d},
                {"r1": REPORT})
    with pytest.raises(FindingsError, match="run 'r1' not given"):
        refresh(PAGE, {}, {})
    with pytest.raises(FindingsError, match="has no <!-- /quote -->"):
        refresh(PAGE.replace("<!-- /quote -->", ""), {"r1": d}, {"r1": REPORT})


def test_cli_check_then_write(tmp_path, capsys):
    d = _run(tmp_path)
    page = tmp_path / "findings.md"
    page.write_text(PAGE)
    assert main(["findings", str(page), "--run", f"r1={d}", "--check"]) == 1
    assert page.read_text() == PAGE  # --check rewrites nothing
    assert main(["findings", str(page), "--run", f"r1={d}"]) == 0
    assert "0.4675" in page.read_text()
    assert main(["findings", str(page), "--run", f"r1={d}", "--check"]) == 0
    assert main(["findings", str(page), "--run", "r1"]) == 2
    assert main(["findings", str(page), "--run", f"r1={tmp_path / 'none'}"]) == 2
    assert "no report.md" in capsys.readouterr().err
