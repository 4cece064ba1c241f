"""The ``models/softmax/`` package (issue 28): hyper-parameters declared once in groups with
``get_params`` derived from the constructor's signature, the training engine picked by a
factory from ``workers``, one module per part within the size limits, no old module paths."""

from __future__ import annotations

import ast
import importlib.util
import inspect
from pathlib import Path

import pytest

from mfsoftmax.datasets import load, make_split
from mfsoftmax.models import MODELS, SoftmaxDNN
from mfsoftmax.models.softmax import engines, hparams, spawn, train

PACKAGE = Path(inspect.getfile(hparams)).parent
SIGNATURE = [n for n in inspect.signature(SoftmaxDNN.__init__).parameters if n != "self"]
OLD_MODULES = ("softmax_dnn", "softmax_ddp", "softmax_train", "softmax_towers", "softmax_bags",
               "softmax_losses", "softmax_optim", "softmax_persist")


def test_groups_partition_the_declared_parameters():
    assert list(hparams.GROUPS) == ["tower", "training", "serving", "run"]
    names = [n for group in hparams.GROUPS.values() for n in group]
    assert len(names) == len(set(names))  # no parameter in two groups
    assert set(names) == set(SIGNATURE) == set(SoftmaxDNN.PARAMS)
    assert SoftmaxDNN.PARAMS is hparams.PARAMS


def test_get_params_is_derived_from_the_signature():
    model = SoftmaxDNN(dim=32.0, hidden=[48, 16], loss="in-batch", feature_dim=99, lr=0.01,
                       item_bias=True, serve_runtime="eager", progress=True, name="x")
    params = model.get_params()
    assert list(params) == [n for n in SIGNATURE if n not in hparams.NOT_SAVED]
    assert "progress" not in params  # not a hyper-parameter (nor saved, nor in results.json)
    assert params["dim"] == 32 and isinstance(params["dim"], int)  # checked and converted
    assert model.hidden == (48, 16) and params["hidden"] == [48, 16]  # JSON: a list
    assert params["feature_dim"] == 32  # capped at dim, as before
    assert {k: v for k, v in params.items() if k != "hidden"} == \
        {k: getattr(model, k) for k in params if k != "hidden"}
    assert SoftmaxDNN(**params).get_params() == params  # the flat keywords round-trip


def test_param_groups_split_get_params():
    model = SoftmaxDNN(dim=8, loss="sampled-uniform", serve_runtime="torchscript", seed=3)
    groups = model.param_groups()
    assert groups["serving"] == {"serve_runtime": "torchscript"}
    assert groups["tower"]["dim"] == 8 and groups["training"]["loss"] == "sampled-uniform"
    assert groups["run"]["seed"] == 3
    merged = {k: v for group in groups.values() for k, v in group.items()}
    assert merged == model.get_params()


def test_the_engine_comes_from_workers(monkeypatch):
    assert engines.trainer(1) is train.fit
    assert engines.trainer(2) is spawn.fit and engines.trainer(4) is spawn.fit
    used = []

    def fake(workers):
        used.append(workers)
        return lambda model, *args: None

    monkeypatch.setattr(engines, "trainer", fake)
    data = make_split(load("synthetic", n_users=40, n_items=30, seed=0), "holdout", seed=0)
    SoftmaxDNN(dim=4, hidden=(), epochs=1, workers=2, batch_size=8).fit(data.train)
    SoftmaxDNN(dim=4, hidden=(), epochs=1).fit(data.train)
    assert used == [2, 1]


def test_single_process_engine_sets_train_info():
    data = make_split(load("synthetic", n_users=40, n_items=30, seed=0), "holdout", seed=0)
    model = SoftmaxDNN(dim=4, hidden=(), epochs=2, loss="sampled-uniform", n_negatives=5).fit(data.train)
    assert model.train_info["workers"] == 1 and model.train_info["backend"] is None
    assert len(model.train_info["epoch_seconds"]) == len(model.history) == 2


def test_the_registry_and_the_package_export_the_same_class():
    assert MODELS["softmax"] is SoftmaxDNN
    assert SoftmaxDNN.__module__ == "mfsoftmax.models.softmax.model"


@pytest.mark.parametrize("old", OLD_MODULES)
def test_no_module_is_left_at_an_old_path(old):
    assert importlib.util.find_spec(f"mfsoftmax.models.{old}") is None


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_modules_and_functions_stay_small(path):
    text = path.read_text()
    assert len(text.splitlines()) <= 450, f"{path.name}: {len(text.splitlines())} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            size = node.end_lineno - node.lineno + 1
            assert size <= 80, f"{path.name}: {node.name} has {size} lines"
