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


def test_plugin_declarations_are_read_from_its_suite_spec(plugin):
    from mfsoftmax.bench.config import DEFAULTS, merge, shrink

    cfg = merge(DEFAULTS, {"models": {"pure-svd": {"kind": "pure-svd", "params": {"dim": 64}},
                                      "other": {"kind": "no-such-kind", "params": {"dim": 64}}}})
    small = shrink(cfg)
    assert small["models"]["pure-svd"]["params"]["dim"] == 16  # PureSVD.suite.quick_caps
    assert small["models"]["other"]["params"]["dim"] == 64  # an unknown kind: nothing capped
    with pytest.raises(TypeError):  # read-only: shared by every instance of the class
        PureSVD.suite.quick_caps["dim"] = 1


def test_a_plugin_declaring_the_old_class_attributes_is_refused_naming_them(tmp_path, monkeypatch):
    """Declarations as loose class attributes (before ``SuiteSpec``) would be ignored silently;
    the class is refused instead, and a plugin of that kind is warned about and left out."""
    (tmp_path / "old_plugin.py").write_text(
        "from tests.example_model import PureSVD\n\n"
        "class OldSVD(PureSVD):\n    quick_caps = {'dim': 8}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    old = EntryPoint(name="old-svd", value="old_plugin:OldSVD", group=models.ENTRY_POINT_GROUP)
    with pytest.warns(UserWarning, match="'old-svd'.*not loaded: TypeError: OldSVD: declare "
                                         "quick_caps in one class attribute"):
        assert models.load_plugins([old]) == []
    assert "old-svd" not in models.MODELS
    with pytest.raises(TypeError, match=r"OldStyle: declare quick_caps, folding_sweep in one "
                                        r"class attribute suite = SuiteSpec\(quick_caps=\.\.\.\)"):
        type("OldStyle", (PureSVD,), {"quick_caps": {"dim": 8}, "folding_sweep": "dim"})
    with pytest.raises(TypeError, match="suite must be a SuiteSpec"):
        type("NoSpec", (PureSVD,), {"suite": {"quick_caps": {"dim": 8}}})


@pytest.mark.parametrize("kwargs, field", [
    ({"serving_modes": ("known-user",)}, "serving_modes"),
    ({"ablation_inputs": (True, False)}, "ablation_inputs"),
    ({"ablation_switches": ("use_history",)}, "ablation_switches"),
    ({"folding_sweep": "lr"}, "folding_sweep"),
    ({"memory_params": "dim"}, "memory_params"),
    ({"one_pass": ["epochs"]}, "one_pass"),
])
def test_suite_spec_refuses_what_the_suite_could_not_read(kwargs, field):
    with pytest.raises(TypeError, match=f"SuiteSpec: (bad )?{field}"):
        models.SuiteSpec(**kwargs)
