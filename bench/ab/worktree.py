"""One environment per commit for the A/B gate, cached under ``.ab-cache/<sha>/``.

``src/`` is the commit's tree (``git archive``: a plain snapshot, so the repository's worktree
list is not touched: no ``git worktree prune``); ``venv/`` is a virtual environment made with
the current interpreter (``venv --without-pip``) whose site-packages holds a ``.pth`` naming the
current environment's site-packages folders (those of ``sysconfig`` and any on ``sys.path``), so
every third-party package (torch, implicit, ...) is shared and nothing is downloaded. The ``.pth`` is a plain path, so the current environment's own
``.pth`` files (its editable install of mfsoftmax) are not run; the commit is then installed into
the venv with ``pip install --no-deps --no-build-isolation -e src`` (seconds). ``ready`` marks
a finished environment; a half-made one is rebuilt.

The cache keeps the ``keep`` most recently used environments (``prune``, after each gate run):
each use touches ``<sha>/used``, and a gate holds a shared lock on ``<sha>/inuse`` while it runs,
which pruning (by this gate or another one) never removes. Builds and pruning take the
cache-wide lock ``.lock``, so two gates sharing a cache neither build one commit twice at once
nor remove an environment the other is about to use.

``.`` (the default head) is the running checkout and its interpreter as they are, uncommitted
changes included.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mfsoftmax.compare.load import CompareError

KEEP = 3  # environments kept by default (the most recently used)
KEEP_ENV = "MFSOFTMAX_AB_CACHE_KEEP"
LOCK, USED, INUSE = ".lock", "used", "inuse"
SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")  # an environment's folder name (sha1, sha256)


@dataclass
class CommitEnv:
    """Where one side of the gate runs: its label, commit and interpreter."""

    label: str  # the REF as given
    sha: str  # full commit id ('' for the working tree)
    python: str
    src: Path


def git(repo: Path, *args: str) -> str:
    """Output of ``git -C repo ARGS`` (stripped); CompareError with git's message on failure."""
    try:
        res = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                             check=False)
    except OSError as exc:
        raise CompareError(f"git: {exc}") from exc
    if res.returncode:
        err = (res.stderr.strip().splitlines() or ["failed"])[-1]
        raise CompareError(f"git {' '.join(args)}: {err}")
    return res.stdout.strip()


def resolve(repo: Path, ref: str) -> str:
    """The full commit id of ``ref`` (commit, branch, tag); CompareError naming ``--base``'s
    value when git does not know it."""
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except CompareError:
        raise CompareError(f"--base/--head: unknown git revision {ref!r} in {repo} (a shallow "
                           "clone may lack it: fetch more history)") from None


def head_env(repo: Path) -> CommitEnv:
    """The running checkout with the current interpreter (``--head .``)."""
    try:
        sha = git(repo, "rev-parse", "HEAD")
    except CompareError:
        sha = ""
    return CommitEnv(".", sha, sys.executable, repo)


@contextmanager
def cache_lock(cache: Path):
    """Hold the cache-wide lock (exclusive; released when the block ends)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def commit_env(repo: Path, ref: str, cache: Path, log=print, held: list | None = None
               ) -> CommitEnv:
    """The cached environment of ``ref`` (made when missing): its snapshot and interpreter.

    Marks it used now; with ``held`` (a list), also takes a shared lock on its ``inuse`` file
    and appends the open file: ``prune`` skips it until that file is closed.
    """
    sha = resolve(repo, ref)
    root = cache / sha
    with cache_lock(cache):
        if not ((root / "ready").exists() and (root / "venv" / "bin" / "python").exists()):
            _build(repo, ref, sha, root, log)
        (root / USED).touch()
        if held is not None:
            fh = open(root / INUSE, "a")  # noqa: SIM115 - held until the gate ends
            fcntl.flock(fh, fcntl.LOCK_SH)
            held.append(fh)
    return CommitEnv(ref, sha, str(root / "venv" / "bin" / "python"), root / "src")


def _last_used(root: Path) -> float:
    for p in (root / USED, root / "ready", root):
        if p.exists():
            return p.stat().st_mtime
    return 0.0


def _in_use(root: Path) -> bool:
    """Whether a gate holds ``root`` (a shared lock on its ``inuse`` file)."""
    if not (root / INUSE).exists():
        return False
    with open(root / INUSE, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False


def prune(cache: Path, keep: int) -> list[str]:
    """Remove all but the ``keep`` most recently used environments of ``cache``, never one in
    use; returns the removed commits. Other files in ``cache`` are left alone."""
    if not cache.is_dir():
        return []
    removed = []
    with cache_lock(cache):
        envs = sorted((p for p in cache.iterdir() if p.is_dir() and SHA.fullmatch(p.name)),
                      key=_last_used, reverse=True)
        for root in envs[keep:]:
            if not _in_use(root):
                shutil.rmtree(root, ignore_errors=True)
                removed.append(root.name)
    return removed


def keep_count(value: int | None) -> int:
    """``--cache-keep``, else ``$MFSOFTMAX_AB_CACHE_KEEP``, else ``KEEP``; CompareError naming
    the option or variable when it is not a whole number >= 0."""
    name, raw = ("--cache-keep", value) if value is not None else (KEEP_ENV, os.environ.get(
        KEEP_ENV, str(KEEP)))
    try:
        n = int(raw)
    except ValueError:
        n = -1
    if n < 0:
        raise CompareError(f"{name} must be a whole number >= 0, got {raw!r}")
    return n


def _build(repo: Path, ref: str, sha: str, root: Path, log) -> None:
    """Make the environment of ``sha`` in ``root`` (snapshot, venv, install, ``ready``)."""
    python = root / "venv" / "bin" / "python"
    log(f"ab: building the environment of {ref} ({sha[:10]}) in {root}")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    _export(repo, sha, root / "src")
    _make_venv(root / "venv")
    res = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                          "--no-build-isolation", "--disable-pip-version-check", "-e",
                          str(root / "src")], capture_output=True, text=True, check=False)
    if res.returncode:
        err = (res.stderr.strip().splitlines() or ["failed"])[-1]
        raise CompareError(f"installing {ref} ({sha[:10]}) into {root / 'venv'}: {err}")
    (root / "ready").write_text(sha + "\n")


def _export(repo: Path, sha: str, dest: Path) -> None:
    """The commit's tree into ``dest`` (``git archive``)."""
    with tempfile.TemporaryFile() as tar:
        res = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", sha],
                             stdout=tar, stderr=subprocess.PIPE, check=False)
        if res.returncode:
            raise CompareError(f"git archive {sha[:10]}: {res.stderr.decode().strip()}")
        tar.seek(0)
        with tarfile.open(fileobj=tar) as tf:
            tf.extractall(dest, filter="data") if hasattr(tarfile, "data_filter") \
                else tf.extractall(dest)  # noqa: S202 - our own repository's tree


def _make_venv(dest: Path) -> None:
    """A venv of the current interpreter seeing the current environment's packages."""
    base = Path(getattr(sys, "_base_executable", sys.executable))
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(dest)], check=True)
    shared = [sysconfig.get_paths()[k] for k in ("purelib", "platlib")]
    shared += [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]
    sp = subprocess.run([str(dest / "bin" / "python"), "-c",
                         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        capture_output=True, text=True, check=True).stdout.strip()
    (Path(sp) / "_mfsoftmax_ab_shared.pth").write_text("\n".join(dict.fromkeys(shared)) + "\n")
