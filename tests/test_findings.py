"""The findings page quotes named runs' report.md tables; `mfsoftmax findings` refreshes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mfsoftmax.cli import main
from mfsoftmax.reports.findings import FindingsError, markers, refresh, report_tables

ROOT = Path(__file__).resolve().parents[1]

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


GOOD_QUOTE = '<!-- quote run=r1 table="Quality @20" -->'
BAD_MARKERS = [  # (the page's quote marker line, or a line added after the quote; the message)
    ("<!-- quote run=r1 table='Quality @20' -->", "cannot parse marker"),
    ('<!-- quote table="Quality @20" run=r1 -->', "cannot parse marker"),
    ('<!--quote run=r1 table="Quality @20" -->', "cannot parse marker"),
    ('<!-- QUOTE run=r1 table="Quality @20" -->', "cannot parse marker"),
    ("<!-- quote run=r1 -->", "cannot parse marker"),
    ('<!-- quote run=r1 table="Quality @20"', "cannot parse marker"),
    ('Text then <!-- quote run=r1 table="Quality @20" -->', "cannot parse marker"),
]


@pytest.mark.parametrize("marker, message", BAD_MARKERS, ids=[m for m, _ in BAD_MARKERS])
def test_a_marker_it_cannot_parse_is_exit_2_naming_the_line(tmp_path, capsys, marker, message):
    """Before: the quote was skipped and --check said 'every quote matches', exit 0."""
    d = _run(tmp_path)
    page = tmp_path / "findings.md"
    page.write_text(PAGE.replace(GOOD_QUOTE, marker))
    with pytest.raises(FindingsError, match=f"^line 9: {message}"):
        markers(page.read_text())
    assert main(["findings", str(page), "--run", f"r1={d}", "--check"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"mfsoftmax findings: {page}: line 9: {message}")
    assert main(["findings", str(page), "--run", f"r1={d}"]) == 2
    assert page.read_text() == PAGE.replace(GOOD_QUOTE, marker)  # nothing written


STRUCTURE = [  # (an edit of the page, the message)
    (lambda p: p + "<!-- /quote -->\n", "line 18: <!-- /quote --> with no <!-- quote ... --> open"),
    (lambda p: p + "<!-- /runs -->\n", "line 18: <!-- /runs --> with no <!-- runs --> open"),
    (lambda p: p + "<!-- runs -->\n<!-- /runs -->\n",
     "line 18: a second <!-- runs --> (the first is at line 3)"),
    (lambda p: p.replace("<!-- /runs -->", ""), "line 3: <!-- runs --> has no <!-- /runs --> after it"
     " (line 9 has"),
    (lambda p: p.replace("More prose.", GOOD_QUOTE), "line 17: " + GOOD_QUOTE + " has no"),
    (lambda p: p.replace("More prose.", "```\n" + GOOD_QUOTE),
     "line 17: a ``` code fence that is never closed"),
]


@pytest.mark.parametrize("edit, message", STRUCTURE, ids=[m[:30] for _, m in STRUCTURE])
def test_stray_unclosed_and_doubled_markers_are_errors(tmp_path, capsys, edit, message):
    d = _run(tmp_path)
    page = tmp_path / "findings.md"
    page.write_text(edit(PAGE))
    with pytest.raises(FindingsError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        refresh(page.read_text(), {"r1": d}, {"r1": REPORT})
    assert main(["findings", str(page), "--run", f"r1={d}", "--check"]) == 2
    assert f"{page}: {message}" in capsys.readouterr().err


def test_markers_in_code_are_text(tmp_path):
    d = _run(tmp_path)
    extra = (f"\nWrite `{GOOD_QUOTE}` then `<!-- /quote -->`.\n\n```\n<!-- quote run=x -->\n"
             "<!-- /quote -->\n```\n")
    new = refresh(PAGE + extra, {"r1": d}, {"r1": REPORT})
    assert new.endswith(extra) and "0.4675" in new


def test_a_run_named_twice_is_exit_2(tmp_path, capsys):
    """Before: --run r1=A --run r1=B silently used B."""
    a, b = _run(tmp_path, "a"), _run(tmp_path, "b")
    page = tmp_path / "findings.md"
    page.write_text(PAGE)
    assert main(["findings", str(page), "--run", f"r1={a}", "--run", f"r1={b}"]) == 2
    err = capsys.readouterr().err
    assert f"--run r1: given twice ({a} and {b})" in err and len(err.strip().splitlines()) == 1
    assert page.read_text() == PAGE


def test_the_committed_findings_page_parses():
    """Every marker of docs/findings.md passes the strict parser (its runs are not in a clone,
    so --check itself needs them)."""
    page = (ROOT / "docs" / "findings.md").read_text()
    blocks = markers(page)
    quotes = [m for *_, m in blocks if m is not None]
    assert len(blocks) - len(quotes) == 1  # one table of runs
    assert len(quotes) == page.count("<!-- quote ") == page.count("<!-- /quote -->") > 20
    start, end, _ = next(b for b in blocks if b[2] is None)
    table = "\n".join(page.splitlines()[start:end])
    assert all(f"| `{m['run']}` |" in table for m in quotes)  # every quoted run is listed
