"""The headline at a glance: short verdict cells with the full sentence one click away, a
sparkline per measured claim, and a terminal headline within 120 columns."""

from __future__ import annotations

import html
import json
import re

import pytest

from mfsoftmax.cli.run import HEADLINE_COLS, headline_text
from mfsoftmax.reports import render_report
from mfsoftmax.reports.glance import SPARKLINES
from mfsoftmax.reports.judge import SHORT_CHARS, Claim, ClaimResult
from mfsoftmax.reports.shorten import shorten
from mfsoftmax.reports.verdicts import CLAIMS, headline
from tests.fixtures import RESULTS_V1
from tests.fixtures.results_fixture import make_results

SERVING = ("p50 30.8 µs (wals, lean) vs 188 µs (softmax-in-batch, lean, TorchScript tower), 6.1x, "
           "at the run's corpus; by corpus size, softmax faster at n ∈ {1k, 10k} (same recall per "
           "size; recall@10 ≥ 0.95: 1k: 259 µs (hnswlib-hnsw(M=16) ef=10) vs 169 µs "
           "(faiss-ivf(nlist=25) nprobe=25), 1.5x; query embeddings included)")


def baseline() -> dict:
    """A real quick run's results (an old one: the committed baseline of 2026-12-03)."""
    return json.loads(RESULTS_V1.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- checks, reused
def headline_cells(page: str) -> list:
    """(visible text, full text or None, has a sparkline) of each verdict cell of report.html."""
    table = re.search(r'<table class="t-headline">.*?</table>', page, re.S).group(0)
    out = []
    for cell in re.findall(r'<td class="verdict">(.*?)</td>', table, re.S):
        full = re.search(r'<details class="full"><summary>[^<]*</summary>(.*?)</details>', cell, re.S)
        shown = re.sub(r"<details.*?</details>", "", cell, flags=re.S)
        shown = html.unescape(re.sub(r"<[^>]+>", "", shown)).strip()
        out.append((shown, html.unescape(full.group(1)) if full else None, 'class="spark"' in cell))
    return out


def check_report_headline(results: dict, folder) -> None:
    """report.html and report.md in ``folder``, rendered from ``results``: every verdict cell at
    most SHORT_CHARS characters, each verdict's full sentence in its folded block (HTML) or the
    numbered list under the table (Markdown), and a sparkline beside every measured claim."""
    page = (folder / "report.html").read_text()
    md = (folder / "report.md").read_text()
    rows = headline(results)
    cells = headline_cells(page)
    assert len(cells) == len(rows)
    for res, (shown, full, spark) in zip(rows, cells, strict=True):
        assert len(shown) <= SHORT_CHARS, (res.claim.key, len(shown), shown)
        badge = res.short.replace(f"{res.verdict}: ", f"{res.verdict} ", 1)  # badge, then text
        assert shown == badge, res.claim.key
        assert full == (None if res.short == res.line else " ".join(res.line.split())), res.claim.key
        if res.verdict != "not measured" and res.claim.key in SPARKLINES:
            assert spark, f"no sparkline beside {res.claim.key}"
    table = md.split("### The textbook table, measured")[1].split("\n## ")[0]
    for res in rows:
        row = next(line for line in table.splitlines() if line.startswith(f"| {res.claim.title} |"))
        verdict = row.rstrip(" |").rsplit(" | ", 1)[1]
        verdict = re.sub(r" \[\d+\]$", "", verdict.replace("**", "").replace("\\|", "|"))
        assert len(verdict) <= SHORT_CHARS and verdict == res.short, res.claim.key
        if res.short != res.line:  # the full sentence in the numbered list under the table
            assert re.search(rf"^\d+\. {re.escape(res.claim.title)}: "
                             rf"{re.escape(' '.join(res.line.split()))}$", table, re.M), res.claim.key


def check_terminal_headline(text: str) -> None:
    """The printed headline: one line per claim, each within HEADLINE_COLS columns."""
    block = text.split("headline (textbook claim: verdict)\n")[1].split("\n\n")[0]
    lines = [line for line in block.splitlines() if line.startswith("  ")]
    assert len(lines) == len(CLAIMS)
    for line, claim in zip(lines, CLAIMS, strict=True):
        assert line.startswith(f"  {claim.title}") and len(line) <= HEADLINE_COLS, line


# ----------------------------------------------------------------------------- shortening
def test_shorten_keeps_text_that_fits():
    assert shorten("tie:  a 0.1 vs b 0.2", 40) == "tie: a 0.1 vs b 0.2"


def test_shorten_keeps_the_first_item_of_each_parenthesis_then_drops_them():
    text = "a 0.3562 vs b 0.3919 (gap -0.0357 ± 0.0237, -9.1% for softmax; threshold 2 paired se)"
    assert shorten(text, 60) == "a 0.3562 vs b 0.3919 (gap -0.0357 ± 0.0237)"
    assert shorten(text, 30) == "a 0.3562 vs b 0.3919"


def test_shorten_drops_parts_without_figures_before_clauses():
    assert shorten(SERVING, 160) == ("p50 30.8 µs (wals) vs 188 µs (softmax-in-batch), 6.1x, at the "
                                     "run's corpus; by corpus size, softmax faster at n ∈ {1k, 10k} "
                                     "(same recall per size)")
    assert shorten(SERVING, 86) == "p50 30.8 µs vs 188 µs, 6.1x; softmax faster at n ∈ {1k, 10k}"
    assert shorten(SERVING, 40) == "p50 30.8 µs vs 188 µs, 6.1x; …"


def test_shorten_cuts_a_long_clause_at_a_word():
    text = "alpha 1 beta 2 gamma 3 delta 4 epsilon 5"
    assert shorten(text, 21) == "alpha 1 beta 2 gamma…"
    assert shorten(text, 20) == "alpha 1 beta 2…"


@pytest.mark.parametrize("width", [1, 5, 12, 30, 57, 90, 120, 200])
def test_shorten_never_exceeds_the_width(width):
    for text in (SERVING, "unclosed (paren, and more text 12 here; x", "no digits at all, none"):
        assert len(shorten(text, width)) <= width


def test_a_new_claim_gets_a_short_form_and_may_override_it():
    claim = Claim("whom", "Which family for whom", "a", "b", "mf", "strata")
    res = ClaimResult(claim, {"mf": "0.1"}, {"mf": "wals"}, "mf", "depends", SERVING * 3)
    assert len(res.short) <= SHORT_CHARS and res.short.startswith("depends: p50 30.8 µs")
    assert len(res.short_line(70)) <= 70
    res.summary = "WALS ahead for heavy users; the DNN ahead on tail items"
    assert res.short == "depends: WALS ahead for heavy users; the DNN ahead on tail items"
    assert res.line == f"depends: {SERVING * 3}"  # the full text is untouched
    missing = ClaimResult(claim, {}, {}, None, "not measured", "not measured (no strata)")
    assert missing.short == missing.line == "not measured (no strata)"


# ----------------------------------------------------------------------------- the report
@pytest.fixture(scope="module")
def baseline_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("glance")
    results = baseline()
    render_report(results, out)
    return results, out


def test_baseline_headline_cells_are_short_with_the_full_text_folded(baseline_report):
    results, out = baseline_report
    check_report_headline(results, out)
    long = [r for r in headline(results) if len(r.line) > SHORT_CHARS]
    assert long, "the baseline has a verdict longer than a cell (serving): the test must fold one"
    page = (out / "report.html").read_text()
    assert page.count('<details class="full">') == len(long)


def test_baseline_has_a_sparkline_per_claim_written_as_plots(baseline_report):
    results, out = baseline_report
    measured = [r.claim.key for r in headline(results) if r.verdict != "not measured"]
    assert set(SPARKLINES) == {c.key for c in CLAIMS}  # every claim has its figure ...
    assert set(measured) <= set(SPARKLINES)  # ... drawn when measured (this old file: no strata)
    for key in measured:
        png = (out / "plots" / f"glance_{key}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert "<svg" in (out / "plots" / f"glance_{key}.svg").read_text()
    page = (out / "report.html").read_text()
    headline_html = re.search(r'<table class="t-headline">.*?</table>', page, re.S).group(0)
    assert headline_html.count('<img class="spark"') == len(measured)
    md = (out / "report.md").read_text()
    assert "glance_" not in md  # the Markdown headline stays a table of text


def test_two_runs_each_get_their_own_sparkline_and_note(tmp_path):
    a, b = baseline(), baseline()
    b["run"]["id"] = "other"
    render_report([a, b], tmp_path)
    page = (tmp_path / "report.html").read_text()
    for run in (0, 1):
        assert f'id="p-glance_quality-{run}"' in page
    md = (tmp_path / "report.md").read_text()
    assert re.search(r"^1\. Serving scalability \(A: [^)]*\): depends: ", md, re.M)
    assert re.search(r"^2\. Serving scalability \(B: [^)]*\): depends: ", md, re.M)


def test_fixture_report_headline(tmp_path):
    results = make_results()
    render_report(results, tmp_path)
    check_report_headline(results, tmp_path)


# ----------------------------------------------------------------------------- the terminal
def test_terminal_headline_is_one_short_line_per_claim():
    text = headline_text(baseline())  # what `mfsoftmax run` prints under the summary table
    check_terminal_headline(text)
    assert "softmax faster at n ∈ {1k, 10k}" in text  # the serving verdict keeps its reason
