"""Bad dataset-builder parameters (issue 29, item 13): ``--param n_users=0|-5|abc`` is refused
at the builder level with one line naming the parameter and its valid range, exit 2, for
``datasets show``, ``eval`` and a non-quick ``run``."""

import pytest

from mfsoftmax.cli import main as cli_main
from mfsoftmax.datasets import DatasetError, load

BAD = [("0", "valid is an integer >= n_groups (16)"), ("-5", "valid is an integer >= n_groups"),
       ("abc", "expected an integer"), ("1.5", "expected an integer"),
       ("true", "expected an integer")]


@pytest.mark.parametrize("value,expect", BAD)
def test_load_names_the_parameter_and_range(value, expect):
    import json
    try:
        v = json.loads(value)
    except ValueError:
        v = value
    with pytest.raises(DatasetError, match="n_users=") as exc:
        load("synthetic", n_users=v)
    assert expect in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("param,expect", [
    ("noise=2", "noise=2 is out of range: valid is [0, 1]"),
    ("mean_activity=NaN", "expected a finite number"),
    ("zipf=-1", "zipf=-1 is out of range: valid is a number >= 0"),
    ("n_groups=0", "n_groups=0 is out of range"),
])
def test_other_synthetic_ranges(param, expect, capsys):
    assert cli_main(["datasets", "show", "synthetic", "--param", param]) == 2
    err = capsys.readouterr().err
    assert expect in err and err.count("\n") == 1


@pytest.mark.parametrize("command", [
    ["datasets", "show", "synthetic"],
    ["eval", "--model", "popularity", "--dataset", "synthetic"],
    ["run", "--dataset", "synthetic", "--stages", "quality"],
])
@pytest.mark.parametrize("value", ["0", "-5", "abc"])
def test_cli_exit_2_naming_the_parameter(command, value, capsys, tmp_path):
    extra = ["--out", str(tmp_path / "out")] if command[0] == "run" else []
    assert cli_main([*command, "--param", f"n_users={value}", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"n_users={value}" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
