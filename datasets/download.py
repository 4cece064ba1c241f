"""Locate a dataset's files: an offline copy (``data_dir``) or a verified, cached download.

Cache layout (``cache_root()``: ``$MFSOFTMAX_DATA``, else ``$XDG_CACHE_HOME/mfsoftmax``, else
``~/.cache/mfsoftmax``)::

    <root>/<name>.zip                  the archive, kept once its SHA-256 matched
    <root>/<name>/...                  the unpacked files
    <root>/<name>/.mfsoftmax-complete  marker written last: "sha256 <hex of the zip>"

A folder is used only when its marker names the expected checksum and the required files exist;
anything else (interrupted download or unpack, edited marker, missing file) is removed and rebuilt.
Downloads go to a temporary file renamed into place only after the checksum matched; unpacking
goes to a temporary folder renamed into place with its marker already inside.

Checksums: SHA-256 and sizes of the GroupLens archives as recorded in TensorFlow Datasets
(``tensorflow_datasets/url_checksums/movielens.txt``); the MD5 column is the archive MD5 found in
public loaders (e.g. ``eli-osherovich/papers_with_code``), kept for reference. ``ml-latest-small``
is the 2018 snapshot (978,202 bytes); GroupLens may republish it, which then fails the check.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .core import DatasetError

BASE_URL = "https://files.grouplens.org/datasets/movielens"
MARKER = ".mfsoftmax-complete"


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


def _cache_valid(folder: Path, archive: Archive) -> bool:
    marker = folder / MARKER
    try:
        ok = marker.read_text().split() == ["sha256", archive.sha256]
    except OSError:
        return False
    return ok and all((folder / f).is_file() for f in archive.required)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


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
    """Unpack into a temporary folder, write the marker, rename to ``<root>/<name>``."""
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
        inner = tmpdir / archive.name
        folder = inner if inner.is_dir() else tmpdir
        missing = [f for f in archive.required if not (folder / f).is_file()]
        if missing:
            raise DatasetError(f"{zpath}: archive lacks {', '.join(missing)}")
        (folder / MARKER).write_text(f"sha256 {archive.sha256}\n")
        _remove(dest)
        os.replace(folder, dest)
    finally:
        _remove(tmpdir)
    return dest


def ensure_archive(archive: Archive, root: str | Path | None = None, fetch=None) -> Path:
    """The unpacked folder of ``archive`` in the cache, downloading and verifying as needed."""
    root = Path(root) if root is not None else cache_root()
    root.mkdir(parents=True, exist_ok=True)
    folder = root / archive.name
    if _cache_valid(folder, archive):
        return folder
    zpath = root / f"{archive.name}.zip"
    if not (zpath.is_file() and file_digest(zpath) == archive.sha256):
        _remove(zpath)  # absent, partial or corrupt: never used
        zpath = _fetch_verified(archive, root, fetch or fetch_url)
    return _unpack(zpath, archive, root)


def dataset_folder(name: str, data_dir: str | Path | None = None, cache: str | Path | None = None,
                   fetch=None) -> Path:
    """Folder with the unpacked files of MovieLens dataset ``name``.

    With ``data_dir`` nothing is downloaded: ``data_dir/name`` (or ``data_dir`` itself) must hold
    the files. Otherwise the cache is used, downloading when needed. Either way the files are
    checked against an ``MD5SUMS`` list when the folder has one.
    """
    if name not in ARCHIVES:
        raise DatasetError(f"no download known for {name!r}; known: {', '.join(sorted(ARCHIVES))}")
    archive = ARCHIVES[name]
    if data_dir is not None:
        folder = find_local(name, data_dir, archive.required)
    else:
        folder = ensure_archive(archive, cache, fetch)
    verify_md5sums(folder)
    return folder
