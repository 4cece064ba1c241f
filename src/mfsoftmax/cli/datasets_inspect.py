"""``mfsoftmax datasets inspect``: what the ``file`` loader detects in a user's files, and a
starter config that runs them (the default run's models, this dataset)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl

from mfsoftmax.bench.config import CONFIG_DIR
from mfsoftmax.cli.datasets import side_table_lines
from mfsoftmax.datasets import DatasetError, load
from mfsoftmax.datasets.columns import _split_line, detect_header, detect_sep
from mfsoftmax.datasets.decode import decompress, read_bytes, sniff_format, to_utf8
from mfsoftmax.runtime import atomic_write_bytes

_SEP_WORDS = {b"\t": "tab", b",": "comma", b";": "semicolon", b"|": "pipe", b"::": "'::'",
              b" ": "spaces"}
_KIND_SEPS = {"|": "pipe", ";": "semicolon", ",": "comma", " ": "space", "\t": "tab"}


def layout(path) -> tuple[str, bool, list[str] | None]:
    """(separator in words, has a header, column names or None) of the interactions file."""
    raw = read_bytes(path)
    if sniff_format(raw[:16]) == "parquet":
        return "Parquet", True, list(pl.read_parquet_schema(path))
    buf, label = decompress(path, raw)
    buf = to_utf8(label, buf)
    sep = detect_sep(label, buf)
    lines = [ln.rstrip(b"\r") for ln in buf[:65536].split(b"\n")[:2]]
    first = _split_line(lines[0], sep)
    second = _split_line(lines[1], sep) if len(lines) > 1 and lines[1] else None
    header = detect_header(first, second, sep != b",")
    names = [f.strip().strip(b'"').decode("utf-8", "replace") for f in first] if header else None
    return _SEP_WORDS.get(sep, repr(sep.decode())), header, names


def _params(args) -> dict:
    params = {"path": str(Path(args.path).expanduser().resolve())}
    for side in ("item", "user"):
        table = getattr(args, f"{side}_features")
        if table:
            params[f"{side}_features"] = str(Path(table).expanduser().resolve())
        for key in (f"{side}_features_key", f"{side}_feature_kinds"):
            if getattr(args, key, None):
                params[key] = getattr(args, key)
    return params


def config_text(params: dict, meta: dict) -> str:
    """The default config with its ``[dataset]`` table replaced by the ``file`` dataset of
    ``params``, the side tables' keys and kinds written out as detected."""
    params = dict(params)
    for side, t in (meta.get("side_tables") or {}).items():
        params[f"{side}_features_key"] = t["key"]
        params[f"{side}_feature_kinds"] = ",".join(
            f"{col}:{c['kind']}" + (f":{_KIND_SEPS.get(c['separator'], c['separator'])}"
                                    if c.get("separator") else "")
            for col, c in t["columns"].items())
    inline = ", ".join(f"{k} = {json.dumps(v)}" for k, v in params.items())
    dataset = ("[dataset]\nname = \"file\"\nprotocol = \"strong\"\nsplit = { heldout_frac = 0.1 }\n"
               f"params = {{ {inline} }}\n\n")
    default = (CONFIG_DIR / "default.toml").read_text(encoding="utf-8")
    start = default.index("[dataset]\n")
    end = default.index("\n[", start) + 1
    head = ("# Written by `mfsoftmax datasets inspect` from your files: the default run's models on\n"
            "# them. Run it: mfsoftmax run --config THIS_FILE (add --quick for a smoke run).\n")
    return head + "\n" + default[default.index("[run]"):start] + dataset + default[end:]


def inspect_files(args) -> int:
    """Print what the loader detects; with ``--write-config`` also write the config."""
    params = _params(args)
    out = Path(args.write_config) if args.write_config else None
    if out is not None and out.exists():
        print(f"mfsoftmax: --write-config {out}: exists; choose a new file", file=sys.stderr)
        return 2
    try:
        sep, header, names = layout(params["path"])
        data = load("file", binary=False, **params)
    except (DatasetError, OSError) as exc:
        print(f"mfsoftmax: {exc}", file=sys.stderr)
        return 2
    cols = data.meta.get("columns", {})
    roles = ", ".join(f"{r} = column {c + 1}" + (f" {names[c]!r}" if names else "")
                      for r, c in cols.items())
    print(f"file           {params['path']}")
    print(f"separator      {sep}")
    print(f"header         {'yes: ' + ', '.join(names) if header and names else 'no'}")
    print(f"roles          {roles}")
    if data.ratings is not None:
        r = data.ratings
        print(f"values         ratings {r.min():g}..{r.max():g} (every one a positive unless "
              "--min-rating / dataset.min_rating)")
    else:
        print("values         none: each (user, item) pair is one positive")
    print(f"size           {data.n_users} users x {data.n_items} items, "
          f"{data.n_interactions} interactions")
    for line in side_table_lines(data.meta):
        print(line)
    if out is not None:
        try:
            atomic_write_bytes(out, config_text(params, data.meta).encode("utf-8"))
        except OSError as exc:
            print(f"mfsoftmax: --write-config {out}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"config         {out} (mfsoftmax run --config {out})")
    return 0
