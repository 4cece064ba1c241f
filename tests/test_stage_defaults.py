"""The config's defaults and ``--quick`` caps as the stages declare them (issue 28): assembled,
they are the dict the suite had before each stage held its own block; and what a stage needs
from earlier stages (``USES``), checked with a message naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mfsoftmax.bench import ann, config, stages

SNAPSHOT = Path(__file__).resolve().parent / "fixtures" / "config_defaults.json"


def test_assembled_defaults_and_quick_caps_equal_the_snapshot():
    want = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert config.DEFAULTS == want["defaults"]
    assert config.QUICK == want["quick"]


def test_every_stage_section_is_declared_by_a_stage_module():
    owners = {}
    for name in stages.REGISTRY:
        for section in getattr(stages.load(name), "DEFAULTS", {}):
            owners.setdefault(section, []).append(name)
    assert set(config.DEFAULTS) == set(config.CORE) | set(owners)
    assert not set(config.CORE) & set(owners)  # a section is the core's or the stages'
    assert owners["cold_start"] == ["cold_start_users", "cold_start_items"]
    assert owners["sweeps"] == ["serving_vs_corpus", "training_vs_size"]
    # the ANN grids come from the index modules (bench/ann/<index>.py)
    assert config.DEFAULTS["sweeps"]["ann_params"] == ann.default_params()
    assert config.QUICK["sweeps"]["ann_params"] == ann.default_params(quick=True)


def test_a_key_two_stages_declare_must_have_one_default(monkeypatch):
    mod = stages.load("training_vs_size")
    monkeypatch.setattr(mod, "DEFAULTS", {"sweeps": {**mod.DEFAULTS["sweeps"], "time_budget_s": 5}})
    with pytest.raises(ValueError, match="training_vs_size declares DEFAULTS sweeps.time_budget_s "
                                         "= 5, serving_vs_corpus 120"):
        stages.declared("DEFAULTS")


def test_quick_caps_apply_through_shrink():
    cfg = config.shrink(config.load_config("default"))
    assert cfg["tuning"]["trials"] == config.QUICK["tuning"]["trials"] == 1
    assert cfg["sweeps"]["ann_params"]["hnswlib"]["ef"] == [10, 64, 256]
    assert cfg["sweeps"]["ann_params"]["hnswlib"]["M"] == 16  # construction params kept


@pytest.fixture(scope="module")
def bare_ctx():
    """A run's context before any stage ran: nothing fitted, nothing tuned."""
    from mfsoftmax.bench.context import RunContext
    from mfsoftmax.bench.progress import Log
    from mfsoftmax.datasets import load, make_split

    cfg = config.merge(config.DEFAULTS, {"models": {"p": {"kind": "popularity"}},
                                         "run": {"progress": False}})
    data = load("synthetic", n_users=120, n_items=80, n_groups=4, seed=0)
    return RunContext(cfg, data, make_split(data, "strong", seed=0), Log(False), {})


@pytest.mark.parametrize("stage", [n for n in stages.REGISTRY
                                   if getattr(stages.load(n), "USES", None)])
def test_a_stage_run_alone_names_what_it_needs_from_earlier_stages(stage, bare_ctx):
    from mfsoftmax.bench.context import MissingInput

    uses = stages.load(stage).USES
    with pytest.raises(MissingInput) as err:
        stages.load(stage).run(bare_ctx)
    msg = str(err.value)
    assert msg.startswith(f"stage {stage} needs ")
    for attr, src in uses.items():
        assert f"ctx.{attr} (from the {src} stage)" in msg and f"stages.{src}" in msg


def test_stages_that_read_the_quality_stage_declare_it():
    # (ablation, hashing and offline_topk say which fitted model they lack: MissingInput)
    declared = {n: getattr(stages.load(n), "USES", {}) for n in stages.REGISTRY}
    for name in ("serving", "cold_start_users", "cold_start_items", "strata"):
        assert "quality" in declared[name].values(), name
    assert not declared["quality"]
