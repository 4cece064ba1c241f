"""Locate a dataset's files: an offline copy (``data_dir``) or a verified, cached download.

Cache layout (``cache_root()``: ``$MFSOFTMAX_DATA``, else ``$XDG_CACHE_HOME/mfsoftmax``, else
``~/.cache/mfsoftmax``)::

    <root>/<name>.zip                  the archive, kept once its SHA-256 matched
    <root>/<name>/...                  the unpacked files
    <root>/<name>/.mfsoftmax-complete  marker written last (JSON): the zip's SHA-256 and the
                                       size, SHA-256 and mtime of every unpacked file
    <root>/.<name>.lock                exists only while a process builds or checks <name>

A folder is used only when its marker names the expected checksum and every recorded file is
there with its recorded size; when the unpacked files total at most :data:`HASH_ON_LOAD_BYTES`
(ml-100k, ml-1m, ml-latest-small) their SHA-256 is checked on every load too, and for larger
ones (ml-20m) the SHA-256 of files whose mtime changed, or of every file with ``verify=True``.
Anything else (interrupted download or unpack, edited marker, missing, truncated or modified
file) is removed and rebuilt: unpacked again from the cached zip when its SHA-256 still matches,
else downloaded again. Downloads go to a temporary ``.<name>.*.part`` file renamed into place only
after the checksum matched; unpacking goes to a temporary ``.<name>.unpack.*`` folder, checked
against ``MD5SUMS`` when the archive has one, renamed into place with its marker already inside.
Temporaries left by killed processes are removed by the next load (loads of one dataset are
serialised by the lock, so no live process owns them).

Checksums: SHA-256 and sizes of the GroupLens archives as recorded in TensorFlow Datasets
(``tensorflow_datasets/url_checksums/movielens.txt``); the MD5 column is the archive MD5 found in
public loaders (e.g. ``eli-osherovich/papers_with_code``), kept for reference. ``ml-latest-small``
is the 2018 snapshot (978,202 bytes); GroupLens may republish it, which then fails the check.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .core import DatasetError

BASE_URL = "https://files.grouplens.org/datasets/movielens"
MARKER = ".mfsoftmax-complete"
MARKER_FORMAT = 2
HASH_ON_LOAD_BYTES = 64 << 20  # unpacked datasets up to this size are re-hashed on every load


@dataclass(frozen=True)
class Archive:
    """One downloadable dataset archive."""

    name: str
    url: str
    sha256: str
    size: int | None
    required: tuple[str, ...]
    md5: str | None = None


ARCHIVES = {
    "ml-100k": Archive(
        "ml-100k", f"{BASE_URL}/ml-100k.zip",
        "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229", 4924029,
        ("u.data", "u.item", "u.user"), md5="0e33842e24a9c977be4e0107933c0723"),
    "ml-1m": Archive(
        "ml-1m", f"{BASE_URL}/ml-1m.zip",
        "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20", 5917549,
        ("ratings.dat", "movies.dat", "users.dat"), md5="c4d9eecfca2ab87c1945afe126590906"),
    "ml-20m": Archive(
        "ml-20m", f"{BASE_URL}/ml-20m.zip",
        "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3", 198702078,
        ("ratings.csv", "movies.csv"), md5="cd245b17a1ae2cc31bb14903e1204af3"),
    "ml-latest-small": Archive(
        "ml-latest-small", f"{BASE_URL}/ml-latest-small.zip",
        "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436", 978202,
        ("ratings.csv", "movies.csv")),
}


def cache_root() -> Path:
    """``$MFSOFTMAX_DATA``, else ``$XDG_CACHE_HOME/mfsoftmax``, else ``~/.cache/mfsoftmax``."""
    env = os.environ.get("MFSOFTMAX_DATA")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "mfsoftmax"


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_url(url: str, dest: Path) -> None:
    """Copy ``url`` (http(s) or ``file://``) to ``dest``; tests replace this function."""
    print(f"mfsoftmax: downloading {url}", file=sys.stderr)
    with urllib.request.urlopen(url, timeout=60) as resp, open(dest, "wb") as out:
        shutil.copyfileobj(resp, out, length=1 << 20)


def verify_md5sums(folder: Path) -> bool:
    """Check the files listed in ``folder/MD5SUMS`` (``<md5>  <name>`` lines), if present.

    Returns True when a list was checked; raises :class:`DatasetError` on a mismatch.
    """
    listing = folder / "MD5SUMS"
    if not listing.exists():
        return False
    for n, line in enumerate(listing.read_text(encoding="latin-1").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise DatasetError(f"{listing}, line {n}: expected '<md5>  <file>'")
        expected, name = parts[0].lower(), parts[1].strip().lstrip("*")
        target = folder / name
        if not target.exists():
            raise DatasetError(f"{target}: listed in {listing} but missing")
        got = file_digest(target, "md5")
        if got != expected:
            raise DatasetError(f"{target}: MD5 {got} does not match {expected} from {listing}; "
                               "the copy is corrupt or modified")
    return True


def find_local(name: str, data_dir: str | Path, required: tuple[str, ...]) -> Path:
    """The folder holding ``required`` files: ``data_dir/name`` or ``data_dir`` itself."""
    data_dir = Path(data_dir).expanduser()
    for cand in (data_dir / name, data_dir):
        if all((cand / f).is_file() for f in required):
            return cand
    raise DatasetError(
        f"{name}: data_dir {data_dir} holds neither {data_dir / name}/ nor the files "
        f"{', '.join(required)} themselves"
    )


def _manifest(folder: Path) -> dict:
    """``{relative path: [size, sha256, mtime_ns]}`` of every file under ``folder`` but the marker."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MARKER:
            st = path.stat()
            out[path.relative_to(folder).as_posix()] = [st.st_size, file_digest(path), st.st_mtime_ns]
    return out


def read_marker(folder: Path) -> dict | None:
    """The completion marker of an unpacked folder, or None when absent or not readable."""
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def check_cache(folder: Path, archive: Archive, verify: bool = False) -> str | None:
    """None when ``folder`` is a complete, intact unpacked copy of ``archive``, else what is wrong.

    Sizes are always checked (one ``stat`` per file); SHA-256 too when the files total at most
    :data:`HASH_ON_LOAD_BYTES`, when ``verify`` is true, or for files whose mtime changed.
    """
    if not folder.exists():
        return "absent"
    if not (folder / MARKER).is_file():
        return "no completion marker (interrupted unpack?)"
    marker = read_marker(folder)
    if marker is None or marker.get("format") != MARKER_FORMAT or not isinstance(
            marker.get("files"), dict):
        return f"{MARKER} is unreadable or from an older mfsoftmax (no file manifest)"
    if marker.get("sha256") != archive.sha256:
        return f"{MARKER} names another archive (SHA-256 {str(marker.get('sha256'))[:12]}...)"
    files = marker["files"]
    missing = [f for f in archive.required if f not in files]
    if missing:
        return f"{MARKER} does not list {', '.join(missing)}"
    try:
        total = sum(int(rec[0]) for rec in files.values())
        stats = {}
        for rel, (size, _digest, _mtime) in files.items():
            path = folder / rel
            if not path.is_file():
                return f"{rel} is missing"
            st = path.stat()
            if st.st_size != size:
                return f"{rel} is {st.st_size} bytes, {size} expected"
            stats[rel] = st
        hash_all = verify or total <= HASH_ON_LOAD_BYTES
        for rel, (_size, digest, mtime) in files.items():
            if (hash_all or stats[rel].st_mtime_ns != mtime) and file_digest(folder / rel) != digest:
                return f"{rel} has changed since it was unpacked (SHA-256 differs)"
    except (TypeError, ValueError):
        return f"{MARKER} has a malformed file manifest"
    except OSError as exc:
        return f"cannot read it ({exc})"
    return None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _prepare_root(root: Path, origin: str) -> bool:
    """Create the cache root if needed (True when this call created it); a clean error when it
    is a file or cannot be created."""
    if root.exists() and not root.is_dir():
        raise DatasetError(f"cache folder {root}{origin} is not a folder: point it at a folder, "
                           "or use --data-dir with an unpacked copy")
    if root.is_dir():
        return False
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cache folder {root}{origin} cannot be created "
                           f"({exc.strerror or exc}); use --data-dir with an unpacked copy, or "
                           "set MFSOFTMAX_DATA to a writable folder") from exc
    return True


@contextlib.contextmanager
def _locked(root: Path, name: str):
    """Exclusive lock on ``<root>/.<name>.lock`` for this process (POSIX ``flock``; a no-op
    elsewhere). The lock file is removed on release; a waiter that wakes on a removed file
    retries on the new one."""
    try:
        import fcntl  # optional: POSIX-only (this lock is a no-op elsewhere)
    except ImportError:  # pragma: no cover - not POSIX
        yield False
        return
    path = root / f".{name}.lock"
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:  # a read-only cache: checking it needs no lock, rebuilding fails clearly
            yield False
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


STALE_AGE_S = 24 * 3600  # without a lock (not POSIX), only temporaries this old are removed


def clean_stale(root: Path, name: str, locked: bool = True) -> list[Path]:
    """Remove the temporaries of ``name`` left by killed downloads (``.<name>.*.part``) and
    unpacks (``.<name>.unpack.*``); with ``locked`` false only those older than a day."""
    removed = []
    for path in [*root.glob(f".{name}.*.part"), *root.glob(f".{name}.unpack.*")]:
        try:
            if not locked and time.time() - path.lstat().st_mtime < STALE_AGE_S:
                continue
            _remove(path)
        except OSError:
            continue
        removed.append(path)
    return removed


def _fetch_verified(archive: Archive, root: Path, fetch) -> Path:
    """Download to a temporary file, check size and SHA-256, rename to ``<root>/<name>.zip``."""
    zpath = root / f"{archive.name}.zip"
    fd, tmp = tempfile.mkstemp(prefix=f".{archive.name}.", suffix=".part", dir=root)
    os.close(fd)
    tmp = Path(tmp)
    try:
        try:
            fetch(archive.url, tmp)
        except OSError as exc:
            raise DatasetError(f"{archive.url}: download failed ({exc}); use --data-dir with an "
                               "unpacked copy when offline") from exc
        size = tmp.stat().st_size
        if archive.size is not None and size != archive.size:
            raise DatasetError(f"{archive.url}: downloaded {size} bytes, expected {archive.size} "
                               f"({zpath.name} checksum mismatch)")
        got = file_digest(tmp)
        if got != archive.sha256:
            raise DatasetError(f"{zpath.name} from {archive.url}: SHA-256 {got} does not match "
                               f"the expected {archive.sha256}")
        os.replace(tmp, zpath)
    finally:
        if tmp.exists():
            tmp.unlink()
    return zpath


def _unpack(zpath: Path, archive: Archive, root: Path) -> Path:
    """Unpack into a temporary folder, check MD5SUMS, write the marker with the manifest of every
    file, rename to ``<root>/<name>``."""
    dest = root / archive.name
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{archive.name}.unpack.", dir=root))
    try:
        try:
            with zipfile.ZipFile(zpath) as zf:
                for member in zf.namelist():
                    target = (tmpdir / member).resolve()
                    if tmpdir.resolve() not in target.parents and target != tmpdir.resolve():
                        raise DatasetError(f"{zpath}: member {member!r} escapes the archive folder")
                zf.extractall(tmpdir)
        except zipfile.BadZipFile as exc:
            raise DatasetError(f"{zpath}: not a valid zip archive ({exc})") from exc
        except OSError as exc:
            raise DatasetError(f"{zpath}: cannot unpack into {root} ({exc})") from exc
        inner = tmpdir / archive.name
        folder = inner if inner.is_dir() else tmpdir
        missing = [f for f in archive.required if not (folder / f).is_file()]
        if missing:
            raise DatasetError(f"{zpath}: archive lacks {', '.join(missing)}")
        verify_md5sums(folder)
        marker = {"format": MARKER_FORMAT, "archive": archive.name, "sha256": archive.sha256,
                  "files": _manifest(folder)}
        (folder / MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        _remove(dest)
        os.replace(folder, dest)
    finally:
        _remove(tmpdir)
    return dest


def ensure_archive(archive: Archive, root: str | Path | None = None, fetch=None,
                   verify: bool = False) -> Path:
    """The unpacked folder of ``archive`` in the cache, downloading and verifying as needed.

    A folder that fails :func:`check_cache` is removed and rebuilt from the cached zip when its
    SHA-256 still matches, else from a new download. ``verify`` re-hashes every file whatever
    its size. Temporaries of killed processes are removed first.
    """
    if root is not None:
        root, origin = Path(root).expanduser(), ""
    else:
        root = cache_root()
        origin = " ($MFSOFTMAX_DATA)" if os.environ.get("MFSOFTMAX_DATA") else ""
    created = _prepare_root(root, origin)
    try:
        with _locked(root, archive.name) as locked:
            clean_stale(root, archive.name, locked)
            return _ensure_locked(archive, root, fetch, verify)
    except BaseException:
        if created:  # a failed first load leaves no empty cache folder behind
            with contextlib.suppress(OSError):
                root.rmdir()
        raise


def _ensure_locked(archive: Archive, root: Path, fetch, verify: bool) -> Path:
    folder = root / archive.name
    problem = check_cache(folder, archive, verify)
    if problem is None:
        return folder
    if problem != "absent":
        print(f"mfsoftmax: cached {archive.name} in {folder} is not intact ({problem}); "
              "replacing it", file=sys.stderr)
        _remove(folder)
    zpath = root / f"{archive.name}.zip"
    zip_state = "missing"
    if zpath.is_file():
        if (archive.size is None or zpath.stat().st_size == archive.size) \
                and file_digest(zpath) == archive.sha256:
            return _unpack(zpath, archive, root)
        zip_state = "corrupt"
        _remove(zpath)  # partial or corrupt: never used
    try:
        zpath = _fetch_verified(archive, root, fetch or fetch_url)
    except DatasetError as exc:
        if problem == "absent":
            raise
        raise DatasetError(f"{archive.name}: the cached copy was not intact ({problem}) and was "
                           f"removed, the cached zip is {zip_state}, and downloading it again "
                           f"failed: {exc}") from exc
    return _unpack(zpath, archive, root)


def dataset_folder(name: str, data_dir: str | Path | None = None, cache: str | Path | None = None,
                   fetch=None, verify: bool = False) -> Path:
    """Folder with the unpacked files of MovieLens dataset ``name``.

    With ``data_dir`` nothing is downloaded: ``data_dir/name`` (or ``data_dir`` itself) must hold
    the files, which are checked against an ``MD5SUMS`` list when the folder has one (a mismatch
    is an error: nothing is replaced in a folder the user manages). Otherwise the cache is used
    (see :func:`ensure_archive`): checked on every load, rebuilt when not intact, downloading
    when needed.
    """
    if name not in ARCHIVES:
        raise DatasetError(f"no download known for {name!r}; known: {', '.join(sorted(ARCHIVES))}")
    archive = ARCHIVES[name]
    if data_dir is not None:
        folder = find_local(name, data_dir, archive.required)
        verify_md5sums(folder)
        return folder
    return ensure_archive(archive, cache, fetch, verify)
