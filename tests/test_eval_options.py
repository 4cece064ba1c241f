"""`mfsoftmax eval`: numeric options that make no sense are exit 2 naming the option, before any
data is loaded (they were tracebacks, exit 1, after the fit)."""

import pytest

from mfsoftmax.cli import main


@pytest.mark.parametrize("argv, message", [
    (["--k", "0"], "--k 0: must be an integer >= 1"),
    (["--k", "-5"], "--k -5: must be an integer >= 1"),
    (["--k", "10", "0", "20"], "--k 0: must be an integer >= 1"),
    (["--threads", "0"], "--threads 0: must be an integer >= 1"),
    (["--threads", "-1"], "--threads -1: must be an integer >= 1"),
    (["--seed", "-1"], "--seed -1: must be an integer >= 0"),
])
def test_nonsense_numeric_option_is_exit_2_naming_it(capsys, argv, message):
    # a dataset that does not exist: the options are refused before it is looked for
    assert main(["eval", "--dataset", "no-such-dataset", "--model", "popularity", *argv]) == 2
    err = capsys.readouterr().err
    assert err == f"mfsoftmax eval: {message}\n"


def test_a_repeated_cut_off_is_evaluated_once(capsys):
    assert main(["eval", "--model", "popularity", "--k", "10", "5", "10", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"recall@10"' in out and '"recall@5"' in out
    assert main(["eval", "--model", "popularity", "--k", "10", "10"]) == 0
    assert capsys.readouterr().out.count("k=10 ") == 1
