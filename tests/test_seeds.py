"""Training-seed variance: figures averaged over seeds, gaps paired by user and seed."""

import json

import numpy as np
import pytest

from mfsoftmax.bench.stages.paired import paired_rows_seeds
from mfsoftmax.cli import main


def test_paired_rows_by_user_and_seed_by_hand():
    # two seeds, three users; model a = b + a constant per seed
    b0, b1 = np.array([0.1, 0.5, 0.9]), np.array([0.2, 0.4, 0.6])
    a0, a1 = b0 + np.array([0.1, 0.3, 0.2]), b1 + np.array([0.0, 0.1, 0.2])
    rows = paired_rows_seeds({"a": [{"r": a0}, {"r": a1}], "b": [{"r": b0}, {"r": b1}]})
    assert len(rows) == 1
    row = rows[0]
    d = np.array([a0 - b0, a1 - b1])  # seeds x users
    users = np.std(d.mean(axis=0), ddof=1) / np.sqrt(3)
    gaps = d.mean(axis=1)  # 0.2 and 0.1
    seeds = np.std(gaps, ddof=1) / np.sqrt(2)
    assert row["components"]["r"]["users"] == pytest.approx(users)
    assert row["components"]["r"]["seeds"] == pytest.approx(seeds) == pytest.approx(0.05)
    assert row["r"] == pytest.approx(np.hypot(users, seeds))
    assert row["n_seeds"] == 2 and row["n_users"] == 3


def test_identical_seeds_have_no_seed_component():
    x = {"r": np.array([0.1, 0.2, 0.4])}
    y = {"r": np.array([0.0, 0.3, 0.1])}
    row = paired_rows_seeds({"a": [x, x], "b": [y, y]})[0]
    assert row["components"]["r"]["seeds"] == 0.0
    assert row["r"] == pytest.approx(row["components"]["r"]["users"])


def test_quality_stage_trains_every_seed(tmp_path):
    out = tmp_path / "s"
    assert main(["run", "--quick", "--models", "popularity", "wals", "softmax-in-batch",
                 "--stages", "quality", "--set", "quality.seeds=2", "--no-report",
                 "--no-progress", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    dnn, pop = res["models"]["softmax-in-batch"], res["models"]["popularity"]
    seeds = dnn["quality_seeds"]["recall@20"]
    assert len(seeds) == 2 and seeds[0] != seeds[1]  # a second seed trains another model
    assert dnn["quality"]["recall@20"] == pytest.approx(np.mean(seeds))
    assert dnn["quality_seed_sd"]["recall@20"] == pytest.approx(np.std(seeds, ddof=1))
    assert pop["quality_seed_sd"]["recall@20"] == 0.0  # no seed: deterministic
    row = next(r for r in res["quality_paired_se"] if {r["a"], r["b"]} == {"wals", "softmax-in-batch"})
    comp = row["components"]["recall@20"]
    assert comp["seeds"] > 0 and row["recall@20"] == pytest.approx(np.hypot(comp["users"], comp["seeds"]))
    from mfsoftmax.reports.sections.quality import seed_share

    share = seed_share(res, "wals", "softmax-in-batch", "recall@20")
    assert 0.0 < share < 1.0
    from mfsoftmax.reports.sections.quality import paired_gap_table

    table = paired_gap_table([res], ["A"])
    cells = [str(c) for row in table.rows for c in (row.values() if isinstance(row, dict) else row)]
    assert any("of var" in c for c in cells)
