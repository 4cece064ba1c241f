"""The dataset options shared by every command that loads a dataset (``mfsoftmax datasets show``,
``mfsoftmax eval``, the torchrun entry point of ``models/softmax/ddp.py``): a leaf of the core,
so a model's entry point reads them without importing the CLI."""

from __future__ import annotations

import json


def add_dataset_options(p) -> None:
    """Options shared by every command that loads a dataset."""
    p.add_argument("--data-dir", help="folder with an unpacked copy of the dataset (offline use)")
    p.add_argument("--min-rating", type=float, default=None,
                   help="keep interactions with rating >= this (positive threshold)")
    p.add_argument("--min-user", type=int, default=0, help="k-core: minimum interactions per user")
    p.add_argument("--min-item", type=int, default=0, help="k-core: minimum interactions per item")
    p.add_argument("--no-binarize", action="store_true", help="keep rating values instead of 1.0")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="builder parameter, e.g. --param n_users=10000 (repeatable)")


def parse_params(items) -> dict:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (JSON values where they parse)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"mfsoftmax: --param {item!r}: expected KEY=VALUE")
        key, val = item.split("=", 1)
        try:
            out[key] = json.loads(val)
        except json.JSONDecodeError:
            out[key] = val
    return out


def load_from_args(args, name: str):
    """Dataset ``name`` loaded with the options :func:`add_dataset_options` added to ``args``."""
    from mfsoftmax.datasets import load  # lazy: numpy+scipy (~0.7 s), off --help

    return load(name, data_dir=args.data_dir, min_rating=args.min_rating, min_user=args.min_user,
                min_item=args.min_item, binary=not args.no_binarize, **parse_params(args.param))
