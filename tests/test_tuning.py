"""The hyperparameter search (bench/tuning.py): Optuna's seeded TPE (default) or random sampler,
trial 0 = the configured params, every distribution kind honoured, deterministic for a seed."""

import math

import pytest

from mfsoftmax.bench.config import DEFAULTS, ConfigError, load_config, merge, validate
from mfsoftmax.bench.tuning import SAMPLERS, parse_space, random_search, search

FIXED = {"lr": 0.05, "n": 2, "act": "relu", "hidden": [64], "other": 3}
SPACE = {"lr": {"log": [1e-4, 1e-1]}, "n": {"int": [1, 9]}, "act": ["relu", "tanh", "gelu"],
         "hidden": [[64], [128, 64]], "drop": {"uniform": [0.0, 0.5]}}


def toy(params):
    """Best near lr = 3e-3, n = 6, act = gelu, hidden = [128, 64], drop = 0.2."""
    score = (-(math.log10(params["lr"]) + 2.5) ** 2 - (params["n"] - 6) ** 2 / 8
             - (params.get("drop", 0.0) - 0.2) ** 2 + (params["act"] == "gelu")
             + 0.5 * (params["hidden"] == [128, 64]))
    return score, {"echo": dict(params)}


def _draws(result):
    return [(t["params"], t["score"]) for t in result["trials"]]


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_deterministic_for_a_seed(sampler):
    a = search(toy, FIXED, SPACE, 12, seed=3, sampler=sampler)
    b = search(toy, FIXED, SPACE, 12, seed=3, sampler=sampler)
    c = search(toy, FIXED, SPACE, 12, seed=4, sampler=sampler)
    assert _draws(a) == _draws(b)
    assert a["best_params"] == b["best_params"] and a["best_score"] == b["best_score"]
    assert _draws(a)[1:] != _draws(c)[1:]  # another seed, other draws (trial 0 is the same)
    assert a["sampler"] == sampler


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_trial_zero_is_the_fixed_params(sampler):
    seen = []

    def fit(params):
        seen.append(dict(params))
        return toy(params)

    res = search(fit, FIXED, SPACE, 4, seed=0, sampler=sampler)
    assert seen[0] == FIXED | {"drop": seen[0]["drop"]}  # drop has no fixed value: drawn
    assert {k: seen[0][k] for k in FIXED} == FIXED
    assert res["trials"][0]["trial"] == 0 and res["trials"][0]["params"] == seen[0]
    assert [t["params"] for t in res["trials"]] == seen
    assert all(p["other"] == 3 for p in seen)  # unsearched fixed params ride along


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_distribution_kind_is_honoured(sampler):
    res = search(toy, FIXED, SPACE, 25, seed=1, sampler=sampler)
    assert len(res["trials"]) == 25
    for t in res["trials"]:
        p = t["params"]
        assert isinstance(p["lr"], float) and 1e-4 <= p["lr"] <= 1e-1
        assert type(p["n"]) is int and 1 <= p["n"] <= 9
        assert isinstance(p["drop"], float) and 0.0 <= p["drop"] <= 0.5
        assert p["act"] in SPACE["act"]
        assert p["hidden"] in SPACE["hidden"] and isinstance(p["hidden"], list)
    later = res["trials"][1:]
    assert len({t["params"]["act"] for t in later}) > 1 and len({t["params"]["n"] for t in later}) > 1
    lrs = sorted(t["params"]["lr"] for t in later)
    assert lrs[0] < 1e-3 < lrs[-1]  # log-uniform: both decades below and above 1e-3 visited


def test_history_and_wall_time():
    res = search(toy, FIXED, SPACE, 5, seed=0)
    assert [t["trial"] for t in res["trials"]] == list(range(5))
    assert all(t["seconds"] >= 0 for t in res["trials"])
    assert res["search_s"] >= sum(t["seconds"] for t in res["trials"])
    best = max(res["trials"], key=lambda t: t["score"])
    assert res["best_score"] == best["score"] and res["best_params"] == best["params"]
    assert res["best_payload"] == {"echo": best["params"]}


def test_tpe_beats_trial_zero_on_a_toy_objective():
    res = search(toy, FIXED, SPACE, 30, seed=0, sampler="tpe")
    assert res["best_score"] > res["trials"][0]["score"] + 1.0
    assert res["best_params"]["act"] == "gelu"


def test_random_sampler_is_available():
    res = random_search(toy, FIXED, SPACE, 6, seed=0)
    assert res["sampler"] == "random" and len(res["trials"]) == 6
    assert _draws(res) == _draws(search(toy, FIXED, SPACE, 6, seed=0, sampler="random"))


def test_empty_space_is_one_trial_of_the_fixed_params():
    res = search(toy, FIXED, {}, 8, seed=0)
    assert len(res["trials"]) == 1 and res["best_params"] == FIXED


def test_fixed_value_outside_the_space_widens_it():
    parsed = parse_space({"lr": {"log": [1e-3, 1e-2]}, "d": [32, 64], "k": {"int": [2, 4]}},
                         {"lr": 0.5, "d": 16, "k": 9})
    assert parsed == {"lr": ("log", (1e-3, 0.5)), "d": ("choice", [32, 64, 16]),
                      "k": ("int", (2, 9))}
    res = search(toy, {**FIXED, "lr": 0.5}, SPACE, 3, seed=0)
    assert res["trials"][0]["params"]["lr"] == 0.5


@pytest.mark.parametrize("space, says", [
    ({"a": []}, "empty choice list"),
    ({"a": {"normal": [0, 1]}}, "unknown distribution"),
    ({"a": {"log": [0.0, 1.0]}}, "not positive"),
    ({"a": {"uniform": [2.0, 1.0]}}, "is empty"),
    ({"a": 3}, "expected a list"),
    ({"lr": {"log": [1e-4, 1e-2]}, "a": {"log": [0.1, 1.0]}}, "set a positive params.a"),
])
def test_bad_spaces_are_config_errors(space, says):
    with pytest.raises(ConfigError, match=says) as err:
        search(toy, {**FIXED, "a": 0.0}, space, 2, seed=0, where="models.m.search")
    assert "models.m.search.a" in str(err.value)


def test_bad_sampler_is_a_config_error_naming_the_key():
    cfg = merge(load_config("default"), {"tuning": {"sampler": "grid"}})
    with pytest.raises(ConfigError, match=r"tuning\.sampler") as err:
        validate(cfg)
    assert "tpe" in str(err.value) and "'grid'" in str(err.value)
    with pytest.raises(ConfigError, match=r"tuning\.sampler"):
        search(toy, FIXED, SPACE, 2, seed=0, sampler="grid")
    assert DEFAULTS["tuning"]["sampler"] == "tpe"
    validate(merge(load_config("default"), {"tuning": {"sampler": "random"}}))


def test_optuna_is_quiet(capfd):
    search(toy, FIXED, SPACE, 4, seed=0)
    out, err = capfd.readouterr()
    assert "Trial" not in out + err


def test_quality_trial_zero_uses_class_defaults_for_unset_searched_keys():
    from mfsoftmax.bench.stages.quality import _fixed

    class Ctx:
        @staticmethod
        def model_class(name):
            class M:
                def __init__(self, name, dim=32, reg=0.1, w0=None, seed=0):
                    pass
            return M

    space = {"dim": [16, 32], "reg": {"log": [0.01, 1.0]}, "w0": {"log": [0.1, 1.0]}}
    assert _fixed(Ctx(), "m", {"dim": 16}, space) == {"dim": 16, "reg": 0.1, "w0": None}
    res = search(toy, {**FIXED, "w0": None}, {**SPACE, "w0": {"log": [0.1, 1.0]}}, 2, seed=0)
    assert 0.1 <= res["trials"][0]["params"]["w0"] <= 1.0  # a None default is drawn, not used
