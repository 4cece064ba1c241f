"""Export MovieLens 100K to three plain files (the ``file`` dataset's input): interactions,
a user table and an item table. Used by the side-table tests and the your-own-data docs.

    python -m tests.ml100k_export ../shared/datasets/ml-100k OUT_DIR
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def export_ml100k(folder, out) -> dict:
    """Write ``ratings.tsv`` (user_id, item_id, rating, timestamp; tab, header), ``users.csv``
    (user_id, age, gender, occupation, zip) and ``items.csv`` (item_id, title, year, genres as
    one ``|``-separated cell; an unknown year left empty) under ``out``; returns their paths."""
    folder, out = Path(folder), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / n for k, n in (("ratings", "ratings.tsv"), ("users", "users.csv"),
                                     ("items", "items.csv"))}
    with open(paths["ratings"], "w", newline="") as f:
        f.write("user_id\titem_id\trating\ttimestamp\n")
        f.write((folder / "u.data").read_text())
    with open(paths["users"], "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "age", "gender", "occupation", "zip"])
        for line in (folder / "u.user").read_text(encoding="latin-1").splitlines():
            if line.strip():
                w.writerow(line.split("|"))
    from mfsoftmax.datasets.movielens import GENRES

    with open(paths["items"], "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["item_id", "title", "year", "genres"])
        for line in (folder / "u.item").read_text(encoding="latin-1").splitlines():
            if not line.strip():
                continue
            x = line.split("|")
            genres = "|".join(GENRES[k] for k, flag in enumerate(x[5:]) if flag == "1")
            w.writerow([x[0], x[1], x[2].strip()[-4:], genres])
    return paths


if __name__ == "__main__":
    print(export_ml100k(sys.argv[1], sys.argv[2]))
