"""`mfsoftmax datasets inspect`: what the loader detects, and a config that runs as written."""

import json

from mfsoftmax.bench.config import load_config
from mfsoftmax.cli import main


def files(tmp_path):
    """40 users x 12 artists (8 plays each) in a TSV; an artist table with one artist nobody
    played; a user table for 3 of the users plus one unknown."""
    plays = ["userId\tartistId\tplays"] + [f"u{u}\t{1 + (u + k) % 12}\t{1 + k}"
                                              for u in range(40) for k in range(8)]
    (tmp_path / "plays.tsv").write_text("\n".join(plays) + "\n")
    tags = ("rock|pop", "jazz", "rock|jazz")
    artists = ["artistId,name,tags"] + [f"{a},Band Number {a},{tags[a % 3]}" for a in range(1, 14)]
    (tmp_path / "artists.csv").write_text("\n".join(artists) + "\n")
    (tmp_path / "users.csv").write_text("userId,country\nu0,FR\nu1,DE\nu2,FR\nzoe,US\n")
    return tmp_path


def test_inspect_prints_layout_kinds_and_unmatched_ids(tmp_path, capsys):
    d = files(tmp_path)
    code = main(["datasets", "inspect", str(d / "plays.tsv"), "--item-features",
                 str(d / "artists.csv"), "--user-features", str(d / "users.csv")])
    out = capsys.readouterr().out
    assert code == 0
    assert "separator      tab" in out and "header         yes: userId, artistId, plays" in out
    assert "user = column 1 'userId', item = column 2 'artistId', rating = column 3 'plays'" in out
    assert "40 users x 12 items, 320 interactions" in out
    assert "  tags                 multi [3], separator '|'" in out
    assert "  name                 text [256]" in out
    assert "12 matched, 1 not in the interactions (new items), 0 items" in out
    assert "3 matched, 1 not in the interactions, 37 users of the interactions missing" in out


def test_written_config_loads_and_runs(tmp_path, capsys):
    d = files(tmp_path)
    cfg_path = tmp_path / "mine.toml"
    assert main(["datasets", "inspect", str(d / "plays.tsv"), "--item-features",
                 str(d / "artists.csv"), "--write-config", str(cfg_path)]) == 0
    cfg = load_config(str(cfg_path))
    params = cfg["dataset"]["params"]
    assert cfg["dataset"]["name"] == "file" and params["path"] == str(d / "plays.tsv")
    assert params["item_feature_kinds"] == "tags:multi:pipe,name:text"
    assert "wals" in cfg["models"] and "softmax-in-batch" in cfg["models"]
    out = tmp_path / "run"
    assert main(["run", "--config", str(cfg_path), "--quick", "--models", "popularity",
                 "--stages", "quality", "--out", str(out), "--no-report", "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["dataset"]["stats"]["n_items"] == 12
    assert main(["datasets", "inspect", str(d / "plays.tsv"), "--write-config",
                 str(cfg_path)]) == 2  # never overwritten
    assert "exists" in capsys.readouterr().err


def test_inspect_bad_table_exit_2(tmp_path, capsys):
    d = files(tmp_path)
    assert main(["datasets", "inspect", str(d / "plays.tsv"), "--item-features",
                 str(d / "artists.csv"), "--item-features-key", "sku"]) == 2
    err = capsys.readouterr().err.strip()
    assert "artists.csv: item_features_key='sku': no such column" in err and "\n" not in err


def test_show_json_has_the_side_tables(tmp_path, capsys):
    d = files(tmp_path)
    assert main(["datasets", "show", "file", "--json", "--param", f"path={d / 'plays.tsv'}",
                 "--param", f"item_features={d / 'artists.csv'}"]) == 0
    side = json.loads(capsys.readouterr().out)["side_tables"]["item"]
    assert side["unmatched_ids"] == 1 and side["columns"]["tags"]["kind"] == "multi"
