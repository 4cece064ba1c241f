"""Suite configuration: TOML files in ``bench/configs/``, defaults, ``--quick`` and overrides.

A config is a nested dict. Every key has a default (``DEFAULTS``: :data:`CORE` here, and each
stage's own sections declared by its module, ``DEFAULTS`` / ``QUICK`` beside ``USES``); a file
overrides what it names; command-line flags override the file; the resolved config is stored in
results.json.
"""

from __future__ import annotations

import copy
import difflib
import functools
import inspect
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

from . import stages
from .stages import STAGE_NAMES as STAGES  # the one list of stages (bench/stages/__init__.py)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

#: the sections no stage owns; each stage's own sections and their defaults are declared by its
#: module (``DEFAULTS`` and ``QUICK`` in bench/stages/<stage>.py) and assembled by :func:`defaults`
CORE: dict = {
    "run": {"seed": 0, "threads": 1, "k": [10, 20, 50, 100], "out": "runs", "report": True,
            "progress": None},
    # binarize: every kept interaction becomes 1.0 (false keeps the values, e.g. play counts,
    # for models that weight them: WALS weight = "linear" | "log")
    # max_items / max_users / max_interactions: keep only the most popular items, then a seeded
    # random sample of users holding at most that many users and interactions (None: all;
    # --quick caps real data to QUICK_CAPS)
    "dataset": {"name": "synthetic", "data_dir": None, "protocol": "strong", "params": {},
                "min_rating": None, "min_user": 0, "min_item": 0, "binarize": True, "split": {},
                "max_items": None, "max_users": None, "max_interactions": None},
    "models": {},
    "stages": {name: True for name in STAGES},
    # per-stage time budgets in seconds: budgets.<stage>_s (e.g. quality_s) and budgets.total_s
    # (the whole run, loading included). A stage with no budget left is skipped; one that runs
    # past its budget is stopped; either is recorded as skipped with the reason (stages.<name>.
    # budget_s, .reason). Unset = unlimited.
    "budgets": {},
    # for WALS models with params.engine = "spark": the Spark master URL ("local[*]",
    # "local-cluster[2,1,1024]", "spark://host:7077") and Spark settings (a table of
    # "spark.*" = value) over the offline-safe defaults of models/wals/spark_session.py
    "spark": {"master": "local[*]", "conf": {}},
    # engines of every MF / softmax model the suite builds (a model's own params override):
    # mf = "implicit" | "spark" (WALS's engine), dnn_workers = data-parallel ranks of SoftmaxDNN
    "engines": {"mf": "implicit", "dnn_workers": 1},
}


@functools.cache
def defaults() -> dict:
    """Every key's default: :data:`CORE` and the sections the stages declare (``DEFAULTS`` of
    each stage module, in run order). Built on first use: the stage modules import numpy and
    the models, which ``mfsoftmax --help`` does not load. ``config.DEFAULTS`` is this dict."""
    return {**copy.deepcopy(CORE), **stages.declared("DEFAULTS")}


@functools.cache
def quick() -> dict:
    """What ``--quick`` shrinks (a smoke run; figures are not meaningful): the stages' ``QUICK``
    caps. ``config.QUICK`` is this dict."""
    return stages.declared("QUICK")


def __getattr__(name: str):
    """``DEFAULTS`` and ``QUICK``, assembled from the stages on first use."""
    if name == "DEFAULTS":
        return defaults()
    if name == "QUICK":
        return quick()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# the smaller synthetic dataset of --quick (the default run uses the generator's defaults)
QUICK_DATASET = {"synthetic": {"n_users": 1500, "n_items": 900, "n_groups": 12}}
# --quick on any other dataset: at most this many items, users and interactions (the quick
# synthetic data's size), so a smoke run costs about the same at any catalogue size (the folding
# stage's twin probe doubles them)
QUICK_CAPS = {"max_items": 1000, "max_users": 1500, "max_interactions": 30000}


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
    if path.is_dir():
        raise ConfigError(f"config {path}: is a folder, not a TOML file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config {path}: not UTF-8 text (byte {exc.start}); a TOML file is "
                          "UTF-8") from exc
    except OSError as exc:
        raise ConfigError(f"config {path}: cannot read: {exc.strerror or exc}") from exc
    if "\x00" in text:
        raise ConfigError(f"config {path}: a binary file, not TOML")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    cfg = merge(defaults(), raw)
    cfg["run"]["config_file"] = str(path)
    validate(cfg, str(path))
    return cfg


def shrink(cfg: dict) -> dict:
    """The ``--quick`` smoke version of ``cfg``."""
    out = merge(cfg, quick())
    ds = out["dataset"]
    if ds["name"] in QUICK_DATASET:
        ds["params"] = merge(ds["params"], QUICK_DATASET[ds["name"]])
    else:
        for key, cap in QUICK_CAPS.items():
            ds[key] = cap if ds[key] is None else min(int(ds[key]), cap)
    from mfsoftmax.models import MODELS  # lazy: torch+implicit (~2 s), off --help

    for spec in out["models"].values():
        params = spec.setdefault("params", {})
        cls = MODELS.get(spec.get("kind"))
        caps = cls.suite.quick_caps if cls is not None else {}  # declared by the class
        for key, cap in caps.items():
            params[key] = min(params.get(key, cap), cap)
        spec["search"] = {}
    out["cold_start"]["split_seeds"] = list(out["cold_start"]["split_seeds"])[:2]
    out["run"]["quick"] = True
    return out


# Sections whose keys are not fixed here: checked against the model class, the dataset loader
# or the split protocol instead. Keys the suite itself adds to a resolved config: INTERNAL.
OPEN = {("models",), ("dataset", "params"), ("dataset", "split"), ("folding", "dataset_params"),
        ("spark", "conf"), ("budgets",), ("sweeps", "train_params")}
INTERNAL = {("run", "config_file"), ("run", "quick")}
MODEL_KEYS = ("kind", "params", "search")


def _suggest(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_keys(node: dict, ref: dict, where: str, path: tuple = ()) -> None:
    """Refuse any key of ``node`` that ``ref`` (the defaults) does not have, at any depth."""
    for key, val in node.items():
        here = (*path, key)
        dotted = ".".join(here)
        if here in INTERNAL:
            continue
        if key not in ref:
            what = "section" if not path else "key"
            raise ConfigError(f"{where}: unknown {what} {dotted}{_suggest(key, ref)}; known: "
                              f"{', '.join(k for k in ref if (*path, k) not in INTERNAL)}")
        if isinstance(ref[key], bool) and not isinstance(val, bool):
            raise ConfigError(f"{where}: {dotted} must be true or false (a TOML boolean), got "
                              f"{val!r}")
        if here in OPEN:
            if not isinstance(val, dict):
                raise ConfigError(f"{where}: {dotted} must be a table, got {val!r}")
            continue
        if isinstance(ref[key], dict):
            if not isinstance(val, dict):
                raise ConfigError(f"{where}: {dotted} must be a table, got {val!r}")
            check_keys(val, ref[key], where, here)


def _int_at_least(cfg: dict, dotted: str, low: int, where: str) -> None:
    section, key = dotted.split(".")
    val = cfg[section][key]
    if isinstance(val, bool) or not isinstance(val, int) or val < low:
        raise ConfigError(f"{where}: {dotted} must be an integer >= {low}, got {val!r}")


def check_model(name: str, spec: dict, where: str) -> None:
    """The model's kind exists, and its params and search space name only parameters its class
    takes, with values it accepts (the class is built once here, nothing is fitted)."""
    from mfsoftmax.models import MODELS  # lazy: torch+implicit (~2 s), off --help
    from mfsoftmax.models.params import ParamError  # lazy: torch, as MODELS

    at = f"{where}: models.{name}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{at} must be a table with kind, params, search")
    for key in spec:
        if key not in MODEL_KEYS:
            raise ConfigError(f"{at}.{key}: unknown key{_suggest(key, MODEL_KEYS)}; a model "
                              f"takes {', '.join(MODEL_KEYS)}")
    kind = spec.get("kind")
    if kind is None:
        raise ConfigError(f"{at} needs a 'kind' ({', '.join(sorted(MODELS))})")
    if kind not in MODELS:
        raise ConfigError(f"{at}.kind: unknown kind {kind!r}{_suggest(str(kind), MODELS)}; "
                          f"known: {', '.join(sorted(MODELS))}")
    cls = MODELS[kind]
    sig = inspect.signature(cls.__init__).parameters
    open_kwargs = any(p.kind == p.VAR_KEYWORD for p in sig.values())
    accepted = [k for k in sig if k not in ("self", "name", "seed", "threads", "progress")]
    params, space = spec.get("params", {}), spec.get("search", {})
    for section, keys in (("params", params), ("search", space)):
        if not isinstance(keys, dict):
            raise ConfigError(f"{at}.{section} must be a table, got {keys!r}")
        for key in keys:
            if key not in accepted and not open_kwargs:
                raise ConfigError(f"{at}.{section}.{key}: {cls.__name__} has no parameter "
                                  f"{key!r}{_suggest(key, accepted)}; it takes: {', '.join(accepted)}")
    candidates = [({}, "params")]
    for key, dist in space.items():  # each end of each searched range is a value to accept
        values = dist if isinstance(dist, list) else next(iter(dist.values()), []) \
            if isinstance(dist, dict) and len(dist) == 1 else None
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{at}.search.{key}: expected a list of choices or "
                              "{log|uniform|int = [lo, hi]}")
        if isinstance(dist, dict) and "int" not in dist and _integer(cls, key):
            raise ConfigError(f"{at}.search.{key}: {key} is an integer: search it with "
                              f"int = [lo, hi] or a list (a {next(iter(dist))} range draws fractions)")
        candidates += [({key: v}, f"search.{key}") for v in values]
    for extra, label in candidates:
        kwargs = {**params, **extra}
        for key, val in kwargs.items():  # undeclared parameters (a plugin's): numbers stay numbers
            if key in getattr(cls, "PARAMS", {}):
                continue  # declared (models/params.py): the class says the type and range itself
            default = sig[key].default if key in sig else inspect.Parameter.empty
            if (isinstance(default, (int, float)) and not isinstance(default, bool)
                    and (isinstance(val, (bool, str)) or not isinstance(val, (int, float)))):
                raise ConfigError(f"{at}.{label if extra else 'params.' + key}: {key} must be a "
                                  f"number, got {val!r}")
            if isinstance(default, bool) and not isinstance(val, bool):
                raise ConfigError(f"{at}.{label if extra else 'params.' + key}: {key} must be "
                                  f"true or false, got {val!r}")
        try:
            cls(**kwargs)
        except ParamError as exc:  # names the parameter: the key is that parameter's
            key = label if extra else f"params.{exc.param}"
            why = (f"{exc.param} must be {exc.expected.removeprefix('expected ')}"
                   if exc.expected.startswith("expected ") else exc.expected)
            raise ConfigError(f"{at}.{key}: {why}, got {exc.param}={exc.value!r}") from None
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{at}.{label}: {exc}") from None


def _integer(cls, key: str) -> bool:
    """Whether model class ``cls`` declares ``key`` an integer (models/params.py)."""
    from mfsoftmax.models.params import Whole  # lazy: torch, as check_model

    return isinstance(getattr(cls, "PARAMS", {}).get(key), Whole)


def check_split(cfg: dict, where: str) -> None:
    """``dataset.split`` names only options of ``dataset.protocol``."""
    from mfsoftmax.datasets import PROTOCOLS, protocol_options  # lazy: numpy+scipy, off --help

    ds = cfg["dataset"]
    protocol = ds["protocol"]
    if protocol not in PROTOCOLS:
        raise ConfigError(f"{where}: dataset.protocol: unknown {protocol!r}; choose one of "
                          f"{', '.join(PROTOCOLS)}")
    accepted = protocol_options(protocol)
    for key in ds["split"]:
        if key not in accepted:
            raise ConfigError(f"{where}: dataset.split.{key}: not an option of the {protocol} "
                              f"protocol{_suggest(key, accepted)}; it takes: {', '.join(accepted)}")


def check_dataset_params(cfg: dict, where: str) -> None:
    """Each ``dataset.params`` value has the type of the builder's default for it (the registry's
    rule, :func:`~mfsoftmax.datasets.registry.param_type_problem`): ``--param n_users=abc`` is
    refused here, naming the key, before any data loads. Unknown keys and ranges are the
    registry's and the builder's to refuse."""
    from mfsoftmax.datasets import REGISTRY  # lazy: numpy+scipy, off --help
    from mfsoftmax.datasets.registry import param_type_problem  # lazy: as REGISTRY

    ds = cfg["dataset"]
    loader = REGISTRY.get(ds["name"])
    if loader is None:  # a composite spec (twin(A)) or an unknown name: the registry says
        return
    for key, val in ds["params"].items():
        want = param_type_problem(loader.builder, key, val)
        if want:
            raise ConfigError(f"{where}: dataset.params.{key} must be {want}, got {key}={val}")


def split_for_protocol(split: dict, protocol: str) -> tuple[dict, list]:
    """The options of ``split`` that ``protocol`` takes, and the names of those it does not (a
    config's ``heldout_frac`` means nothing to ``--protocol holdout``)."""
    from mfsoftmax.datasets import PROTOCOLS, protocol_options  # lazy: numpy+scipy, off --help

    if protocol not in PROTOCOLS:
        raise ConfigError(f"--protocol: unknown {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    accepted = protocol_options(protocol)
    return ({k: v for k, v in split.items() if k in accepted},
            [k for k in split if k not in accepted])


def validate(cfg: dict, where: str = "config") -> None:
    """Raise :class:`ConfigError` naming the key at fault."""
    check_keys(cfg, defaults(), where)
    for key in cfg["stages"]:
        if key not in STAGES:
            raise ConfigError(f"{where}: unknown stage stages.{key}; known: {', '.join(STAGES)}")
    if not isinstance(cfg["run"]["progress"], (bool, type(None))):
        raise ConfigError(f"{where}: run.progress must be true or false (or left unset), got "
                          f"{cfg['run']['progress']!r}")
    if not cfg["models"]:
        raise ConfigError(f"{where}: no [models.*] section")
    for name, spec in cfg["models"].items():
        check_model(name, spec, where)
    check_split(cfg, where)
    check_dataset_params(cfg, where)
    for dotted, low in (("run.threads", 1), ("run.seed", 0), ("tuning.trials", 1), ("quality.seeds", 1),
                        ("serving.queries", 1), ("serving.warmup", 0), ("serving.k", 1),
                        ("serving.score_rerank", 1)):
        _int_at_least(cfg, dotted, low, where)
    from .score_precision import PRECISIONS  # lazy: off --help, as the models

    precs = cfg["serving"]["score_precision"]
    if not isinstance(precs, list) or any(p not in PRECISIONS for p in precs):
        raise ConfigError(f"{where}: serving.score_precision must list some of "
                          f"{', '.join(PRECISIONS)}, got {precs!r}")
    from .tuning import SAMPLERS  # cycle: tuning imports this module (ConfigError)

    sampler = cfg["tuning"]["sampler"]
    if sampler not in SAMPLERS:
        raise ConfigError(f"{where}: tuning.sampler must be one of {', '.join(SAMPLERS)}, "
                          f"got {sampler!r}{_suggest(str(sampler), SAMPLERS)}")
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
    _check_sweeps(cfg, where)
    _check_engines(cfg, where)
    for key, val in cfg["budgets"].items():
        stage = key.removesuffix("_s")
        if not key.endswith("_s") or (stage != "total" and stage not in STAGES):
            raise ConfigError(f"{where}: budgets.{key}: expected total_s or <stage>_s, one of "
                              f"{', '.join(f'{s}_s' for s in STAGES)}")
        if isinstance(val, bool) or not isinstance(val, (int, float)) or val < 0:
            raise ConfigError(f"{where}: budgets.{key} must be seconds >= 0, got {val!r}")
    for key in QUICK_CAPS:
        val = cfg["dataset"][key]
        if val is not None and (isinstance(val, bool) or not isinstance(val, int) or val < 1):
            raise ConfigError(f"{where}: dataset.{key} must be an integer >= 1 (or unset), got "
                              f"{val!r}")
    ks = cfg["run"]["k"]
    if not ks or any(int(k) < 1 for k in ks):
        raise ConfigError(f"{where}: run.k must be a list of positive cut-offs")
    for name in stages.REGISTRY:  # a stage's checks of its own sections (strata's)
        check = getattr(stages.load(name), "check_config", None)
        if check is not None:
            check(cfg, where)


def _check_sweeps(cfg: dict, where: str) -> None:
    """``sweeps.train_models`` / ``train_params`` name configured models, with params they take."""
    sw = cfg["sweeps"]
    for key in ("train_models", "train_params"):
        names = list(sw[key])
        if key == "train_models" and (not isinstance(sw[key], list)
                                      or not all(isinstance(n, str) for n in names)):
            raise ConfigError(f"{where}: sweeps.train_models must be a list of model names")
        unknown = [n for n in names if n not in cfg["models"]]
        if unknown:
            raise ConfigError(f"{where}: sweeps.{key} names {', '.join(map(repr, unknown))}, not "
                              f"in [models] ({', '.join(cfg['models']) or 'none'})")
    for name, params in sw["train_params"].items():
        if not isinstance(params, dict):
            raise ConfigError(f"{where}: sweeps.train_params.{name} must be a table of params")
        check_model(name, {**cfg["models"][name],
                           "params": {**cfg["models"][name].get("params", {}), **params}},
                    f"{where} (sweeps.train_params)")


def _check_engines(cfg: dict, where: str) -> None:
    """``engines`` and the ``[spark]`` master and conf (checked before any JVM starts)."""
    eng = cfg["engines"]
    if eng["mf"] not in ("implicit", "spark"):
        raise ConfigError(f"{where}: engines.mf must be 'implicit' or 'spark', got {eng['mf']!r}")
    _int_at_least(cfg, "engines.dnn_workers", 1, where)
    from mfsoftmax.models.params import ParamError  # lazy: torch, as check_model
    from mfsoftmax.models.wals.spark_settings import check_settings  # lazy: the models' own check

    try:  # before any JVM: the WALS models on Spark get these (bench/context.py spark_defaults)
        check_settings(cfg["spark"]["master"], cfg["spark"]["conf"])
    except ParamError as exc:
        key = "spark.master" if exc.param == "spark_master" else "spark.conf"
        raise ConfigError(f"{where}: {key}: {exc.expected}, got {exc.value!r}") from None
