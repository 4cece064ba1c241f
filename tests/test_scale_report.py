"""The report's Scale section: per-pass cost by size, growth exponents, the cost of distribution."""

from __future__ import annotations

import pytest

from mfsoftmax.reports import render_report
from mfsoftmax.reports import tables as tb
from mfsoftmax.reports.sections.scale import series, training_vs_size
from mfsoftmax.reports.sections.scale import tables as scale_tables
from tests.fixtures.results_fixture import make_results

SIZES = (10_000, 100_000, 1_000_000)


def row(model, family, n, s_per_pass, engine="implicit", workers=1, rss=500.0, children=0.0):
    return {"model": model, "family": family, "n_interactions": n, "n_items": n // 100,
            "n_users": n // 20, "wall_s": s_per_pass * 3 + 1.0, "s_per_pass": s_per_pass,
            "examples_per_s": n / s_per_pass, "peak_rss_mb": rss / 2, "peak_rss_abs_mb": rss,
            "children_peak_rss_mb": children, "engine": engine, "workers": workers,
            "processes": 1 + (workers > 1), "dim": 32}


def results_with(rows) -> dict:
    r = make_results()
    for m in r["models"].values():
        m.pop("embeddings", None)
    r["sweeps"] = {"training_vs_size": rows}
    return r


def scale_rows():
    rows = []
    for n in SIZES:
        rows.append(row("wals", "mf", n, 1e-6 * n ** 1.5, rss=400.0))
        rows.append(row("wals-spark", "mf", n, 10 * 1e-6 * n ** 1.5, engine="spark", workers=4,
                        rss=300.0, children=900.0))
        rows.append(row("softmax-full", "softmax", n, 2e-4 * n, engine="torch"))
    rows.append({"model": "softmax-full", "family": "softmax", "n_interactions": 10_000_000,
                 "n_items": 100_000, "wall_s": None, "peak_rss_mb": None,
                 "note": "time budget 200s spent"})
    return rows


def by_key(results_list, key):
    tables = {t.key: t for t in scale_tables(results_list, [f"{chr(65 + i)}" for i in
                                                            range(len(results_list))])}
    return tables.get(key)


def cells(table, col, group=0) -> dict:
    """{key cells: the value of column ``col`` in run ``group``}."""
    offset = sum(len(cols) for _, cols in table.groups[:group])
    i = offset + table.groups[group][1].index(col)
    return {tuple(k): tb.cell_text(v[i]) for k, v in table.rows}


def test_growth_exponent_is_the_slope_of_s_per_pass():
    t = by_key([results_with(scale_rows())], "scale-growth")
    b = cells(t, "exponent b")
    assert b[("wals",)] == "1.50" and b[("wals-spark",)] == "1.50"
    assert b[("softmax-full",)] == "1.00"
    assert cells(t, "largest N")[("softmax-full",)] == "1M"  # the size not run does not count
    assert cells(t, "family")[("wals-spark",)] == "mf"
    assert cells(t, "peak RSS there")[("wals-spark",)] == "1,200 MB"  # own + children


def test_exponent_is_a_dash_with_one_size():
    rows = [row("wals", "mf", 10_000, 0.5)]
    t = by_key([results_with(rows)], "scale-growth")
    assert cells(t, "exponent b")[("wals",)] == "—"
    assert cells(t, "s/pass there")[("wals",)] == "0.500 s"


def test_distribution_ratio_against_the_single_process_reference():
    t = by_key([results_with(scale_rows())], "scale-distribution")
    assert t is not None and [k[0] for k, _ in t.rows] == ["wals-spark"]
    key = ("wals-spark", "mf", "spark", "4")
    assert cells(t, "reference")[key] == "wals"
    assert cells(t, "time")[key] == "10.0x slower"
    assert cells(t, "memory")[key] == "3.0x"  # (300 + 900) / 400
    assert cells(t, "N")[key] == "1M"


def test_distribution_faster_and_largest_shared_size():
    rows = [row("softmax-full", "softmax", n, 1e-3 * n, engine="torch") for n in SIZES]
    rows += [row("softmax-ddp", "softmax", n, 0.6e-3 * n, engine="torch", workers=2)
             for n in SIZES[:2]]
    t = by_key([results_with(rows)], "scale-distribution")
    key = ("softmax-ddp", "softmax", "torch", "2")
    assert cells(t, "time")[key] == "0.6x (faster)"
    assert cells(t, "N")[key] == "100k"  # the largest N both ran, not the reference's 1M


def test_no_distribution_table_with_one_configuration_per_family():
    rows = [r for r in scale_rows() if r["model"] != "wals-spark"]
    assert by_key([results_with(rows)], "scale-distribution") is None


def test_reference_falls_back_to_the_fastest_single_worker_model():
    rows = []
    for n in SIZES:
        rows.append(row("wals-spark1", "mf", n, 3e-5 * n, engine="spark"))
        rows.append(row("wals-slow", "mf", n, 9e-5 * n, engine="other"))
        rows.append(row("wals-spark4", "mf", n, 6e-5 * n, engine="spark", workers=4))
    t = by_key([results_with(rows)], "scale-distribution")
    refs = cells(t, "reference")
    assert refs[("wals-spark4", "mf", "spark", "4")] == "wals-spark1"
    assert cells(t, "time")[("wals-spark4", "mf", "spark", "4")] == "2.0x slower"


def test_two_runs_line_up_by_key():
    a = results_with(scale_rows())
    rows = scale_rows()
    for r in rows:
        if r["model"] == "wals-spark":
            r["s_per_pass"] = r["s_per_pass"] / 2
    b = results_with(rows)
    t = by_key([a, b], "scale-distribution")
    key = ("wals-spark", "mf", "spark", "4")
    assert len(t.groups) == 2 and t.groups[0][0] == "A"
    assert cells(t, "time", 0)[key] == "10.0x slower"
    assert cells(t, "time", 1)[key] == "5.0x slower"


def test_size_not_run_shows_its_note():
    t = by_key([results_with(scale_rows())], "training_vs_size")
    notes = cells(t, "note")
    assert notes[("softmax-full", "torch", "1", "10M")] == "time budget 200s spent"
    assert notes[("softmax-full", "torch", "1", "1M")] == "—"
    assert cells(t, "s/pass")[("softmax-full", "torch", "1", "10M")] == "—"
    assert cells(t, "children peak RSS")[("wals-spark", "spark", "4", "1M")] == "900 MB"
    assert cells(t, "children peak RSS")[("wals", "implicit", "1", "1M")] == "—"


def old_rows():
    """Rows as files written before the per-pass keys: wall_s and RSS growth only."""
    return [{"model": m, "n_interactions": n, "n_items": n // 100, "wall_s": c * n ** 1.2,
             "peak_rss_mb": 100.0} for n in SIZES for m, c in (("wals", 1e-5), ("softmax-full", 1e-4))]


def test_old_rows_fall_back_to_wall_time_with_dashes():
    r = results_with(old_rows())
    growth = by_key([r], "scale-growth")
    assert cells(growth, "exponent b")[("wals",)] == "1.20"
    assert cells(growth, "engine")[("wals",)] == "—"
    cost = by_key([r], "training_vs_size")
    key = ("wals", "—", "—", "1M")
    assert cells(cost, "examples/s")[key] == "—" and cells(cost, "peak RSS")[key] == "—"
    assert cells(cost, "RSS growth")[key] == "100 MB"
    assert "children peak RSS" not in cost.groups[0][1]
    assert by_key([r], "scale-distribution") is None
    assert training_vs_size(r) is not None


def test_plot_uses_seconds_per_pass_with_engine_markers():
    fig = training_vs_size(results_with(scale_rows()))
    ax = fig.axes[0]
    lines = {ln.get_label().split(" ")[0]: ln for ln in ax.get_lines()}
    assert lines["wals-spark"].get_marker() == "s" and lines["wals-spark"].get_linestyle() == "--"
    assert lines["wals"].get_marker() == "o" and lines["wals"].get_linestyle() == "-"
    assert lines["softmax-full"].get_marker() == "^"
    assert list(lines["wals"].get_ydata()) == pytest.approx([1e-6 * n ** 1.5 for n in SIZES])
    assert "$N^{1.50}$" in lines["wals"].get_label()
    assert ax.get_ylabel() == "seconds per pass (log)" and ax.get_yscale() == "log"
    assert ax.get_title() == "Training cost vs data size (one pass)"
    assert [s[0] for s in series(results_with(scale_rows()))] == ["softmax-full", "wals",
                                                                 "wals-spark"]


@pytest.mark.parametrize("rows", [scale_rows(), old_rows()], ids=["new", "old"])
def test_report_has_a_scale_section(tmp_path, rows):
    render_report(results_with(rows), tmp_path)
    md = (tmp_path / "report.md").read_text()
    page = (tmp_path / "report.html").read_text()
    training = md.split("## Training cost")[1].split("\n## ")[0]
    assert "Training cost vs data size" not in training
    assert "training_vs_size.png" not in training
    scale = md.split("\n## Scale\n")[1].split("\n## ")[0]
    assert md.index("## Training cost") < md.index("## Scale") < md.index("## Serving")
    assert "### Training cost vs data size (one pass)" in scale
    assert "### Growth with data size" in scale
    assert "(plots/training_vs_size.png)" in scale
    assert md.count("### Training cost vs data size") == 1
    assert ("### Cost of distribution" in scale) == (rows[0].get("engine") is not None)
    assert 'id="scale"' in page and 'href="#scale"' in page
    assert "least-squares" in scale and "one machine" in scale


def test_training_claim_judges_one_pass_not_the_whole_fit():
    from mfsoftmax.reports.verdicts import headline

    res = results_with(scale_rows())
    (claim,) = [c for c in headline(res) if c.claim.key == "training"]
    # wals's s_per_pass grows as N^1.5 (its wall_s = 3 s_per_pass + 1 does not); the spark
    # engine (10x slower) is not the family's pick
    assert claim.models["mf"] == "wals"
    assert claim.figures["mf"].startswith("N^1.50")
    assert claim.figures["softmax"].startswith("N^1.00")
