"""Download cache integrity: the per-file manifest in the completion marker, replacement of
corrupt files, stale temporaries, bad cache roots, nothing left behind by a failed load.
Never touches the network (``file://`` URLs and patched fetch functions)."""

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile

import pytest

from mfsoftmax.cli import main as cli_main
from mfsoftmax.datasets import DatasetError
from mfsoftmax.datasets import download as dl
from mfsoftmax.datasets.movielens import ml_100k
from tests.test_download import counting_fetch

FILES = {
    "u.data": "1\t1\t5\t100\n2\t1\t3\t101\n2\t2\t4\t102\n",
    "u.item": "1|A (1995)|01-Jan-1995||u|" + "|".join(["0"] * 8 + ["1"] + ["0"] * 10) + "\n"
              "2|B (1980)|01-Jan-1980||u|" + "|".join(["0"] * 5 + ["1"] + ["0"] * 13) + "\n",
    "u.user": "1|30|F|artist|1\n2|40|M|writer|2\n",
}


def make_archive(tmp_path, files=FILES, md5sums=False, name="ml-100k"):
    """A zip of a tiny dataset (no MD5SUMS by default, like ml-1m/ml-20m/ml-latest-small)."""
    src = tmp_path / "src"
    src.mkdir(parents=True, exist_ok=True)
    zpath = src / f"{name}.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for n, text in files.items():
            zf.writestr(f"{name}/{n}", text)
        if md5sums:
            listing = "".join(f"{hashlib.md5(t.encode()).hexdigest()}  {n}\n"
                              for n, t in files.items())
            zf.writestr(f"{name}/MD5SUMS", listing if md5sums is True else md5sums)
    blob = zpath.read_bytes()
    return dl.Archive(name, zpath.as_uri(), hashlib.sha256(blob).hexdigest(), len(blob),
                      ("u.data", "u.item", "u.user"))


@pytest.fixture
def archive(tmp_path):
    return make_archive(tmp_path)


def no_fetch(url, dest):
    raise AssertionError(f"unexpected download of {url}")


def offline(url, dest):
    raise OSError("Network is unreachable")


def leftovers(root):
    return sorted(p.name for p in root.iterdir() if p.name.startswith("."))


# ----------------------------------------------------------------------------- manifest
def test_marker_records_size_and_sha256_of_every_file(tmp_path, archive):
    folder = dl.ensure_archive(archive, tmp_path / "cache")
    marker = dl.read_marker(folder)
    assert marker["format"] == dl.MARKER_FORMAT and marker["sha256"] == archive.sha256
    assert {k: v[:2] for k, v in marker["files"].items()} == {
        n: [len(t), hashlib.sha256(t.encode()).hexdigest()] for n, t in FILES.items()}
    assert dl.check_cache(folder, archive) is None


def test_truncated_file_is_replaced_from_the_cached_zip(tmp_path, archive, capsys):
    root = tmp_path / "cache"
    folder = dl.ensure_archive(archive, root)
    (folder / "u.data").write_text(FILES["u.data"][:-11])  # cut at a line end: still parses
    size = len(FILES["u.data"])
    assert dl.check_cache(folder, archive) == f"u.data is {size - 11} bytes, {size} expected"
    assert dl.ensure_archive(archive, root, fetch=no_fetch) == folder  # no download: zip is good
    assert (folder / "u.data").read_text() == FILES["u.data"]
    err = capsys.readouterr().err
    assert f"cached ml-100k in {folder} is not intact (u.data is {size - 11} bytes" in err
    assert "replacing it" in err


def test_same_size_edit_is_caught_by_the_hash(tmp_path, archive):
    root = tmp_path / "cache"
    folder = dl.ensure_archive(archive, root)
    path = folder / "u.data"
    st = path.stat()
    path.write_text(FILES["u.data"].replace("5", "1"))  # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the old mtime
    assert dl.check_cache(folder, archive) == "u.data has changed since it was unpacked (SHA-256 differs)"
    dl.ensure_archive(archive, root, fetch=no_fetch)
    assert path.read_text() == FILES["u.data"]


def test_large_cache_checks_sizes_and_mtimes_and_hashes_with_verify(tmp_path, archive, monkeypatch):
    monkeypatch.setattr(dl, "HASH_ON_LOAD_BYTES", 10)  # pretend the dataset is large (ml-20m)
    root = tmp_path / "cache"
    folder = dl.ensure_archive(archive, root)
    path = folder / "u.data"
    st = path.stat()
    path.write_text(FILES["u.data"].replace("5", "1"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert dl.check_cache(folder, archive) is None  # the documented gap: same size and mtime
    assert dl.check_cache(folder, archive, verify=True).startswith("u.data has changed")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # edited later: hashed
    assert dl.check_cache(folder, archive).startswith("u.data has changed")
    dl.ensure_archive(archive, root, fetch=no_fetch, verify=True)
    assert path.read_text() == FILES["u.data"]


def test_corrupt_cache_without_zip_is_downloaded_again(tmp_path, archive):
    root = tmp_path / "cache"
    folder = dl.ensure_archive(archive, root)
    (folder / "u.user").unlink()
    (root / "ml-100k.zip").write_bytes(b"PK\x03\x04 not the archive")
    calls = []
    dl.ensure_archive(archive, root, fetch=counting_fetch(calls))
    assert calls == [archive.url] and (folder / "u.user").read_text() == FILES["u.user"]
    assert dl.file_digest(root / "ml-100k.zip") == archive.sha256


def test_corrupt_cache_offline_is_a_clear_error(tmp_path, archive):
    root = tmp_path / "cache"
    folder = dl.ensure_archive(archive, root)
    (folder / "u.data").write_text("1\t1\t5\t100\n")
    (root / "ml-100k.zip").unlink()
    with pytest.raises(DatasetError) as err:
        dl.ensure_archive(archive, root, fetch=offline)
    msg = str(err.value)
    assert msg.startswith(f"ml-100k: the cached copy was not intact (u.data is 10 bytes, "
                          f"{len(FILES['u.data'])} expected) and was removed, the cached zip is "
                          "missing, and downloading it again failed: ")
    assert "Network is unreachable" in msg and "use --data-dir" in msg and "\n" not in msg
    assert list(root.iterdir()) == []  # the corrupt copy is gone, no temporaries, no lock


def test_legacy_marker_is_rebuilt_from_zip(tmp_path, archive):
    root = tmp_path / "cache"
    folder = dl.ensure_archive(archive, root)
    (folder / dl.MARKER).write_text(f"sha256 {archive.sha256}\n")  # the format before manifests
    assert "older mfsoftmax" in dl.check_cache(folder, archive)
    dl.ensure_archive(archive, root, fetch=no_fetch)
    assert dl.read_marker(folder)["files"]


def test_md5sums_checked_before_marking_complete(tmp_path):
    good = make_archive(tmp_path / "a", md5sums=True)
    root = tmp_path / "cache"
    folder = dl.ensure_archive(good, root)
    assert "MD5SUMS" in dl.read_marker(folder)["files"]
    bad = make_archive(tmp_path / "b", md5sums=f"{'0' * 32}  u.data\n")
    with pytest.raises(DatasetError, match=r"u\.data: MD5 .* does not match"):
        dl.ensure_archive(bad, tmp_path / "cache2")
    assert [p.name for p in (tmp_path / "cache2").iterdir()] == ["ml-100k.zip"]  # never marked


def test_loader_replaces_corrupt_ml100k_cache(tmp_path, archive, monkeypatch):
    monkeypatch.setitem(dl.ARCHIVES, "ml-100k", archive)
    monkeypatch.setenv("MFSOFTMAX_DATA", str(tmp_path / "envcache"))
    monkeypatch.setattr(dl, "fetch_url", counting_fetch(calls := []))
    assert ml_100k().n_interactions == 3
    (tmp_path / "envcache" / "ml-100k" / "u.data").write_text("1\t1\t5\t100\n")  # truncated
    assert ml_100k().n_interactions == 3 and ml_100k(verify=True).n_interactions == 3
    assert calls == [archive.url]  # replaced from the cached zip, not downloaded again


# ----------------------------------------------------------------------------- temporaries, lock
def test_stale_temporaries_are_removed_on_next_load(tmp_path, archive):
    root = tmp_path / "cache"
    dl.ensure_archive(archive, root)
    (root / ".ml-100k.k2j3h4.part").write_bytes(b"PK half a download")
    (root / ".ml-100k.unpack.x8y9").mkdir()
    (root / ".ml-100k.unpack.x8y9" / "u.data").write_text("1\t1\t5")
    (root / ".ml-1m.abc.part").write_bytes(b"another dataset's")
    dl.ensure_archive(archive, root, fetch=no_fetch)  # a load of a valid cache cleans too
    assert leftovers(root) == [".ml-1m.abc.part"]  # left for the next ml-1m load
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == [
        "ml-100k", "ml-100k.zip"]


def test_unlocked_cleanup_spares_recent_temporaries(tmp_path):
    (tmp_path / ".ml-100k.new.part").write_bytes(b"x")
    old = tmp_path / ".ml-100k.old.part"
    old.write_bytes(b"x")
    os.utime(old, (time.time() - 2 * dl.STALE_AGE_S,) * 2)
    assert dl.clean_stale(tmp_path, "ml-100k", locked=False) == [old]
    assert leftovers(tmp_path) == [".ml-100k.new.part"]


def test_loads_of_one_dataset_are_serialised(tmp_path, archive):
    root = tmp_path / "cache"
    root.mkdir()
    done = []
    with dl._locked(root, "ml-100k"):
        assert leftovers(root) == [".ml-100k.lock"]
        t = threading.Thread(target=lambda: done.append(dl.ensure_archive(archive, root)))
        t.start()
        t.join(0.3)
        assert t.is_alive() and not done and not (root / "ml-100k").exists()
    t.join(30)
    assert done == [root / "ml-100k"] and leftovers(root) == []


# ----------------------------------------------------------------------------- bad roots, failures
def test_cache_root_that_is_a_file(tmp_path, archive, monkeypatch):
    f = tmp_path / "afile"
    f.write_text("not a folder")
    monkeypatch.setenv("MFSOFTMAX_DATA", str(f))
    with pytest.raises(DatasetError) as err:
        dl.ensure_archive(archive, fetch=no_fetch)
    assert str(err.value) == (f"cache folder {f} ($MFSOFTMAX_DATA) is not a folder: point it at "
                              "a folder, or use --data-dir with an unpacked copy")
    monkeypatch.setenv("MFSOFTMAX_DATA", str(f / "sub"))
    with pytest.raises(DatasetError, match=r"cache folder .*afile/sub \(\$MFSOFTMAX_DATA\) cannot be created"):
        dl.ensure_archive(archive, fetch=no_fetch)
    assert f.read_text() == "not a folder"


def test_cache_root_that_is_a_file_cli(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    env = dict(os.environ, MFSOFTMAX_DATA=str(f))
    proc = subprocess.run([sys.executable, "-m", "mfsoftmax", "datasets", "show", "ml-100k"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr == f"mfsoftmax: cache folder {f} ($MFSOFTMAX_DATA) is not a folder: point " \
                          "it at a folder, or use --data-dir with an unpacked copy\n"


@pytest.mark.parametrize("fault", ["offline", "checksum", "lacks-file", "bad-zip"])
def test_failed_load_leaves_nothing_in_the_cache(tmp_path, archive, fault):
    fetch = None
    a = archive
    if fault == "offline":
        fetch = offline
    elif fault == "checksum":
        a = dl.Archive(a.name, a.url, "0" * 64, a.size, a.required)
    elif fault == "lacks-file":
        a = dl.Archive(a.name, a.url, a.sha256, a.size, a.required + ("u.genre",))
    else:
        bad = tmp_path / "bad.zip"
        bad.write_bytes(b"PK\x03\x04" + b"\0" * 100)
        a = dl.Archive(a.name, bad.as_uri(), hashlib.sha256(bad.read_bytes()).hexdigest(), 104,
                       a.required)
    fresh, existing = tmp_path / "fresh" / "cache", tmp_path / "existing"
    existing.mkdir()
    for root in (fresh, existing):
        with pytest.raises(DatasetError):
            dl.ensure_archive(a, root, fetch=fetch)
    # no folder, temporary or lock; only a zip whose SHA-256 matched is kept (the download was
    # good, the unpack failed); a fresh cache folder left empty by the failure is removed
    kept = ["ml-100k.zip"] if fault in ("lacks-file", "bad-zip") else []
    assert [p.name for p in existing.iterdir()] == kept
    assert (sorted(p.name for p in fresh.iterdir()) == kept) if kept else not fresh.exists()
    if kept:
        assert dl.file_digest(existing / "ml-100k.zip") == a.sha256


def test_data_dir_copy_is_never_modified(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "fetch_url", no_fetch)
    d = tmp_path / "copy" / "ml-100k"
    d.mkdir(parents=True)
    for n, t in FILES.items():
        (d / n).write_text(t)
    (d / "MD5SUMS").write_text(f"{'0' * 32}  u.data\n")
    with pytest.raises(DatasetError, match=r"u\.data: MD5 .* does not match .*corrupt or modified"):
        dl.dataset_folder("ml-100k", tmp_path / "copy")
    assert sorted(p.name for p in d.iterdir()) == ["MD5SUMS", "u.data", "u.item", "u.user"]


# ----------------------------------------------------------------------------- verify command
def test_cli_verify(tmp_path, archive, monkeypatch, capsys):
    monkeypatch.setitem(dl.ARCHIVES, "ml-100k", archive)
    monkeypatch.setenv("MFSOFTMAX_DATA", str(tmp_path / "c"))
    monkeypatch.setattr(dl, "fetch_url", counting_fetch(calls := []))
    assert cli_main(["datasets", "verify", "ml-100k"]) == 0
    assert capsys.readouterr().out == (f"ml-100k: {tmp_path / 'c' / 'ml-100k'}: 3 files match "
                                       "their recorded size and SHA-256\n")
    assert cli_main(["datasets", "verify", "ml-7m"]) == 2
    assert "no download known for 'ml-7m'" in capsys.readouterr().err
    copy = tmp_path / "copy" / "ml-100k"
    copy.mkdir(parents=True)
    for n, t in FILES.items():
        (copy / n).write_text(t)
    assert cli_main(["datasets", "verify", "ml-100k", "--data-dir", str(copy.parent)]) == 0
    assert capsys.readouterr().out.endswith("required files present (no MD5SUMS to check them "
                                            "against)\n")
    (copy / "MD5SUMS").write_text(f"{'0' * 32}  u.data\n")
    assert cli_main(["datasets", "verify", "ml-100k", "--data-dir", str(copy.parent)]) == 2
    assert "u.data: MD5" in capsys.readouterr().err
    assert calls == [archive.url]


# ----------------------------------------------------------------------------- real data
@pytest.mark.ml100k
def test_real_ml100k_cache_roundtrip(shared_datasets, tmp_path):
    src = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(src, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted((shared_datasets / "ml-100k").iterdir()):
            zf.write(p, f"ml-100k/{p.name}")
    blob = src.read_bytes()
    a = dl.Archive("ml-100k", src.as_uri(), hashlib.sha256(blob).hexdigest(), len(blob),
                   dl.ARCHIVES["ml-100k"].required)
    root = tmp_path / "cache"
    folder = dl.ensure_archive(a, root)  # MD5SUMS of the real release checked while unpacking
    assert dl.check_cache(folder, a) is None
    data = (folder / "u.data").read_bytes()
    cut = data[: data.rindex(b"\n", 0, len(data) - 1) + 1]  # one line less: still parses
    (folder / "u.data").write_bytes(cut)
    assert dl.check_cache(folder, a) == f"u.data is {len(cut)} bytes, {len(data)} expected"
    dl.ensure_archive(a, root, fetch=no_fetch)
    assert (folder / "u.data").read_bytes() == data
    shutil.rmtree(root)
