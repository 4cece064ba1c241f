"""The comparison report: verdicts from numbers, sections present only when measured, HTML renders."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mfsoftmax.cli import main as cli_main
from mfsoftmax.reports import ReportInputError, load_results, render_report
from mfsoftmax.reports.colors import KNOWN, model_color
from mfsoftmax.reports.glance import SPARKLINES
from mfsoftmax.reports.judge import quality_gap
from mfsoftmax.reports.load import validate
from mfsoftmax.reports.sections import cold_start, folding, quality, query_features
from mfsoftmax.reports.sections import plots as section_plots
from mfsoftmax.reports.sections.training import growth_exponent
from mfsoftmax.reports.verdicts import CLAIMS, headline
from tests.fixtures.results_fixture import make_results

#: every section's plots but strata's (the fixture records no strata: tests/test_strata.py)
PLOTS = tuple(p for p in section_plots() if p[0] != "strata")
#: the headline's sparklines of the claims the fixture measures (all but strata, as above)
SPARKS = tuple(key for key in SPARKLINES if key != "strata")

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def verdicts(results) -> dict:
    return {r.claim.key: r for r in headline(results)}


def light(results: dict) -> dict:
    """The fixture without sweeps and embeddings: fewer plots, faster tests of other things."""
    results.pop("sweeps", None)
    for m in results["models"].values():
        m.pop("embeddings", None)
    return results


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    written = render_report(make_results(), out)
    return out, written


# ----------------------------------------------------------------------------- files and layout
def test_report_files_written(rendered):
    out, written = rendered
    assert written["md"] == out / "report.md" and written["md"].stat().st_size > 0
    assert written["html"] == out / "report.html" and written["html"].stat().st_size > 0
    for key, _, _ in PLOTS:  # the fixture measures everything, so every plot exists
        for ext in ("png", "svg"):
            path = out / "plots" / f"{key}.{ext}"
            assert path.exists() and path.stat().st_size > 1000, path
            assert written[f"plots/{key}.{ext}"] == path
    assert (out / "plots" / "quality_vs_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (out / "plots" / "folding.svg").read_text()


def test_html_is_self_contained(rendered):
    out, _ = rendered
    page = (out / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "<script" not in page and "@import" not in page
    imgs = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(imgs) == len(PLOTS) + len(SPARKS)  # the plots and one sparkline per claim
    assert all(src.startswith("data:image/png;base64,") for src in imgs)


def test_headline_has_a_row_per_claim(rendered):
    out, _ = rendered
    page = (out / "report.html").read_text()
    table = re.search(r'<table class="t-headline">.*?</table>', page, re.S).group(0)
    rows = re.findall(r"<tbody>.*</tbody>", table, re.S)[0].count("<tr>")
    assert rows == len(CLAIMS) == 8  # the 7 textbook claims and "which family for whom"
    md = (out / "report.md").read_text()
    for claim in CLAIMS:
        assert f"| {claim.title} |" in md
    for name in ("SE_MULTIPLIER", "REL_TOL", "COST_RATIO", "LEAKAGE_ABS_TOL"):
        assert name in md and name in page  # thresholds are printed with the table


def test_markdown_tables_and_plots(rendered):
    out, _ = rendered
    md = (out / "report.md").read_text()
    for title in ("Quality @10", "Training cost", "Serving latency and throughput",
                  "Cold start, new users: Recall@10", "Cold start, new items: Recall@10",
                  "Folding per model", "Folding vs WALS unobserved weight w0",
                  "Folding per softmax variant", "Query-feature ablation", "Run metadata", "Stages"):
        assert f"### {title}" in md
    assert "0.2140 ± 0.0040" in md  # softmax-full recall@10 with its standard error
    assert "(plots/cold_start.png)" in md and "(plots/hashing.png)" in md
    assert "### Hashed embedding tables" in md
    gaps = md.split("### Gaps to the best model, paired by user")[1].split("###")[0]
    # wals 0.182 vs softmax-full 0.214 at recall@10: -0.032 / 0.003 = 10.7 se
    assert "| wals | -0.0320 ± 0.0030 (10.7 se, behind) |" in gaps
    # hard-negatives 0.205: -0.009 / 0.003 = 3.0 se
    assert "| softmax-hard-negatives | -0.0090 ± 0.0030 (3.0 se, behind) |" in gaps
    seeds = md.split("### Cold start, new users with 0 items, over split seeds")[1].split("###")[0]
    # hand computed: full's Recall@20 mean (0.42 + 0.41 + 0.45) / 3, se = sd / sqrt(3)
    # paired by split: full - popularity = +0.02, -0.03, +0.06 -> mean 0.0167, sd 0.0451, se 0.0260
    assert "| softmax-full | 3 | **0.4933 ± 0.0145** | **0.4267 ± 0.0120** | +0.0167 ± 0.0260 | 2 of 3 |" in seeds
    assert "| popularity | 3 | 0.4800 ± 0.0115 | 0.4100 ± 0.0153 | — | — |" in seeds
    hashing = md.split("### Hashed embedding tables")[1].split("###")[0]
    assert "| softmax-full | inputs | 500 |" in hashing and "| softmax-full | exact | 1k |" in hashing
    assert "41.7 GFLOP/s" in md and "6b20f43c0ffee" in md


# ----------------------------------------------------------------------------- verdicts
def test_fixture_verdicts():
    v = verdicts(make_results())
    assert [r.claim.key for r in headline(make_results())] == [c.key for c in CLAIMS]
    assert v["quality"].winner == "softmax" and v["quality"].verdict == "confirmed"
    assert v["cold_users"].verdict == "confirmed"
    assert v["folding"].winner == "mf" and v["folding"].verdict == "confirmed"
    assert v["training"].verdict == "confirmed"
    # new users with no history: features lift cold recall@20 0.09 -> 0.17 even with history on
    assert v["query_features"].verdict == "confirmed"
    assert "cold_recall@20" in v["query_features"].line
    flat = make_results()
    flat["ablation"][0]["cold_recall@20"] = 0.09  # with history, features no longer help at all
    assert verdicts(flat)["query_features"].verdict == "depends"  # +70% without history only
    assert v["serving"].verdict == "depends"  # MF ahead on small corpora only


def test_cold_start_verdict_uses_paired_errors_per_point():
    r = light(make_results())
    # softmax-full - wals at n_known 0, 1, 2, 5: 0.05, 0.05, 0.045, 0.03 (mean 0.04375); 10, 20: 0.025
    r["cold_users_paired_se"] = [{"a": "wals", "b": "softmax-full", "n_known": n, "n_users": 300,
                                  "recall@10": 0.03} for n in (0, 1, 2, 5, 10, 20)]
    v = verdicts(r)["cold_users"]
    assert v.winner == "tie" and v.verdict == "not confirmed"  # 0.04375 <= 2 * 0.03
    assert "± 0.0300 at most" in v.text and "within 2 paired se" in v.text
    for row in r["cold_users_paired_se"]:
        row["recall@10"] = 0.005
    v = verdicts(r)["cold_users"]
    assert v.winner == "softmax" and v.verdict == "confirmed"
    assert "gap +0.0437 ± 0.0050 at most" in v.text or "gap +0.0438 ± 0.0050 at most" in v.text
    r["cold_users_paired_se"][-1]["n_known"] = 7  # no paired figure at 20: that point falls back to 5%
    assert verdicts(r)["cold_users"].verdict == "confirmed"
    # new items: softmax-full - wals = 0.07, 0.06, 0.05, 0.03 at n_known 0..5 (mean 0.0525) and
    # 0.02 at 10: beyond 5% everywhere, but within 2 paired errors of 0.03 (save at 0)
    assert verdicts(r)["cold_items"].verdict == "confirmed"
    r["cold_items_paired_se"] = [{"a": "softmax-full", "b": "wals", "n_known": n, "n_users": 90,
                                  "recall@10": 0.03} for n in (0, 1, 2, 5, 10)]
    v = verdicts(r)["cold_items"]
    assert v.winner == "tie" and v.verdict == "not confirmed" and "± 0.0300 at most" in v.text


def test_cold_gap_tables_pair_each_model_with_mf():
    r = light(make_results())
    assert cold_start.cold_gap_tables([r], ["A"]) == []  # nothing paired recorded
    r["cold_users_paired_se"] = [{"a": "wals", "b": "softmax-full", "n_known": n, "n_users": 300,
                                  "recall@10": 0.02} for n in (0, 1, 2, 5, 10, 20)]
    (t,) = cold_start.cold_gap_tables([r], ["A"])
    rows = {tuple(k): v for k, v in t.rows}
    assert list(rows) == [("softmax-full", "wals")]  # other models have no paired figure
    # softmax-full - wals: 0.05, 0.05, 0.045, 0.03, 0.025, 0.025; beyond 2 * 0.02 only at 0..2
    assert rows[("softmax-full", "wals")] == [
        "+0.0500 ± 0.0200 ▲", "+0.0500 ± 0.0200 ▲", "+0.0450 ± 0.0200 ▲",
        "+0.0300 ± 0.0200", "+0.0250 ± 0.0200", "+0.0250 ± 0.0200"]


def test_cold_start_verdict_flips_when_families_swap():
    results = make_results()
    models = results["models"]
    assert verdicts(results)["cold_users"].verdict == "confirmed"
    wals_curve = models["wals"]["cold_start"]["users"]
    for m in models.values():
        if m["family"] == "softmax":
            m["cold_start"]["users"] = [dict(p, **{"recall@10": p["recall@10"] * 0.5})
                                        for p in wals_curve]
    for p in wals_curve:
        p["recall@10"] = p["recall@10"] * 2
    flipped = verdicts(results)["cold_users"]
    assert flipped.winner == "mf"
    assert flipped.verdict == "not confirmed"
    assert flipped.line.startswith("not confirmed")


def test_cold_start_depends_when_curves_cross():
    results = make_results()
    for p in results["models"]["wals"]["cold_start"]["items"]:
        if p["n_known"] >= 5:
            p["recall@10"] = 0.5  # fold-in overtakes the item tower once items have data
    v = verdicts(results)["cold_items"]
    assert v.verdict == "depends"
    assert "n_known ∈ {5, 10}" in v.text


def test_quality_gap_within_standard_errors_is_a_tie():
    results = make_results()
    wals, full = results["models"]["wals"]["quality"], results["models"]["softmax-full"]["quality"]
    for k in (10, 20, 50):  # 0.004 below at every k; 2 se of the gap = 0.0113
        wals[f"recall@{k}"] = full[f"recall@{k}"] - 0.004
    v = verdicts(results)["quality"]
    assert v.winner == "tie" and v.verdict == "not confirmed"
    wals["recall@10"] = full["recall@10"] + 0.05  # MF ahead at k=10 only: the cut-off matters
    v = verdicts(results)["quality"]
    assert v.winner == "mf" and v.verdict == "depends" and "wals ahead at recall@10" in v.text
    for k in (10, 20, 50):
        wals[f"recall@{k}"] = full[f"recall@{k}"] + 0.05
    v = verdicts(results)["quality"]
    assert v.winner == "mf" and v.verdict == "not confirmed"


def test_folding_depends_when_only_positives_only_folds():
    results = make_results()
    results["models"]["softmax-hard-negatives"]["folding"]["leakage@10"] = 0.015
    v = verdicts(results)["folding"]
    assert v.winner == "tie" and v.verdict == "depends"
    assert "softmax-positives-only" in v.text


def test_training_depends_when_exponent_and_time_disagree():
    results = make_results()
    for r in results["sweeps"]["training_vs_size"]:
        if r["model"] == "wals":  # steeper growth but still far faster at 1M
            r["wall_s"] = 0.004 * (r["n_interactions"] / 1e4) ** 2.0
    v = verdicts(results)["training"]
    assert v.verdict == "depends" and "grows faster" in v.text


def test_quality_verdict_uses_the_paired_standard_error():
    r = light(make_results())
    r.pop("quality_paired_se")
    for name in ("softmax-sampled-uniform", "softmax-hard-negatives"):
        del r["models"][name]
    w, f = r["models"]["wals"]["quality"], r["models"]["softmax-full"]["quality"]
    for k in (10, 20, 50):
        f[f"recall@{k}"] = round(w[f"recall@{k}"] + 0.008, 4)
    # unpaired: 0.008 < 2 * hypot(0.004, 0.004) = 0.0113, a tie
    assert verdicts(r)["quality"].winner == "tie"
    assert quality.paired_gap_table([r], ["A"]) is None  # nothing paired recorded
    r["quality_paired_se"] = [{"a": "softmax-full", "b": "wals", "n_users": 400,
                               **{f"recall@{k}": 0.002 for k in (10, 20, 50)}}]
    v = verdicts(r)["quality"]  # paired: 0.008 > 2 * 0.002
    assert v.winner == "softmax" and v.verdict == "confirmed"
    assert "gap +0.0080 ± 0.0020" in v.text and "2 paired se" in v.text
    rows = {k[0]: vals for k, vals in quality.paired_gap_table([r], ["A"]).rows}
    assert rows["softmax-full"] == ["best", "best"]
    assert rows["wals"] == ["-0.0080 ± 0.0020 (4.0 se, behind)"] * 2
    assert "popularity" not in rows  # no paired figure for it
    r["quality_paired_se"][0]["recall@10"] = 0.005  # 0.008 <= 2 * 0.005: a tie at @10 only
    assert verdicts(r)["quality"].verdict == "depends"
    bad = light(make_results())
    bad["quality_paired_se"] = [{"a": "wals"}]
    with pytest.raises(ReportInputError, match=r"quality_paired_se\[0\]"):
        validate(bad, "x.json")


def test_query_features_verdict_uses_the_paired_lift_error():
    r = light(make_results())
    for row in r["ablation"]:
        if row["model"] == "softmax-full" and row["user_features"]:
            row["lift_se"] = {"recall@20": 0.05, "cold_recall@20": 0.05}
    # every lift (0.014, 0.08, 0.062, 0.072) is within 2 * 0.05 of zero
    v = verdicts(r)["query_features"]
    assert v.winner == "tie" and v.verdict == "not confirmed"
    assert "± 0.0500" in v.text and "not beyond 2 paired se" in v.text
    for row in r["ablation"]:
        if "lift_se" in row:
            row["lift_se"] = {"recall@20": 0.002, "cold_recall@20": 0.002}
    v = verdicts(r)["query_features"]
    assert v.winner == "softmax" and v.verdict == "confirmed"
    assert "+0.0800 ± 0.0020" in v.text  # new users, with history on: 0.17 - 0.09
    rows = {tuple(k): vals for k, vals in query_features.ablation_table([r], ["A"]).rows}
    # columns: recall@20, ndcg@20, cold_recall@20, lift at recall@20, lift at cold_recall@20
    assert rows[("softmax-full", "yes", "yes")][3:] == ["+0.0140 ± 0.0020", "+0.0800 ± 0.0020"]
    assert rows[("softmax-full", "no", "yes")][3:] == ["+0.0620 ± 0.0020", "+0.0720 ± 0.0020"]
    assert rows[("wals", "yes", "no")][3:] == ["—", "—"]


def test_thresholds_hand_computed():
    # 2 se of the gap: 2 * hypot(0.004, 0.004) = 0.01131
    assert quality_gap(0.20, 0.19, 0.004, 0.004)[0] == 0
    assert quality_gap(0.20, 0.18, 0.004, 0.004)[0] == 1
    assert quality_gap(0.18, 0.20, 0.004, 0.004)[0] == -1
    # no se: 5% of the larger value (0.01)
    assert quality_gap(0.20, 0.191)[0] == 0
    assert quality_gap(0.20, 0.185)[0] == 1
    # absolute floor for near-zero leakage
    assert quality_gap(0.012, 0.004, abs_tol=0.01)[0] == 0
    # a paired standard error of the gap replaces hypot(se_a, se_b)
    assert quality_gap(0.20, 0.19, 0.004, 0.004, se_gap=0.004)[0] == 1
    assert quality_gap(0.20, 0.19, 0.004, 0.004, se_gap=0.006) == (0, "2 paired se")
    assert growth_exponent([1, 10, 100], [2, 200, 20000]) == pytest.approx(2.0)
    assert growth_exponent([5, 5], [1, 2]) is None


# ----------------------------------------------------------------------------- missing, failed
def test_cold_tables_show_standard_errors_when_recorded(tmp_path):
    results = make_results()
    point = results["models"]["wals"]["cold_start"]["users"][0]
    point["recall@20"], point["recall@20_se"] = 0.4321, 0.0123
    render_report(results, tmp_path)
    md = (tmp_path / "report.md").read_text()
    table = md.split("### Cold start, new users: Recall@20")[1].split("###")[0]
    assert "0.4321 ± 0.012" in table


def test_missing_sections_are_omitted_not_faked(tmp_path):
    results = make_results()
    del results["sweeps"]
    del results["ablation"]
    del results["serving"]
    del results["offline_topk"]
    for m in results["models"].values():
        for key in ("cold_start", "embeddings", "serving", "quality_se"):
            m.pop(key, None)
    render_report(results, tmp_path)
    page = (tmp_path / "report.html").read_text()
    md = (tmp_path / "report.md").read_text()
    for gone in ("serving_vs_corpus", "cold_start", "embeddings_pca", "training_vs_size", "folding",
                 "hashing"):
        assert not (tmp_path / "plots" / f"{gone}.png").exists(), gone
    assert (tmp_path / "plots" / "quality_vs_time.png").exists()
    for table in ("t-serving", "t-ablation", "t-folding_vs_w0", "t-cold-users-recall@10", "t-offline_topk"):
        assert f'id="{table}"' not in page, table
    assert 'id="features"' not in page and 'id="cold-start"' not in page
    assert "Query-feature ablation" not in md and "Cold start, new users" not in md
    assert "± 0.0040" not in md  # no standard errors were measured, none shown
    v = verdicts(results)
    for key in ("query_features", "cold_users", "cold_items", "serving"):
        assert v[key].verdict == "not measured" and v[key].winner is None
    assert v["training"].verdict == "confirmed" and "one data size only" in v["training"].text
    assert "nan" not in md.lower().replace("nanos", "")
    # the headline keeps one row per claim, saying what was not measured
    assert md.count("not measured") >= 4


def test_malformed_section_is_skipped_with_a_warning(tmp_path):
    results = light(make_results())
    results["models"]["wals"]["embeddings"] = {"query": [[0.0, 1.0]], "query_group": [0, 1, 2]}
    results["ablation"] = [{"history": True, "user_features": True, "recall@20": 0.3}]  # no model
    with pytest.warns(UserWarning) as record:
        written = render_report(results, tmp_path)
    messages = " ".join(str(w.message) for w in record)
    assert "embeddings_pca" in messages and "query_features" in messages
    assert written["html"].exists() and not (tmp_path / "plots" / "embeddings_pca.png").exists()
    with pytest.warns(UserWarning, match="query_features"):
        assert verdicts(results)["query_features"].verdict == "not measured"


def test_empty_run_renders(tmp_path):
    written = render_report({"schema_version": 1}, tmp_path)
    page = written["html"].read_text()
    assert page.count('class="badge verdict-not-measured"') == len(CLAIMS)
    assert not (tmp_path / "plots").exists()


def test_failed_stage_is_shown(tmp_path):
    results = light(make_results())
    results["stages"]["serving"] = {"status": "failed", "error": "RuntimeError: hnswlib crashed",
                                    "wall_s": 3.5}
    render_report(results, tmp_path)
    page = (tmp_path / "report.html").read_text()
    md = (tmp_path / "report.md").read_text()
    assert '<span class="badge st-failed">failed</span>' in page
    assert "stage &#x27;serving&#x27; failed" in page and "hnswlib crashed" in page
    assert "| serving | **failed** |" in md
    assert "> **Warning:**" in md


# ----------------------------------------------------------------------------- several runs
def test_two_runs_side_by_side(tmp_path):
    a = light(make_results())
    b = light(make_results())
    b["dataset"]["name"] = "ml-100k"
    b["run"]["id"] = "20250202-090000-ml100k"
    b["run"]["git_commit"] = "abcdef1234567"
    b["models"]["wals"]["quality"].update({"recall@10": 0.2500, "recall@20": 0.40, "recall@50": 0.55})
    paths = []
    for name, r in (("a.json", a), ("b.json", b)):
        paths.append(tmp_path / name)
        paths[-1].write_text(json.dumps(r))
    out = tmp_path / "out"
    assert cli_main(["report", str(paths[0]), str(paths[1]), "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    label_a = "A: synthetic · 20250101-120000-synthetic · 6b20f43c"
    label_b = "B: ml-100k · 20250202-090000-ml100k · abcdef12"
    headline_html = re.search(r'<table class="t-headline">.*?</table>', page, re.S).group(0)
    assert f'class="group">{label_a}</th>' in headline_html
    assert f'class="group">{label_b}</th>' in headline_html
    assert "A · recall@10" in md and "B · recall@10" in md
    assert "0.1820 ± 0.0040" in md and "0.2500 ± 0.0040" in md
    for suffix in ("A", "B"):
        assert (out / "plots" / f"quality_vs_time_{suffix}.png").exists()
        assert (out / "plots" / f"quality_vs_time_{suffix}.svg").exists()
    # run B's wals beats softmax on quality: its verdict differs from run A's
    rows = re.findall(r"<tr><th scope=\"row\">Overall quality</th>.*?</tr>", headline_html, re.S)
    assert rows and "verdict-confirmed" in rows[0] and "verdict-not-confirmed" in rows[0]


# ----------------------------------------------------------------------------- bad input, CLI
def test_cli_writes_next_to_results(tmp_path, capsys):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(light(make_results())))
    assert cli_main(["report", str(path)]) == 0
    assert (tmp_path / "report.html").exists() and (tmp_path / "report.md").exists()
    assert "report.html" in capsys.readouterr().out


@pytest.mark.parametrize("content, message", [
    (None, "file not found"),
    ("{not json", "invalid JSON at line 1"),
    (json.dumps({"schema_version": 2}), "schema_version 2 is not supported"),
    (json.dumps([1, 2]), "expected a JSON object"),
    (json.dumps({"schema_version": 1, "models": {"wals": {"quality": [0.1]}}}),
     "models['wals'].quality must be an object"),
    (json.dumps({"schema_version": 1, "sweeps": {"folding_vs_w0": {"w0": 1}}}),
     "sweeps['folding_vs_w0'] must be a list"),
])
def test_bad_input_exits_2_naming_the_file(tmp_path, capsys, content, message):
    path = tmp_path / "bad-results.json"
    if content is not None:
        path.write_text(content)
    assert cli_main(["report", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ReportInputError, match=re.escape(message)):
        load_results(path)


def test_render_report_validates_dicts(tmp_path):
    with pytest.raises(ReportInputError, match="schema_version"):
        render_report({"schema_version": 0}, tmp_path)


def test_model_colours_are_stable_and_distinct():
    assert len(set(KNOWN.values())) == len(KNOWN)
    assert model_color("wals") == KNOWN["wals"] == model_color("mf")
    assert model_color("my-new-model") == model_color("my-new-model")
    assert model_color("softmax-positives-only+gravity") != model_color("softmax-positives-only")
    assert re.fullmatch(r"#[0-9a-f]{6}", model_color("softmax-positives-only+gravity"))


# ----------------------------------------------------------------------------- real browser
MARK_IMAGES = """<script>
window.addEventListener('load', function () {
  var imgs = document.images, broken = 0;
  for (var i = 0; i < imgs.length; i++) {
    var ok = imgs[i].complete && imgs[i].naturalWidth > 0;
    imgs[i].setAttribute('data-loaded', ok ? 'yes' : 'no');
    if (!ok) broken++;
  }
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-broken', broken);
  var t = document.querySelector('table.t-headline tbody');
  document.body.setAttribute('data-headline-rows', t ? t.rows.length : -1);
});
</script>"""

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_html_renders_in_headless_chromium(rendered, tmp_path):
    out, _ = rendered
    page = (out / "report.html").read_text()
    probe = tmp_path / "probe.html"  # a copy: the report itself carries no script
    probe.write_text(page.replace("</body>", MARK_IMAGES + "</body>"))
    flags = CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([CHROMIUM, *flags, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    body = re.search(r"<body[^>]*>", dom)
    assert body, "chromium produced no DOM"
    attrs = dict(re.findall(r'data-([\w-]+)="([^"]*)"', body.group(0)))
    assert attrs.get("images") == str(len(PLOTS) + len(SPARKS))
    assert attrs.get("broken") == "0"
    assert attrs.get("headline-rows") == str(len(CLAIMS))
    assert 'data-loaded="no"' not in dom
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, *flags, "--window-size=1400,3000", f"--screenshot={shot}",
                    (out / "report.html").as_uri()], capture_output=True, timeout=120, cwd=tmp_path)
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000  # a rendered page, not a blank one


def test_w0_effect_reads_the_curve():

    assert folding.w0_effect([(0.0, 0.8), (0.01, 0.2), (1.0, 0.6)]) == "helps up to w0 = 0.01, then hurts"
    assert folding.w0_effect([(0.0, 0.8), (1.0, 0.1)]) == "helps"
    assert folding.w0_effect([(0.0, 0.1), (1.0, 0.6)]) == "hurts"
    assert folding.w0_effect([(0.0, 0.10), (1.0, 0.11)]) == "no effect"


def test_folding_regimes_table_and_headline():

    r = make_results()
    r["sweeps"]["folding_regimes"] = [
        {"model": "wals", "n_groups": g, "dim": 8, "groups_per_dim": g / 8, "w0": w, "leakage@10": v,
         "recall@10": 0.3}
        for g, curve in ((10, [(0.0, 0.8), (0.1, 0.1), (1.0, 0.12)]),
                         (100, [(0.0, 0.9), (0.1, 0.5), (1.0, 0.95)]))
        for w, v in curve]
    t = folding.folding_regime_table([r], ["A"])
    assert [k for k, _ in t.rows] == [["wals", "10", "8", "1.2"], ["wals", "100", "8", "12.5"]]
    assert t.rows[0][1][-1] == "helps" and t.rows[1][1][-1] == "helps up to w0 = 0.1, then hurts"
    line = next(c.line for c in headline(r) if c.claim.key == "folding")
    assert "10 groups / d 8: helps" in line and "100 groups / d 8: helps up to w0 = 0.1, then hurts" in line


def test_query_features_line_says_whether_item_features_were_measured():
    r = light(make_results())
    assert verdicts(r)["query_features"].line.endswith("; item features not measured")
    both = next(row for row in r["ablation"] if row["model"] == "softmax-full"
                and row["user_features"] and row["history"])
    r["ablation"].append(dict(both, inputs="both + item features (add)", item_features=True,
                              **{"recall@20": both["recall@20"] + 0.01},
                              item_lift_se={"recall@20": 0.004}))
    line = verdicts(r)["query_features"].line
    assert "; item features move softmax-full recall@20 by +0.0100 ± 0.0040" in line
    rows = {tuple(k): vals for k, vals in query_features.ablation_table([r], ["A"]).rows}
    assert rows[("softmax-full +item features", "yes", "yes")][3] == "+0.0100 ± 0.0040"
    assert rows[("softmax-full", "yes", "yes")][0] == f"{both['recall@20']:.4f}"  # not overwritten
    r["ablation"] = [row for row in r["ablation"] if row["model"] != "softmax-full"
                     or row["user_features"]]  # no user-feature pair left: item lift still said
    v = verdicts(r)["query_features"]
    assert v.verdict == "not measured" and "item features move softmax-full" in v.line


def test_new_items_line_counts_true_new_items():
    r = light(make_results())
    assert "true new items" not in verdicts(r)["cold_items"].line
    names = [n for n in r["models"]]
    r["cold_items_new"] = {"n_new_items": 18, "n_users": 100, "k": 10, "chance_share": 0.011,
                           "models": {n: {"path": None, "share@10": 0.25, "users_with_new": 0.5,
                                          "mean_percentile": 0.3} for n in names}}
    line = verdicts(r)["cold_items"].line
    assert "; 18 true new items (item table only), share of top-10: " in line
    assert "25.0%" in line and "(chance 1.1%)" in line
