"""Weighted implicit feedback end to end: a count file, its counts kept, WALS weighting them, the
suite's implicit-counts config running on it."""

import json

import numpy as np
import pytest

from mfsoftmax.cli import main
from mfsoftmax.datasets import load, make_split
from mfsoftmax.models import WALS


@pytest.fixture(scope="module")
def plays(tmp_path_factory):
    rng = np.random.default_rng(0)
    rows = []
    for u in range(300):
        g = u % 6
        items = rng.choice(np.arange(g * 20, (g + 1) * 20), size=int(rng.integers(6, 16)), replace=False)
        rows += [(u, int(i), int(rng.geometric(0.2))) for i in items]
    path = tmp_path_factory.mktemp("counts") / "plays.csv"
    path.write_text("user,item,plays\n" + "".join(f"{u},{i},{c}\n" for u, i, c in rows))
    return path, rows


def test_counts_are_kept_without_binarizing(plays):
    path, rows = plays
    data = load("file", path=str(path), binary=False)
    assert data.n_interactions == len(rows)
    assert sorted(data.matrix.data.astype(int).tolist()) == sorted(c for _, _, c in rows)
    assert set(load("file", path=str(path)).matrix.data.tolist()) == {1.0}


def test_log_weights_pull_heavy_items_up_in_a_fold_in(plays):
    path, _ = plays
    data = load("file", path=str(path), binary=False)
    train = make_split(data, "holdout", seed=0).train
    kw = dict(dim=8, w0=0.05, reg=1.0, iterations=6, seed=0)
    weighted = WALS(weight="log", alpha=5.0, **kw).fit(train)
    plain = WALS(**kw).fit(train)
    # a new user who played item 0 (group 0) a thousand times and five items of group 3 once each
    import scipy.sparse as sp

    hist = np.zeros((1, data.n_items), np.float32)
    hist[0, 0] = 1000
    hist[0, 60:65] = 1
    rows = sp.csr_matrix(hist)

    def lean(model):  # how much more the user's embedding scores group 0 than group 3 (unseen items)
        s = model.V @ model.fold_in_users(rows)[0]
        return s[1:20].mean() - s[65:80].mean()

    assert lean(weighted) > lean(plain) + 0.1


def test_implicit_counts_config_runs(plays, tmp_path):
    path, _ = plays
    out = tmp_path / "run"
    code = main(["run", "--config", "implicit-counts", "--param", f"path={path}", "--quick",
                 "--stages", "quality,cold_start_users,folding", "--no-report", "--no-progress",
                 "--out", str(out)])
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    assert res["run"]["config"]["dataset"]["binarize"] is False
    assert res["models"]["wals"]["params"]["weight"] == "log"
    assert all(res["stages"][s]["status"] == "ok" for s in ("quality", "cold_start_users", "folding"))
    assert 0.0 < res["models"]["wals"]["quality"]["recall@20"] <= 1.0
