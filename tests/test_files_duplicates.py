"""Repeated (user, item) rows in the ``file`` loader (issue 29, item 9): play or click counts add
up, a re-rating replaces the rating, and ``datasets show`` says which rule it applied."""

import numpy as np
import pytest

from mfsoftmax.cli import main as cli_main
from mfsoftmax.datasets import from_coo, load


def write(tmp_path, text, name="d.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def values(d):
    m = d.matrix.tocoo()
    return {(d.user_ids[r], d.item_ids[c]): float(v) for r, c, v in zip(m.row, m.col, m.data,
                                                                        strict=True)}


@pytest.mark.parametrize("col", ["plays", "count", "clicks", "weight", "Play Count"])
def test_counts_are_summed_without_binarize(tmp_path, col):
    p = write(tmp_path, f"user,item,{col}\n1,1,5\n2,1,1\n1,1,3\n1,2,2\n")
    d = load("file", path=str(p), binary=False)
    assert values(d) == {(1, 1): 8.0, (1, 2): 2.0, (2, 1): 1.0}
    assert np.allclose(d.ratings, d.matrix.data)
    assert d.meta["duplicates"] == {"rule": "sum", "rows": 4, "pairs": 3,
                                    "why": f"value column {col!r} counts events"}


def test_rows_without_a_value_column_count_events(tmp_path):
    p = write(tmp_path, "user,item,timestamp\n1,1,10\n1,1,30\n1,1,20\n2,1,5\n")
    d = load("file", path=str(p), binary=False)
    assert values(d) == {(1, 1): 3.0, (2, 1): 1.0}
    assert d.timestamps.tolist() == [30, 5]  # the latest event's time


def test_ratings_keep_the_latest(tmp_path):
    p = write(tmp_path, "user,item,rating,timestamp\n1,1,5,20\n1,1,3,10\n2,1,1,5\n")
    d = load("file", path=str(p), binary=False)
    assert values(d) == {(1, 1): 5.0, (2, 1): 1.0}  # the rating of time 20, not the last row
    assert d.meta["duplicates"]["rule"] == "last"


def test_no_duplicates_no_note(tmp_path):
    d = load("file", path=str(write(tmp_path, "user,item,plays\n1,1,5\n2,1,1\n")), binary=False)
    assert "duplicates" not in d.meta and d.stats()["duplicates"] is None


def test_from_coo_sum_rule_sums_values_and_ratings():
    d = from_coo("t", [1, 0, 1, 1], [0, 2, 0, 1], 2, 3, values=[2, 1, 3, 4], ratings=[2, 1, 3, 4],
                 timestamps=[5, 1, 9, 2], duplicates="sum")
    assert d.matrix.toarray().tolist() == [[0, 0, 1], [5, 4, 0]]
    assert d.ratings.tolist() == [1, 5, 4] and d.timestamps.tolist() == [1, 9, 2]
    with pytest.raises(ValueError, match="duplicates='max'"):
        from_coo("t", [0], [0], 1, 1, duplicates="max")


@pytest.mark.parametrize("text,expect", [
    ("user,item,plays\n1,1,5\n1,1,3\n2,1,1\n", "1 repeated (user, item) rows merged into 2 pairs: "
     "values summed; value column 'plays' counts events"),
    ("user,item,rating\n1,1,5\n1,1,3\n2,1,1\n", "the latest kept; value column 'rating' is a rating"),
])
def test_datasets_show_says_which_rule(tmp_path, capsys, text, expect):
    p = write(tmp_path, text)
    assert cli_main(["datasets", "show", "file", "--param", f"path={p}", "--no-binarize"]) == 0
    out = capsys.readouterr().out
    assert "duplicates" in out and expect in out
