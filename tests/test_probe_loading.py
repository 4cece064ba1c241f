"""One dataset-loading path (issue 28): the folding stage's probes load through the function the
runner's ``prepare`` uses (bench/data.py), so they honour the same ``[dataset]`` options."""

from __future__ import annotations

import numpy as np
import pytest

from mfsoftmax.bench import config
from mfsoftmax.bench.context import RunContext
from mfsoftmax.bench.data import load_dataset
from mfsoftmax.bench.runner import Runner
from mfsoftmax.bench.stages import folding

SMALL = {"n_users": 300, "n_items": 160, "n_groups": 4}


def _cfg(dataset: dict, folding_opts: dict) -> dict:
    return config.merge(config.DEFAULTS, {
        "dataset": {"name": "synthetic", "params": SMALL, **dataset},
        "folding": folding_opts, "models": {"p": {"kind": "popularity"}},
        "run": {"progress": False, "seed": 3}})


def _prepared(tmp_path, cfg) -> RunContext:
    runner = Runner(cfg, tmp_path / "run")
    runner.prepare()
    return runner.ctx


def test_a_dataset_params_probe_honours_the_caps_and_options_of_the_run(tmp_path):
    cfg = _cfg({"max_users": 120, "max_interactions": 2000, "min_item": 2},
               {"dataset_params": {"noise": 0.0}})
    ctx = _prepared(tmp_path, cfg)
    assert ctx.data.n_users <= 120 and ctx.data.n_interactions <= 2000
    data, kind = folding.probe_data(ctx)
    assert kind == "planted" and data is not ctx.data
    # before: loaded with the builder params only, the probe had all 300 users, uncapped
    assert data.n_users <= 120 and data.n_interactions <= 2000
    assert data.meta["k_core"] == ctx.data.meta["k_core"] == {"min_user": 0, "min_item": 2}
    assert data.meta["noise"] == 0.0 and data.meta["seed"] == 3  # the run's seed


def test_a_probe_with_the_runs_own_params_is_the_runs_data(tmp_path):
    cfg = _cfg({"max_users": 150}, {"dataset_params": dict(SMALL)})
    ctx = _prepared(tmp_path, cfg)
    data, _ = folding.probe_data(ctx)
    assert data is not ctx.data
    assert (data.n_users, data.n_items) == (ctx.data.n_users, ctx.data.n_items)
    assert np.array_equal(data.matrix.indices, ctx.data.matrix.indices)
    assert np.array_equal(data.matrix.indptr, ctx.data.matrix.indptr)


def test_load_dataset_seeds_the_generators_and_reports_the_size_before_the_cap():
    ds = config.merge(config.DEFAULTS["dataset"], {"params": SMALL, "max_users": 50})
    data, full = load_dataset(ds, seed=7)
    assert data.meta["seed"] == 7 and data.n_users == 50 and full[0] == 300
    assert load_dataset(ds, seed=7, params={**SMALL, "seed": 1})[0].meta["seed"] == 1


@pytest.mark.parametrize("name", ["load", "dataset_params"])
def test_the_folding_stage_has_no_loading_path_of_its_own(name):
    assert not hasattr(folding, name) and not hasattr(RunContext, name)


def test_a_reused_models_recall_comes_from_the_quality_stage_and_equals_scoring_it(tmp_path,
                                                                                  monkeypatch):
    """The folding probe on the run's own data reuses the quality stage's fitted model, and its
    recall@10 is the mean of that model's per-user quality arrays (not scored again); it equals
    scoring the model here. A model the probe fitted itself is still scored."""
    from mfsoftmax.bench.stages import quality

    runner = Runner(_cfg({}, {"probe": "planted"}), tmp_path / "run")
    runner.prepare()
    runner.merge(quality.run(runner.ctx))
    ctx = runner.ctx
    probe = folding._Probe(ctx)
    model = probe.fit("p")
    assert model is ctx.fitted["p"]
    scored = folding._measure(model, probe.split, probe.data, probe.k)["recall@10"]
    calls = []
    real = folding.evaluate
    monkeypatch.setattr(folding, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert probe.measure(model)["recall@10"] == pytest.approx(scored, abs=1e-15)
    assert calls == []
    other = ctx.build("p", {}).fit(probe.split.train)  # not the quality stage's model
    assert probe.measure(other)["recall@10"] == pytest.approx(scored, abs=1e-15)
    assert calls == [1]
