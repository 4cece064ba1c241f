"""List the dataset registry, or show one dataset's statistics.

Examples
--------
  mfsoftmax datasets
  mfsoftmax datasets show synthetic
  mfsoftmax datasets show ml-100k --data-dir ../shared/datasets
  mfsoftmax datasets show "twin(ml-100k)" --data-dir ../shared/datasets --min-rating 4
  mfsoftmax datasets show file --param path=ratings.csv.gz --param encoding=latin-1
  mfsoftmax datasets inspect ratings.tsv --item-features items.csv --user-features users.csv \
      --write-config my.toml
  mfsoftmax datasets verify ml-20m
"""

from __future__ import annotations

import json
import sys

from mfsoftmax.dataset_args import add_dataset_options, load_from_args


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.add_parser("list", help="list the registry (default)")
    show = sub.add_parser("show", help="load one dataset and print its statistics")
    show.add_argument("name", help="registry name or spec, e.g. ml-100k, twin(synthetic)")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_dataset_options(show)
    insp = sub.add_parser("inspect", help="what the file loader detects in your files (separator, "
                          "header, roles, side-table columns and kinds, unmatched ids); "
                          "--write-config writes a config that runs them")
    insp.add_argument("path", help="the interactions file (CSV/TSV/Parquet, compressed or not)")
    for side in ("item", "user"):
        insp.add_argument(f"--{side}-features", metavar="PATH", help=f"the {side} side table")
        insp.add_argument(f"--{side}-features-key", metavar="COLUMN",
                          help=f"its key column (default: named like the {side} column, else the first)")
        insp.add_argument(f"--{side}-feature-kinds", metavar="COL:KIND,...",
                          help="kind overrides, e.g. title:text,year:numeric,genres:multi:|")
    insp.add_argument("--write-config", metavar="FILE",
                      help="write a TOML config (the default run's models on these files)")
    verify = sub.add_parser("verify", help="re-hash a downloaded MovieLens dataset's cached files "
                            "(replacing them when corrupt), or check a --data-dir copy's MD5SUMS")
    verify.add_argument("name", help="ml-100k, ml-1m, ml-20m or ml-latest-small")
    verify.add_argument("--data-dir", help="check this unpacked copy instead of the cache")


def main(args) -> int:
    from mfsoftmax.datasets import REGISTRY, DatasetError  # lazy: numpy+scipy, off --help

    if getattr(args, "action", None) in (None, "list"):
        composite = [("twin(A)", "A plus a relabelled copy of itself (folding probe)"),
                     ("disjoint-union(A, B)", "A and B stacked block-diagonally (folding probe)")]
        width = max(len(n) for n in [*REGISTRY, *(name for name, _ in composite)])
        for name, loader in sorted(REGISTRY.items()):
            tag = " [downloads]" if loader.downloads else ""
            print(f"{name:<{width}}  {loader.description}{tag}")
        for name, description in composite:
            print(f"{name:<{width}}  {description}")
        return 0
    if args.action == "verify":
        return _verify(args)
    if args.action == "inspect":
        from .datasets_inspect import inspect_files  # lazy: numpy+polars, off --help

        return inspect_files(args)
    try:
        data = load_from_args(args, args.name)
    except (DatasetError, OSError) as exc:
        print(f"mfsoftmax: {exc}", file=sys.stderr)
        return 2
    stats = data.stats()
    if args.json:
        side = data.meta.get("side_tables")
        print(json.dumps({**stats, "side_tables": side} if side else stats, indent=2))
        return 0
    print(f"dataset        {stats['name']}")
    print(f"users          {stats['n_users']}")
    print(f"items          {stats['n_items']}")
    print(f"interactions   {stats['n_interactions']}")
    print(f"density        {stats['density']:.6f}")
    print(f"timestamps     {'yes' if stats['has_timestamps'] else 'no'}")
    print(f"ratings        {'yes' if stats['has_ratings'] else 'no'}")
    for side in ("user_features", "item_features"):
        cols = ", ".join(f"{k} ({v})" for k, v in stats[side].items()) or "none"
        print(f"{side.replace('_', ' '):<14} {cols}")
    dup = stats.get("duplicates")
    if dup:
        how = ("values summed" if dup["rule"] == "sum" else "the latest kept")
        why = f"; {dup['why']}" if dup.get("why") else ""
        print(f"duplicates     {dup['rows'] - dup['pairs']} repeated (user, item) rows merged "
              f"into {dup['pairs']} pairs: {how}{why}")
    if stats["planted_groups"]:
        print(f"planted groups {stats['planted_groups']}")
    for line in side_table_lines(data.meta):
        print(line)
    return 0


def side_table_lines(meta: dict) -> list[str]:
    """What the ``file`` loader's side tables gave (kinds, ids matched, new items), as lines."""
    out = []
    for side, t in (meta.get("side_tables") or {}).items():
        out.append(f"{side} table     {t['path']} (key {t['key']!r}, {t['rows']} rows, "
                   f"{t['ids']} ids)")
        for col, c in t["columns"].items():
            extra = (f", separator {c['separator']!r}" if c.get("separator") else "") + (
                f", {c['other_values']} rarer values as (other)" if c.get("other_values") else "") + (
                f", {c['truncated_cells']} cells cut to their first characters"
                if c.get("truncated_cells") else "")
            out.append(f"  {col:<20} {c['kind']} [{c['size']}]{extra}")
        out.append(f"  ids: {t['matched_ids']} matched, {t['unmatched_ids']} not in the "
                   f"interactions{' (new items)' if side == 'item' else ''}, {t['missing_ids']} "
                   f"{side}s of the interactions missing from it, {t['duplicate_rows']} "
                   "repeated rows")
    return out


def _verify(args) -> int:
    from mfsoftmax.datasets import DatasetError  # lazy: numpy+scipy, off --help
    from mfsoftmax.datasets.download import dataset_folder, read_marker  # lazy: as above

    try:
        folder = dataset_folder(args.name, args.data_dir, verify=True)
    except (DatasetError, OSError) as exc:
        print(f"mfsoftmax: {exc}", file=sys.stderr)
        return 2
    if args.data_dir is not None:
        what = ("files match its MD5SUMS" if (folder / "MD5SUMS").is_file()
                else "required files present (no MD5SUMS to check them against)")
    else:
        what = f"{len(read_marker(folder)['files'])} files match their recorded size and SHA-256"
    print(f"{args.name}: {folder}: {what}")
    return 0
