"""Side tables of the ``file`` dataset: keys, kinds, new items, and bad tables."""

import gzip
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from mfsoftmax.datasets import DatasetError, load
from mfsoftmax.datasets import sidekinds as sk

RATINGS = "user,item,rating\n1,10,5\n1,11,3\n2,10,4\n3,12,1\n"


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def loaded(tmp_path, **params):
    return load("file", path=write(tmp_path, "r.csv", RATINGS), **params)


def test_item_table_kinds_new_items_and_meta(tmp_path):
    items = write(tmp_path, "items.csv",
                  "item,title,genres,year\n10,Toy Story (1995),Animation|Comedy,1995\n"
                  "11,Heat (1995),Action|Crime,1995\n12,Alien,Sci-Fi,1979\n"
                  "99,A New Film,Drama|Comedy,2020\n")
    d = loaded(tmp_path, item_features=items)
    info = d.meta["side_tables"]["item"]
    kinds = {c: v["kind"] for c, v in info["columns"].items()}
    assert kinds == {"year": "categorical", "genres": "multi", "title": "text"}
    assert list(d.item_features) == ["year", "genres", "title"]  # categorical, multi, text
    labels = info["columns"]["genres"]["labels"]
    got = [{labels[k] for k in np.flatnonzero(row)} for row in d.item_features["genres"]]
    assert got == [{"Animation", "Comedy"}, {"Action", "Crime"}, {"Sci-Fi"}]
    assert d.item_features["title"].shape == (3, sk.TEXT_BUCKETS)
    assert (info["unmatched_ids"], info["missing_ids"], info["matched_ids"]) == (1, 0, 3)
    new = d.meta["new_items"]
    assert new["ids"].tolist() == [99]
    assert {labels[k] for k in np.flatnonzero(new["features"]["genres"][0])} == {"Drama", "Comedy"}
    assert new["features"]["year"].tolist() == [2]  # 1979, 1995, 2020: same codes as the catalogue


def test_user_table_string_ids_key_by_name_and_missing_ids(tmp_path):
    r = write(tmp_path, "r.csv", "userId,itemId\nann,x\nbob,y\ncid,x\n")
    users = write(tmp_path, "u.tsv", "gender\tuserId\tage\nF\tann\t30\nM\tbob\t41\nF\tzed\t22\n")
    d = load("file", path=r, user_features=users, user_feature_kinds="age:numeric")
    assert d.meta["side_tables"]["user"]["key"] == "userId"  # named like the interactions' column
    assert d.user_features["gender"].tolist() == [0, 1, 2]  # F, M, then (missing) for cid
    info = d.meta["side_tables"]["user"]
    assert (info["missing_ids"], info["unmatched_ids"]) == (1, 1)
    assert info["columns"]["gender"]["labels"] == ["F", "M", "(missing)"]
    assert info["columns"]["age"]["kind"] == "numeric"
    assert "new_items" not in d.meta


def test_key_option_and_compressed_and_parquet(tmp_path):
    body = "sku,colour\n10,red\n11,blue\n12,red\n"
    gz = tmp_path / "items.csv.gz"
    gz.write_bytes(gzip.compress(body.encode()))
    d = loaded(tmp_path, item_features=str(gz), item_features_key="sku")
    assert d.item_features["colour"].tolist() == [1, 0, 1]
    pq = tmp_path / "items.parquet"
    pl.DataFrame({"sku": [10, 11, 12], "tags": [["a", "b"], ["b"], []]}).write_parquet(pq)
    d = loaded(tmp_path, item_features=str(pq), item_features_key=0,
               item_feature_kinds="tags:multi:|")
    assert d.item_features["tags"].tolist() == [[1, 1], [0, 1], [0, 0]]


def test_long_format_and_declared_kinds(tmp_path):
    tags = write(tmp_path, "tags.csv", "item,tag\n10,fun\n12,space\n10,kids\n10,fun\n")
    d = loaded(tmp_path, item_features=tags)
    assert d.item_features["tag"].tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 1]]
    assert d.meta["side_tables"]["item"]["duplicate_rows"] == 1
    nums = write(tmp_path, "n.csv", "item,price\n10,1.5\n11,2.5\n12,9\n")
    d = loaded(tmp_path, item_features=nums, item_feature_kinds={"price": "numeric"})
    assert d.item_features["price"].tolist() == [0, 1, 2]  # quantile buckets, in order


def test_inference_rule():
    s = pl.Series("c", ["a b c", "d e", "f g", "h i"])
    assert sk.infer_kind(s) == ("text", None)
    assert sk.infer_kind(pl.Series("z", ["02138", "10001", "30301"])) == ("categorical", None)
    assert sk.infer_kind(pl.Series("n", [str(x) for x in range(100)])) == ("numeric", None)
    assert sk.infer_kind(pl.Series("n", [str(x) for x in range(5)])) == ("categorical", None)
    assert sk.infer_kind(pl.Series("g", ["a;b", "c", "d;e"])) == ("multi", ";")


def test_categorical_cap_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(sk, "MAX_CATEGORIES", 2)
    t = write(tmp_path, "i.csv", "item,brand\n10,a\n11,b\n12,c\n13,a\n")
    d = loaded(tmp_path, item_features=t)
    info = d.meta["side_tables"]["item"]["columns"]["brand"]
    assert (info["size"], info["other_values"]) == (2, 2)
    assert d.item_features["brand"].tolist() == [0, 1, 1]  # a kept, b and c -> (other)


@pytest.mark.parametrize("table,params,message", [
    ("item,x\n10,a\n", {"item_features_key": "sku"},
     "item_features_key='sku': no such column; columns: item, x"),
    ("item,colour,size\n10,red,S\n11,blue,M\n10,green,S\n", {},
     "i.csv, line 4: id '10' appears again (first on line 2) with a different 'colour'"),
    ("item,colour\n10,red\n,blue\n", {}, "i.csv, line 3: the id column 'item' is empty"),
    ("item,colour,size\n10,red,S\n010,blue,S\n", {},
     "i.csv, line 3: id '10' appears again (first on line 2) with a different 'colour'"),
    ("item,colour\n10,red\nNaN,blue\n", {}, "i.csv, line 3: id 'NaN' in column 'item' is not an"),
    ("item,colour\n10,red\n", {"item_feature_kinds": "hue:text"}, "no value column 'hue'"),
    ("item,colour\n10,red\n", {"item_feature_kinds": "colour:fancy"}, "unknown kind 'fancy'"),
    ("item,price\n10,1\n11,cheap\n", {"item_feature_kinds": "price:numeric"},
     "i.csv, line 3: 'cheap' is not a number"),
])
def test_bad_side_tables(tmp_path, table, params, message):
    t = write(tmp_path, "i.csv", table)
    with pytest.raises(DatasetError, match=None) as exc:
        loaded(tmp_path, item_features=t, **params)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_multi_valued_cell_over_limit(tmp_path):
    cell = "|".join(f"t{k}" for k in range(sk.MAX_CELL_VALUES + 1))
    t = write(tmp_path, "i.csv", f"item,tags\n10,a|b\n11,{cell}\n")
    with pytest.raises(DatasetError) as exc:
        loaded(tmp_path, item_features=t)
    assert "i.csv, line 3: 10001 values in one cell of column 'tags' (limit 10000)" in str(exc.value)


def test_huge_text_column_is_truncated_and_bounded(tmp_path):
    big = " ".join(f"w{k}" for k in range(400_000))  # ~3 MB in one cell
    t = write(tmp_path, "i.csv", f"item,text\n10,{big}\n11,short words here\n12,more words\n")
    d = loaded(tmp_path, item_features=t, item_feature_kinds="text:text")
    info = d.meta["side_tables"]["item"]["columns"]["text"]
    assert info["truncated_cells"] == 1 and d.item_features["text"].shape == (3, sk.TEXT_BUCKETS)
    assert d.item_features["text"].dtype == np.uint8
    # only the first MAX_TEXT_CHARS characters were tokenised: far fewer tokens than 400k
    assert info["tokens"] < sk.MAX_TEXT_CHARS


def test_key_without_table_and_cli_exit_2(tmp_path):
    with pytest.raises(DatasetError, match="item_features_key given without item_features"):
        loaded(tmp_path, item_features_key="x")
    t = write(tmp_path, "i.csv", "item,colour,size\n10,red,S\n11,blue,M\n10,green,S\n")
    r = write(tmp_path, "r.csv", RATINGS)
    p = subprocess.run([sys.executable, "-m", "mfsoftmax", "datasets", "show", "file",
                        "--param", f"path={r}", "--param", f"item_features={t}"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "line 4" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def _fnv1a_splitmix(word: str) -> int:
    """The text hash written out in plain Python: 64-bit FNV-1a of the UTF-8 bytes, then
    splitmix64's finaliser."""
    mask = (1 << 64) - 1
    h = 0xCBF29CE484222325
    for b in word.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & mask
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) & mask
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) & mask
    return h ^ (h >> 31)


def test_text_hash_is_our_own_and_pinned(monkeypatch):
    """A token's bucket does not depend on polars' hash (which changes between versions): the
    values are pinned and match the plain-Python reference, for ASCII, non-ASCII and long
    tokens, and polars' Series.hash is never called."""
    words = ["", "a", "hello", "wörld", "toy", "story", "1995", "x" * 3000]
    got = sk.token_hash(pl.Series(words, dtype=pl.String))
    assert got.dtype == np.uint64
    assert [int(h) for h in got] == [_fnv1a_splitmix(w) for w in words]
    assert int(got[1]) == 0x02C0BDBF481420F8 and int(got[2]) == 0x16FE05A1C75BCD0F
    assert [int(h) % sk.TEXT_BUCKETS for h in got[:7]] == [155, 248, 15, 252, 107, 99, 60]

    def no_polars_hash(*a, **k):
        raise AssertionError("polars' hash was used")

    monkeypatch.setattr(pl.Series, "hash", no_polars_hash)
    hot, info = sk.encode_text(pl.Series(["Toy Story (1995)", None, "toy TOY story"]))
    assert info["tokens"] == 6
    assert np.flatnonzero(hot[0]).tolist() == [60, 99, 107]  # 1995, story, toy
    assert hot[1].sum() == 0 and np.flatnonzero(hot[2]).tolist() == [99, 107]
