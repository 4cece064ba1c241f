"""Declared model parameters (``models/params.py``, ``RecommenderBase.PARAMS``): every path that
builds a model refuses a bad value with one line naming the parameter and its valid range, a
fit that cannot fit in memory is refused before it allocates, and a diverging fit says so.
Issue 29, items 8, 15, 16 and 19."""

from __future__ import annotations

import inspect
import time

import pytest

from mfsoftmax.cli import main
from mfsoftmax.datasets import load, make_split
from mfsoftmax.models import BUILTIN, MODELS, SoftmaxDNN
from mfsoftmax.models import params as P
from mfsoftmax.models.params import ParamError, TrainingDiverged
from mfsoftmax.models.wals import WALS

DATA = ["--param", "n_users=300", "--param", "n_items=200"]


@pytest.fixture(scope="module")
def train():
    return make_split(load("synthetic", n_users=300, n_items=200, seed=0), "holdout", seed=0).train


@pytest.mark.parametrize("kind", sorted(BUILTIN))
def test_every_constructor_parameter_is_declared(kind):
    cls = MODELS[kind]
    taken = [k for k in inspect.signature(cls.__init__).parameters if k != "self"]
    assert sorted(cls.PARAMS) == sorted(taken)
    defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
                if k != "self"}
    assert cls.checked_params(defaults).keys() == defaults.keys()  # the defaults are valid


@pytest.mark.parametrize("cls, kwargs, param, expected", [
    (SoftmaxDNN, {"workers": "abc"}, "workers", "an integer >= 1"),
    (SoftmaxDNN, {"workers": 1.5}, "workers", "an integer >= 1"),
    (SoftmaxDNN, {"dim": float("nan")}, "dim", "an integer >= 1"),
    (SoftmaxDNN, {"dim": True}, "dim", "an integer >= 1"),
    (SoftmaxDNN, {"epochs": 0}, "epochs", "an integer >= 1"),
    (SoftmaxDNN, {"lr": -1}, "lr", "a finite number > 0"),
    (SoftmaxDNN, {"lr": float("inf")}, "lr", "a finite number > 0"),
    (SoftmaxDNN, {"history_dropout": 1.0}, "history_dropout", "in [0, 1)"),
    (SoftmaxDNN, {"use_history": "false"}, "use_history", "true or false"),
    (SoftmaxDNN, {"hidden": [64, 0]}, "hidden", "a list, each an integer >= 1"),
    (SoftmaxDNN, {"table_optimizer": "sgd"}, "table_optimizer", "one of None, 'adam'"),
    (WALS, {"iterations": 0}, "iterations", "an integer >= 1"),
    (WALS, {"dim": "64x"}, "dim", "an integer >= 1"),
    (WALS, {"init_scale": 0}, "init_scale", "a finite number > 0"),
    (WALS, {"spark_reg": "x"}, "spark_reg", "a finite number >= 0 or None"),
])
def test_bad_value_names_the_parameter_and_its_range(cls, kwargs, param, expected):
    with pytest.raises(ParamError) as err:
        cls(**kwargs)
    msg = str(err.value)
    assert err.value.param == param and f"bad parameter {param}=" in msg and expected in msg
    assert "\n" not in msg
    others = {"gravity", "weight_decay"} - {param}
    assert not any(o in msg for o in others)  # lr=-1 names lr alone


def test_integral_numbers_are_taken_as_integers():
    model = SoftmaxDNN(dim=8.0, epochs=2.0, hidden=[16.0])
    assert (model.dim, model.epochs, model.hidden) == (8, 2, (16,))
    assert WALS(dim=1e1).dim == 10 and isinstance(WALS(dim=1e1).dim, int)


@pytest.mark.parametrize("kwargs, param", [
    ({"loss": "in-batch", "batch_size": 1}, "batch_size"),  # no other item: no negative
    ({"workers": 4, "batch_size": 3}, "batch_size"),  # a rank with no example of any batch
    ({"use_history": False, "use_user_features": False}, "use_history"),
])
def test_what_cannot_train_is_refused(kwargs, param):
    with pytest.raises(ParamError) as err:
        SoftmaxDNN(**kwargs)
    assert err.value.param == param
    SoftmaxDNN(**{**kwargs, "batch_size": 4, "use_history": True})  # the fix is accepted


def test_a_parameter_of_another_model_is_named():
    with pytest.raises(ParamError, match="SoftmaxDNN has no parameter 'engine'; it takes: dim"):
        SoftmaxDNN.check_names({"engine": "spark"})
    with pytest.raises(ParamError, match="did you mean 'epochs'"):
        SoftmaxDNN.check_names({"epoch": 3})
    SoftmaxDNN.check_names({"epochs": 3})


def test_memory_estimate_refuses_before_allocating(train, monkeypatch):
    for model in (WALS(dim=3_000_000), SoftmaxDNN(dim=3_000_000)):
        with pytest.raises(ParamError) as err:
            model.check_memory(train, available=8 * 2**30)
        msg = str(err.value)
        assert err.value.param == "dim" and "GiB" in msg and "8 GiB is available" in msg
        assert "workers" not in msg  # one rank: only dim sets the size (SuiteSpec.memory_params)
    monkeypatch.setattr(P, "available_bytes", lambda: 2**30)  # a 1 GiB machine
    t0 = time.perf_counter()
    with pytest.raises(ParamError, match="dim=100000000"):
        WALS(dim=1e8).fit(train)  # U and V alone would take 186 GiB
    assert time.perf_counter() - t0 < 5 and WALS(dim=1e8).U is None
    small = SoftmaxDNN(dim=8, hidden=(16,), epochs=1)
    assert small.check_memory(train) < 2**30


def test_memory_counts_every_rank(train):
    one = SoftmaxDNN(dim=64, workers=1, loss="in-batch")
    four = SoftmaxDNN(dim=64, workers=4, loss="in-batch")
    need_one, need_four = one.check_memory(train, available=2**40), four.check_memory(train, available=2**40)
    assert need_four > 4 * need_one and need_four >= 4 * 250 * 2**20
    with pytest.raises(ParamError, match="lower dim or workers") as err:
        four.check_memory(train, available=(need_one + need_four) / 2)
    assert "rank processes" in str(err.value)


def test_diverging_training_says_so(train):
    with pytest.raises(TrainingDiverged, match=r"training diverged \(NaN loss\) at epoch 1 with lr=1e\+30"):
        SoftmaxDNN(dim=8, hidden=(16,), lr=1e30, epochs=3).fit(train)


@pytest.mark.parametrize("model, setting, words", [
    ("softmax", ["loss=in-batch", "batch_size=1"], "batch_size=1: loss='in-batch' needs batch_size >= 2"),
    ("softmax", ["epochs=0"], "epochs=0: expected an integer >= 1"),
    ("softmax", ["workers=abc"], "workers='abc': expected an integer >= 1"),
    ("softmax", ["dim=NaN"], "dim=nan: expected an integer >= 1"),
    ("softmax", ["engine=spark"], "no parameter 'engine'"),
    ("softmax", ["lr=1e30", "dim=8", "epochs=2"], "training diverged (NaN loss) at epoch 1"),
    ("softmax", ["dim=1e8"], "bad parameter dim=100000000: the fit needs about"),
    ("wals", ["iterations=0"], "iterations=0: expected an integer >= 1"),
    ("wals", ["dim=3000000"], "bad parameter dim=3000000: the fit needs about"),
])
def test_eval_refuses_with_one_line_and_exit_2(capsys, model, setting, words):
    args = ["eval", "--model", model, *DATA]
    for s in setting:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and "Traceback" not in err


def test_data_parallel_divergence_is_raised_as_such():
    from mfsoftmax.models.softmax import spawn

    model = SoftmaxDNN(workers=2, loss="in-batch", lr=1e30)
    line = ("rank {} raised mfsoftmax.models.params.TrainingDiverged: SoftmaxDNN: training "
            "diverged (NaN loss) at epoch 3 with lr=1e+30 (table_lr=0.05); lower lr")
    with pytest.raises(TrainingDiverged, match="at epoch 3 with lr=1e"):
        spawn._raise_diverged(model, [line.format(0), line.format(1)])
    spawn._raise_diverged(model, [line.format(0), "rank 1 was killed by SIGKILL"])  # not only


@pytest.mark.parametrize("section, words", [
    ({"models": {"w": {"kind": "wals", "params": {"iterations": 0}}}},
     "models.w.params.iterations: iterations must be an integer >= 1, got iterations=0"),
    ({"models": {"s": {"kind": "softmax", "params": {"loss": "in-batch", "batch_size": 1}}}},
     "models.s.params.batch_size: loss='in-batch' needs batch_size >= 2"),
    ({"models": {"s": {"kind": "softmax", "search": {"workers": [1, 1.5]}}}},
     "models.s.search.workers: workers must be an integer >= 1, got workers=1.5"),
    ({"models": {"w": {"kind": "wals"}}, "spark": {"master": "sprak://x"}},
     "spark.master: expected a Spark master URL"),
    ({"models": {"w": {"kind": "wals"}}, "spark": {"conf": {"spark.driver.memory": "1m"}}},
     "spark.conf: spark.driver.memory must be at least 450m"),
])
def test_run_config_refuses_with_the_same_check(section, words):
    from mfsoftmax.bench.config import DEFAULTS, ConfigError, merge, validate

    with pytest.raises(ConfigError) as err:
        validate(merge(DEFAULTS, section), "test.toml")
    assert f"test.toml: {words}" in str(err.value)


def test_run_set_names_the_range_of_a_declared_parameter(tmp_path, capsys):
    args = ["run", "--quick", "--out", str(tmp_path / "run"), "--set", "models.wals.params.dim=nan"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "models.wals.params.dim: dim must be an integer >= 1, got dim='nan'" in err
    assert not (tmp_path / "run").exists()


def test_an_integer_searched_over_a_continuous_range_is_refused():
    from mfsoftmax.bench.config import DEFAULTS, ConfigError, merge, validate

    spec = {"models": {"s": {"kind": "softmax", "search": {"dim": {"log": [16, 256]}}}}}
    with pytest.raises(ConfigError, match=r"models.s.search.dim: dim is an integer: search it "
                                          r"with int = \[lo, hi\] or a list \(a log range"):
        validate(merge(DEFAULTS, spec), "test.toml")
    ok = {"models": {"s": {"kind": "softmax", "search": {"dim": {"int": [16, 256]},
                                                         "lr": {"log": [1e-4, 1e-2]}}}}}
    validate(merge(DEFAULTS, ok), "test.toml")
