"""The `mfsoftmax` command: help, the dataset registry listing, one dataset, one evaluation."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from mfsoftmax.cli import COMMANDS, main

COMPOSITE = ("twin(A)", "disjoint-union(A, B)")


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: mfsoftmax" in out
    for name in COMMANDS:
        assert name in out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage: mfsoftmax" in capsys.readouterr().out


def test_module_entry_point_help():
    proc = subprocess.run([sys.executable, "-m", "mfsoftmax", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage: mfsoftmax" in proc.stdout and "datasets" in proc.stdout


def test_datasets_lists_registry_in_aligned_columns(capsys):
    from mfsoftmax.datasets import REGISTRY

    assert main(["datasets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = sorted(REGISTRY) + list(COMPOSITE)
    assert "synthetic" in REGISTRY
    assert len(lines) == len(names)
    starts = set()
    for name, line in zip(names, lines, strict=True):
        assert line.startswith(name), line
        rest = line[len(name):]
        assert rest.startswith("  ") and rest.strip(), line  # at least two spaces, then text
        starts.add(len(line) - len(rest.lstrip(" ")))
    assert len(starts) == 1, f"descriptions start at different columns: {sorted(starts)}"
    assert starts == {max(len(n) for n in names) + 2}


def test_datasets_show_synthetic(capsys):
    assert main(["datasets", "show", "synthetic"]) == 0
    out = capsys.readouterr().out
    stats = {key: int(m) for key, m in re.findall(r"^(users|items|interactions)\s+(\d+)$", out,
                                                   flags=re.M)}
    assert set(stats) == {"users", "items", "interactions"}
    assert all(v > 0 for v in stats.values())
    from mfsoftmax.datasets import load

    data = load("synthetic")
    assert stats == {"users": data.n_users, "items": data.n_items,
                     "interactions": data.matrix.nnz}


def test_datasets_show_unknown_fails_cleanly(capsys):
    assert main(["datasets", "show", "no-such-dataset"]) == 2
    assert "no-such-dataset" in capsys.readouterr().err


def test_eval_popularity_strong_prints_recall(capsys):
    assert main(["eval", "--protocol", "strong", "--model", "popularity", "--k", "20"]) == 0
    out = capsys.readouterr().out
    assert "popularity" in out and "strong" in out
    m = re.search(r"k=20\s+recall (\d\.\d{4})", out)
    assert m, out
    assert 0.0 < float(m.group(1)) <= 1.0  # popularity finds some held-out items
    assert re.search(r"mrr (\d\.\d{4})", out)


def test_unknown_dataset_parameter_is_named(capsys):
    assert main(["datasets", "show", "synthetic", "--param", "n_userz=10"]) == 2
    err = capsys.readouterr().err
    assert "n_userz" in err and "n_users" in err
