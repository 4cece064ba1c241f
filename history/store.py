"""The history store: one SQLite file, ``STORE/history.sqlite``, of gated figures over commits.

A workflow keeps the folder as an artifact or on a branch. ``runs`` holds one row per added
results.json (its order is the commit order: add each commit's run once, oldest first);
``points`` one row per gated figure of that run. Figures are the rows ``compare`` gates, named
``MODEL/METRIC`` (``wals/quality.recall@20``, ``wals/training.epoch_thread_min_s``), and timings
are normalised as ``compare`` does: time x the run's best matmul GFLOP/s (work units, so runs on
machines of different speeds line up); the raw time is kept too.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from mfsoftmax.compare import compare, load_results
from mfsoftmax.compare.load import CompareError, best_gflops

FILE = "history.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT UNIQUE,
    git_commit TEXT NOT NULL, started_at TEXT, source TEXT, gflops REAL);
CREATE TABLE IF NOT EXISTS points (seq INTEGER NOT NULL REFERENCES runs(seq), figure TEXT NOT NULL,
    kind TEXT NOT NULL, value REAL NOT NULL, raw REAL NOT NULL, PRIMARY KEY (seq, figure));
"""


def gated_figures(data: dict) -> list[tuple[str, str, float, float]]:
    """``(figure, kind, value, raw)`` of every gated figure of one results dict: the rows
    ``compare`` gates (quality, leakage, robust timings), timings x the run's best GFLOP/s."""
    gflops = best_gflops(data)
    rows = compare(data, data, min_time_us=0, min_time_s=0).rows
    out = []
    for r in rows:
        if r.kind not in ("quality", "leakage", "timing") or not isinstance(r.baseline, float):
            continue
        value = r.baseline * gflops if r.kind == "timing" and gflops else r.baseline
        out.append((f"{r.model}/{r.metric}", r.kind, float(value), float(r.baseline)))
    return out


def _connect(store: Path, create: bool) -> sqlite3.Connection:
    path = store / FILE
    if not path.exists() and not create:
        raise CompareError(f"--store {store}: no {FILE} there (add a results file first)")
    if create:
        store.mkdir(parents=True, exist_ok=True)
    try:
        con = sqlite3.connect(path)
        con.executescript(SCHEMA)
    except sqlite3.DatabaseError as exc:
        raise CompareError(f"--store {store}: {FILE} is not a history store: {exc}") from None
    return con


def add(store: Path, results: Path, commit: str | None = None) -> tuple[str, int]:
    """Add one results.json; returns ``(commit, n_figures)``. All or nothing (one transaction);
    CompareError naming the file when it is unusable, has no commit or is already stored."""
    data = load_results(results)
    run = data.get("run") or {}
    commit = commit or run.get("git_commit")
    if not commit:
        raise CompareError(f"{results}: run.git_commit is null (not run from git): pass --commit")
    figures = gated_figures(data)
    if not figures:
        raise CompareError(f"{results}: no gated figure (no model with quality or timings)")
    run_id = str(run.get("id") or results)
    if run.get("started_at"):  # the id is the run's folder name, which CI reuses every run
        run_id += f"@{run['started_at']}"
    with closing(_connect(store, create=True)) as con, con:
        if con.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
            raise CompareError(f"{results}: run {run_id!r} is already in {store / FILE}")
        cur = con.execute("INSERT INTO runs (run_id, git_commit, started_at, source, gflops) "
                          "VALUES (?, ?, ?, ?, ?)", (run_id, commit, run.get("started_at"),
                                                     str(results), best_gflops(data)))
        con.executemany("INSERT INTO points VALUES (?, ?, ?, ?, ?)",
                        [(cur.lastrowid, *f) for f in figures])
    return commit, len(figures)


def series(store: Path) -> tuple[list[dict], dict]:
    """The runs in order (``seq``, ``git_commit``, ``run_id``) and ``{figure: {"kind", "seq",
    "value", "raw"}}`` with one entry per run that has the figure."""
    with closing(_connect(store, create=False)) as con:
        runs = [dict(zip(("seq", "git_commit", "run_id", "started_at"), r, strict=True))
                for r in con.execute("SELECT seq, git_commit, run_id, started_at FROM runs "
                                     "ORDER BY seq")]
        out: dict = {}
        for seq, fig, kind, value, raw in con.execute(
                "SELECT seq, figure, kind, value, raw FROM points ORDER BY figure, seq"):
            s = out.setdefault(fig, {"kind": kind, "seq": [], "value": [], "raw": []})
            s["seq"].append(seq)
            s["value"].append(value)
            s["raw"].append(raw)
    return runs, out
