"""Download cache: never touches the network (``file://`` URLs and a patched fetch function)."""

import hashlib
import re
import zipfile

import pytest

from mfsoftmax.datasets import DatasetError
from mfsoftmax.datasets import download as dl
from mfsoftmax.datasets.movielens import ml_100k

FILES = {
    "u.data": "1\t1\t5\t100\n2\t1\t3\t101\n2\t2\t4\t102\n",
    "u.item": "1|A (1995)|01-Jan-1995||u|" + "|".join(["0"] * 8 + ["1"] + ["0"] * 10) + "\n"
              "2|B (1980)|01-Jan-1980||u|" + "|".join(["0"] * 5 + ["1"] + ["0"] * 13) + "\n",
    "u.user": "1|30|F|artist|1\n2|40|M|writer|2\n",
}


@pytest.fixture
def archive(tmp_path):
    """A real zip of a tiny ml-100k in tmp_path/src, with its Archive record (file:// URL)."""
    src = tmp_path / "src"
    src.mkdir()
    zpath = src / "ml-100k.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for name, text in FILES.items():
            zf.writestr(f"ml-100k/{name}", text)
    blob = zpath.read_bytes()
    return dl.Archive("ml-100k", zpath.as_uri(), hashlib.sha256(blob).hexdigest(), len(blob),
                      ("u.data", "u.item", "u.user"))


def no_fetch(url, dest):
    raise AssertionError(f"unexpected download of {url}")


def counting_fetch(calls):
    real = dl.fetch_url

    def fetch(url, dest):
        calls.append(url)
        real(url, dest)
    return fetch


def test_good_download_unpacks_and_marks(tmp_path, archive):
    root = tmp_path / "cache"
    folder = dl.ensure_archive(archive, root)  # real fetch_url on a file:// URL
    assert folder == root / "ml-100k"
    assert (folder / "u.data").read_text() == FILES["u.data"]
    marker = dl.read_marker(folder)
    assert marker["sha256"] == archive.sha256
    assert marker["files"]["u.data"][:2] == [
        len(FILES["u.data"]), hashlib.sha256(FILES["u.data"].encode()).hexdigest()]
    assert set(marker["files"]) == {"u.data", "u.item", "u.user"}
    assert (root / "ml-100k.zip").is_file()
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_marker_present_reuses_cache_without_fetching(tmp_path, archive):
    root = tmp_path / "cache"
    dl.ensure_archive(archive, root)
    (root / "ml-100k.zip").unlink()  # even the zip is not needed once the folder is marked
    assert dl.ensure_archive(archive, root, fetch=no_fetch) == root / "ml-100k"


def test_checksum_mismatch_raises_and_leaves_nothing(tmp_path, archive):
    bad = dl.Archive(archive.name, archive.url, "0" * 64, archive.size, archive.required)
    root = tmp_path / "cache"
    with pytest.raises(DatasetError, match=r"ml-100k\.zip .*SHA-256 .* does not match"):
        dl.ensure_archive(bad, root)
    assert not root.exists()  # the failed first load created the cache folder and removed it
    root.mkdir()
    wrong_size = dl.Archive(archive.name, archive.url, archive.sha256, archive.size + 1,
                            archive.required)
    with pytest.raises(DatasetError, match=r"ml-100k\.zip checksum mismatch"):
        dl.ensure_archive(wrong_size, root)
    assert list(root.iterdir()) == []


def test_partial_cache_is_replaced(tmp_path, archive):
    root = tmp_path / "cache"
    (root / "ml-100k").mkdir(parents=True)
    (root / "ml-100k" / "u.data").write_text("1\t1\t5")  # interrupted unpack: no marker
    (root / "ml-100k.zip").write_bytes(b"PK\x03\x04 truncated")  # interrupted download
    calls = []
    folder = dl.ensure_archive(archive, root, fetch=counting_fetch(calls))
    assert calls == [archive.url]
    assert (folder / "u.data").read_text() == FILES["u.data"]
    assert (root / "ml-100k.zip").read_bytes() == (tmp_path / "src" / "ml-100k.zip").read_bytes()


def test_wrong_marker_or_missing_file_is_rebuilt_from_verified_zip(tmp_path, archive):
    root = tmp_path / "cache"
    dl.ensure_archive(archive, root)
    (root / "ml-100k" / dl.MARKER).write_text("sha256 " + "f" * 64 + "\n")
    calls = []
    dl.ensure_archive(archive, root, fetch=counting_fetch(calls))
    assert calls == []  # the cached zip still matches: unpacked again without downloading
    assert dl.read_marker(root / "ml-100k")["sha256"] == archive.sha256
    (root / "ml-100k" / "u.item").unlink()
    folder = dl.ensure_archive(archive, root, fetch=counting_fetch(calls))
    assert (folder / "u.item").read_text() == FILES["u.item"] and calls == []


def test_archive_without_required_file_is_rejected(tmp_path, archive):
    needs_more = dl.Archive(archive.name, archive.url, archive.sha256, archive.size,
                            archive.required + ("u.genre",))
    with pytest.raises(DatasetError, match="lacks u.genre"):
        dl.ensure_archive(needs_more, tmp_path / "cache")
    assert not (tmp_path / "cache" / "ml-100k").exists()


def test_fetch_failure_is_a_dataset_error(tmp_path, archive):
    missing = dl.Archive(archive.name, (tmp_path / "none.zip").as_uri(), archive.sha256,
                         archive.size, archive.required)
    with pytest.raises(DatasetError, match="download failed"):
        dl.ensure_archive(missing, tmp_path / "cache")


def test_loader_downloads_into_cache_once(tmp_path, archive, monkeypatch):
    monkeypatch.setitem(dl.ARCHIVES, "ml-100k", archive)
    monkeypatch.setenv("MFSOFTMAX_DATA", str(tmp_path / "envcache"))
    calls = []
    monkeypatch.setattr(dl, "fetch_url", counting_fetch(calls))
    d = ml_100k()
    assert (d.n_users, d.n_items, d.n_interactions) == (2, 2, 3)
    assert (tmp_path / "envcache" / "ml-100k" / dl.MARKER).exists()
    ml_100k()
    assert calls == [archive.url]


def test_data_dir_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "fetch_url", no_fetch)
    d = tmp_path / "copy" / "ml-100k"
    d.mkdir(parents=True)
    for name, text in FILES.items():
        (d / name).write_text(text)
    assert dl.dataset_folder("ml-100k", tmp_path / "copy") == d
    assert dl.dataset_folder("ml-100k", d) == d
    with pytest.raises(DatasetError, match="holds neither"):
        dl.dataset_folder("ml-100k", tmp_path)


def test_cache_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MFSOFTMAX_DATA", str(tmp_path / "a"))
    assert dl.cache_root() == tmp_path / "a"
    monkeypatch.delenv("MFSOFTMAX_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert dl.cache_root() == tmp_path / "xdg" / "mfsoftmax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert dl.cache_root() == tmp_path / "home" / ".cache" / "mfsoftmax"


def test_official_archive_table():
    assert set(dl.ARCHIVES) == {"ml-100k", "ml-1m", "ml-20m", "ml-latest-small"}
    for name, a in dl.ARCHIVES.items():
        assert a.url == f"https://files.grouplens.org/datasets/movielens/{name}.zip"
        assert re.fullmatch(r"[0-9a-f]{64}", a.sha256)
        assert a.size and a.size > 100_000 and a.required


def test_zip_slip_rejected(tmp_path):
    src = tmp_path / "evil.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("../outside.txt", "x")
        zf.writestr("ml-100k/u.data", "1\t1\t1\t1\n")
    blob = src.read_bytes()
    evil = dl.Archive("ml-100k", src.as_uri(), hashlib.sha256(blob).hexdigest(), len(blob),
                      ("u.data",))
    with pytest.raises(DatasetError, match="escapes"):
        dl.ensure_archive(evil, tmp_path / "cache")
    assert not (tmp_path / "outside.txt").exists()
