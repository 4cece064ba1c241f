"""Suite configuration: TOML files in ``bench/configs/``, defaults, ``--quick`` and overrides.

A config is a nested dict. Every key has a default here (``DEFAULTS``); a file overrides what it
names; command-line flags override the file; the resolved config is stored in results.json.
"""

from __future__ import annotations

import copy
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

STAGES = ("quality", "training", "serving", "ablation", "hashing", "cold_start_users",
          "cold_start_items", "folding", "offline_topk", "serving_vs_corpus", "training_vs_size")

DEFAULTS: dict = {
    "run": {"seed": 0, "threads": 1, "k": [10, 20, 50, 100], "out": "reports", "report": True,
            "progress": None},
    "dataset": {"name": "synthetic", "data_dir": None, "protocol": "strong", "params": {},
                "min_rating": None, "min_user": 0, "min_item": 0, "split": {}},
    "tuning": {"trials": 4, "metric": "recall@20"},
    "models": {},
    "stages": {name: True for name in STAGES},
    "serving": {"queries": 1000, "warmup": 50, "batch_sizes": [1, 32, 256], "k": 10},
    # split_seeds: repeat the n_known = 0 new-user comparison on strong splits drawn with these
    # seeds for seed_models (default: models, else every model), refitted per split;
    # popularity and feature-popularity always included
    "cold_start": {"n_known_users": [0, 1, 2, 5, 10, 20], "n_known_items": [0, 1, 2, 5, 10],
                   "item_frac": 0.1, "k": 10, "models": [], "split_seeds": [], "seed_models": []},
    "ablation": {"base": None},
    # tables hashed into these shares of the item count (1.0 = exact); scopes: "inputs" (history
    # and user-feature tables) and/or "all" (the item side too)
    "hashing": {"base": None, "fractions": [1.0, 0.5, 0.1], "scopes": ["inputs", "all"]},
    "folding": {"probe": "auto", "k": 10, "w0": [0.0001, 0.001, 0.01, 0.1, 1.0],
                "variants": [], "dims": [], "dataset_params": {}},
    "sweeps": {"corpus_sizes": [1000, 10000, 100000], "dim": 64, "ann": "hnswlib",
               "ann_ef": 64, "queries": 300, "train_sizes": [100000, 300000, 1000000],
               "train_items": 10000, "train_dnn": "softmax-sampled-uniform",
               "time_budget_s": 120},
    "offline_topk": {"k": 100},
}

# What --quick shrinks (a smoke run under a minute; figures are not meaningful).
QUICK: dict = {
    "tuning": {"trials": 1},
    "serving": {"queries": 200, "warmup": 10, "batch_sizes": [1, 32]},
    "cold_start": {"n_known_users": [0, 1, 5], "n_known_items": [0, 1, 5]},
    "folding": {"w0": [0.001, 0.1], "dims": []},
    "hashing": {"fractions": [1.0, 0.25]},
    "sweeps": {"corpus_sizes": [1000, 10000], "queries": 50, "train_sizes": [20000, 60000],
               "train_items": 2000, "time_budget_s": 20},
}
QUICK_DATASET = {"synthetic": {"n_users": 1500, "n_items": 600, "n_groups": 10}}
QUICK_MODEL = {"wals": {"iterations": 4}, "softmax": {"epochs": 2, "patience": 1}}  # caps per kind


class ConfigError(ValueError):
    """A config file or override is unusable; the message names the file and key."""


def merge(base: dict, override: dict) -> dict:
    """Deep-merge ``override`` into a copy of ``base`` (dicts merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, val in override.items():
        if isinstance(val, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], val)
        else:
            out[key] = copy.deepcopy(val)
    return out


def resolve_path(name_or_path: str | None) -> Path:
    """``default`` or ``ml-100k`` -> bench/configs/<name>.toml; anything else is a path."""
    if name_or_path is None:
        return CONFIG_DIR / "default.toml"
    p = Path(name_or_path)
    if p.exists():
        return p
    named = CONFIG_DIR / f"{name_or_path.removesuffix('.toml')}.toml"
    if named.exists():
        return named
    raise ConfigError(f"config {name_or_path!r} not found (neither a file nor one of "
                      f"{', '.join(sorted(f.stem for f in CONFIG_DIR.glob('*.toml')))})")


def load_config(name_or_path: str | None = None) -> dict:
    """Read a TOML config over the defaults and check it."""
    path = resolve_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    cfg = merge(DEFAULTS, raw)
    cfg["run"]["config_file"] = str(path)
    validate(cfg, str(path))
    return cfg


def shrink(cfg: dict) -> dict:
    """The ``--quick`` smoke version of ``cfg``."""
    out = merge(cfg, QUICK)
    ds = out["dataset"]
    if ds["name"] in QUICK_DATASET:
        ds["params"] = merge(ds["params"], QUICK_DATASET[ds["name"]])
    for spec in out["models"].values():
        params = spec.setdefault("params", {})
        for key, cap in QUICK_MODEL.get(spec.get("kind"), {}).items():
            params[key] = min(params.get(key, cap), cap)
        spec["search"] = {}
    out["cold_start"]["split_seeds"] = list(out["cold_start"]["split_seeds"])[:2]
    out["run"]["quick"] = True
    return out


def validate(cfg: dict, where: str = "config") -> None:
    """Raise :class:`ConfigError` naming the key at fault."""
    for key in cfg:
        if key not in DEFAULTS:
            raise ConfigError(f"{where}: unknown section [{key}]; known: {', '.join(DEFAULTS)}")
    for key in cfg["stages"]:
        if key not in STAGES:
            raise ConfigError(f"{where}: unknown stage stages.{key}; known: {', '.join(STAGES)}")
    if not cfg["models"]:
        raise ConfigError(f"{where}: no [models.*] section")
    for name, spec in cfg["models"].items():
        if "kind" not in spec:
            raise ConfigError(f"{where}: models.{name} needs a 'kind' "
                              "(popularity, feature-popularity, wals, softmax)")
    if int(cfg["tuning"]["trials"]) < 1:
        raise ConfigError(f"{where}: tuning.trials must be >= 1")
    fracs = cfg["hashing"]["fractions"]
    if not fracs or any(not 0.0 < float(f) <= 1.0 for f in fracs):
        raise ConfigError(f"{where}: hashing.fractions must be shares of the item count in (0, 1], "
                          f"got {fracs!r}")
    seeds = cfg["cold_start"]["split_seeds"]
    if not isinstance(seeds, list) or any(isinstance(x, bool) or not isinstance(x, int) for x in seeds):
        raise ConfigError(f"{where}: cold_start.split_seeds must be a list of integer seeds, got {seeds!r}")
    if seeds and 0 not in cfg["cold_start"]["n_known_users"]:
        raise ConfigError(f"{where}: cold_start.split_seeds compares users with 0 revealed items; "
                          "cold_start.n_known_users must include 0")
    scopes = cfg["hashing"]["scopes"]
    if not scopes or any(sc not in ("inputs", "all") for sc in scopes):
        raise ConfigError(f"{where}: hashing.scopes must list 'inputs' and/or 'all', got {scopes!r}")
    ks = cfg["run"]["k"]
    if not ks or any(int(k) < 1 for k in ks):
        raise ConfigError(f"{where}: run.k must be a list of positive cut-offs")
