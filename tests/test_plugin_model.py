"""A third-party model joins the suite through the ``mfsoftmax.models`` entry point group: one
module (tests/example_model.py), one entry point, one contract subclass, one config section."""

import json
from importlib.metadata import EntryPoint

import pytest

from mfsoftmax import models
from mfsoftmax.cli import main
from tests.contract import RecommenderContract
from tests.example_model import PureSVD

EP = EntryPoint(name="pure-svd", value="tests.example_model:PureSVD", group=models.ENTRY_POINT_GROUP)


class TestPureSVDContract(RecommenderContract):
    min_in_group = 0.9

    def make_model(self):
        return PureSVD(dim=4)


@pytest.fixture
def plugin():
    assert models.load_plugins([EP]) == ["pure-svd"]
    yield
    models.MODELS.pop("pure-svd", None)


def test_entry_point_registers_the_model(plugin):
    assert models.MODELS["pure-svd"] is PureSVD


def test_plugin_model_runs_in_the_suite(plugin, tmp_path):
    cfg = tmp_path / "mine.toml"
    cfg.write_text('[models.popularity]\nkind = "popularity"\n\n'
                   '[models.wals]\nkind = "wals"\nparams = { dim = 16, iterations = 4 }\n\n'
                   '[models.pure-svd]\nkind = "pure-svd"\nparams = { dim = 16 }\n'
                   'search = { dim = [8, 16, 32] }\n')
    out = tmp_path / "run"
    code = main(["run", "--config", str(cfg), "--quick", "--stages",
                 "quality,serving,cold_start_users,offline_topk", "--no-report", "--no-progress",
                 "--out", str(out)])
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    svd = res["models"]["pure-svd"]
    assert svd["family"] == "mf" and svd["params"]["dim"] == 16
    assert 0.3 < svd["quality"]["recall@20"] <= 1.0  # it ranks, well above chance, on planted groups
    assert svd["serving"]["mode"] == "known-user"
    assert [p["n_known"] for p in svd["cold_start"]["users"]] == [0, 1, 5]
    assert any(r["a"] == "wals" and r["b"] == "pure-svd" for r in res["quality_paired_se"])


def test_plugin_parameters_are_checked_like_builtins(plugin, tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[models.pure-svd]\nkind = "pure-svd"\nparams = { dimm = 8 }\n')
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "models.pure-svd.params.dimm" in capsys.readouterr().err


def test_broken_or_clashing_plugins_are_warned_and_left_out():
    broken = EntryPoint(name="broken", value="tests.no_such_module:X", group=models.ENTRY_POINT_GROUP)
    clash = EntryPoint(name="wals", value="tests.example_model:PureSVD", group=models.ENTRY_POINT_GROUP)
    not_model = EntryPoint(name="notmodel", value="json:dumps", group=models.ENTRY_POINT_GROUP)
    with pytest.warns(UserWarning) as seen:
        assert models.load_plugins([broken, clash, not_model]) == []
    assert len(seen) == 3
    assert models.MODELS["wals"] is models.WALS
    assert "broken" not in models.MODELS and "notmodel" not in models.MODELS
