"""A dataset too small for its split protocol (issue 29, item 20): the error states the real
minimum (how many users, with how many interactions) and what the dataset has, instead of
"needs 2 x 0 held-out users ... 1 are eligible"."""

import pytest

from mfsoftmax.cli import main as cli_main
from mfsoftmax.datasets import DatasetError, from_coo, load, make_split


def one_user(tmp_path):
    p = tmp_path / "one.csv"
    p.write_text("user,item\n" + "".join(f"1,{i}\n" for i in range(1, 7)))
    return p


def all_duplicates(tmp_path):
    p = tmp_path / "dup.csv"
    p.write_text("user,item,rating\n1,1,5\n1,1,5\n1,1,5\n")
    return p


def test_one_user_strong_states_the_minimum(tmp_path):
    data = load("file", path=str(one_user(tmp_path)))
    with pytest.raises(DatasetError) as exc:
        make_split(data, "strong")
    msg = str(exc.value)
    assert "2 x 0" not in msg
    assert "needs at least 6 users, and at least 3 with >= 5 interactions" in msg
    assert "this dataset has 1 user, 1 with >= 5 interactions" in msg


def test_all_duplicates_names_the_merged_rows(tmp_path):
    data = load("file", path=str(all_duplicates(tmp_path)))
    for protocol, expect in (("strong", "needs at least 6 users"),
                             ("holdout", "needs at least one user with >= 2 interactions")):
        with pytest.raises(DatasetError) as exc:
            make_split(data, protocol)
        assert expect in str(exc.value)
        assert "its 3 rows hold 1 distinct (user, item) pairs" in str(exc.value)


def test_too_few_eligible_users_states_how_many():
    # 20 users (2 held out per side), only 3 with >= 5 interactions: 5 are needed
    users = [u for u in range(3) for _ in range(5)] + list(range(3, 20))
    items = [i for _ in range(3) for i in range(5)] + [0] * 17
    data = from_coo("small", users, items, 20, 5)
    with pytest.raises(DatasetError, match="holds out 2 validation and 2 test users with >= 5 "
                       "interactions and needs one more to train on: at least 5 such users; "
                       "this dataset has 20 users, 3 with >= 5 interactions"):
        make_split(data, "strong")


def test_cli_eval_exit_2_one_line(tmp_path, capsys):
    p = all_duplicates(tmp_path)
    assert cli_main(["eval", "--model", "popularity", "--dataset", "file", "--param",
                     f"path={p}", "--protocol", "holdout"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "at least one user with >= 2 interactions" in err
