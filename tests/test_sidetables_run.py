"""`mfsoftmax run --dataset file` with side tables: the feature stages run, item features are
ablated, and true new items are counted and ranked."""

import json

import numpy as np
import pytest

from mfsoftmax.cli import main
from mfsoftmax.reports.verdicts import headline


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two planted groups of 150 users x 60 items; the tables' columns say the group (with
    noise), five items exist only in the item table."""
    d = tmp_path_factory.mktemp("sidefiles")
    rng = np.random.default_rng(0)
    n_u, n_i = 150, 60
    ug, ig = np.arange(n_u) % 2, np.arange(n_i) % 2
    lines = ["user,item"]
    for u in range(n_u):
        own = np.flatnonzero(ig == ug[u])
        for i in rng.choice(own, size=12, replace=False):
            lines.append(f"u{u},i{i}")
    (d / "r.csv").write_text("\n".join(lines) + "\n")
    words = (("space", "alien", "star"), ("love", "paris", "wedding"))
    items = ["item,category,tags,title"]
    for i in range(n_i + 5):
        g = i % 2
        items.append(f"i{i},c{g},t{g}|x{i % 3},{' '.join(rng.choice(words[g], 2))} {i}")
    (d / "items.csv").write_text("\n".join(items) + "\n")
    users = ["user,segment,age"] + [f"u{u},s{ug[u]},{20 + u % 40}" for u in range(n_u)]
    (d / "users.csv").write_text("\n".join(users) + "\n")
    return d


def test_run_uses_both_side_tables(files, tmp_path):
    out = tmp_path / "run"
    code = main(["run", "--quick", "--dataset", "file", "--param", f"path={files / 'r.csv'}",
                 "--param", f"item_features={files / 'items.csv'}",
                 "--param", f"user_features={files / 'users.csv'}",
                 "--models", "popularity", "wals", "softmax-in-batch",
                 "--stages", "quality,ablation,cold_start_items", "--set", "quality.seeds=1",
                 "--out", str(out), "--no-report", "--no-progress"])
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    assert {s: res["stages"][s]["status"] for s in ("ablation", "cold_start_items")} == {
        "ablation": "ok", "cold_start_items": "ok"}
    rows = [r for r in res["ablation"] if r["model"] == "softmax-in-batch"]
    assert {(r["user_features"], bool(r.get("item_features"))) for r in rows} == {
        (False, False), (True, False), (True, True)}
    assert any("item_lift_se" in r for r in rows)
    new = res["cold_items_new"]
    assert new["n_new_items"] == 5 and new["models"]["wals"]["path"] == "feature average"
    assert new["models"]["softmax-in-batch"]["path"] == "item tower"
    assert new["models"]["popularity"]["path"] is None
    lines = {r.claim.key: r.line for r in headline(res)}
    assert "item features move softmax-in-batch" in lines["query_features"]
    assert "; 5 true new items (item table only), share of top-10: " in lines["cold_items"]
