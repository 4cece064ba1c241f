"""The suite's stages, one module each, in run order: the one registry.

Each module has ``run(ctx: RunContext) -> Section``; ``NEEDS`` (optional) names the side
information it cannot run without (``"user_features"`` / ``"item_features"``, or
``"features"``: either), and the runner skips it, with that reason, on a dataset that lacks it.
``USES`` (optional) names what it needs from earlier stages, ``{RunContext attribute: the stage
that fills it}``; the stage checks it with :func:`require` first. ``DEFAULTS`` (optional) holds
its config sections with every key's default, ``{section: {key: value}}``, and ``QUICK`` what
``--quick`` shrinks there; bench/config.py assembles them (:func:`declared`). Two stages may
share a section (``cold_start``, ``sweeps``); a key both declare has one default. A
``check_config(cfg, where)`` (optional) checks its sections beyond their types. ``training`` is
not a module: training cost is measured by the quality stage.
"""

from __future__ import annotations

import copy
import importlib

# name -> module (in run order)
REGISTRY = {
    "quality": "quality",  # includes tuning and training cost
    "serving": "serving",
    "ablation": "ablation",
    "hashing": "hashing",
    "cold_start_users": "cold_users",
    "cold_start_items": "cold_items",
    "folding": "folding",
    "offline_topk": "offline_topk",
    "serving_vs_corpus": "serving_vs_corpus",
    "training_vs_size": "training_vs_size",
    "strata": "strata",  # quality by user history length and item popularity (needs quality)
}
#: Every stage name a config's [stages] may switch (``training`` is measured by ``quality``).
STAGE_NAMES = ("quality", "training", *[n for n in REGISTRY if n != "quality"])


def load(name: str):
    """The module of stage ``name``."""
    return importlib.import_module(f"{__name__}.{REGISTRY[name]}")


def declared(attr: str) -> dict:
    """The config sections the stages declare as ``attr`` (``"DEFAULTS"`` or ``"QUICK"``),
    merged in run order. A key two stages both declare must have the same value in both."""
    out: dict = {}
    owner: dict = {}
    for name in REGISTRY:
        for section, keys in getattr(load(name), attr, {}).items():
            into = out.setdefault(section, {})
            for key, val in keys.items():
                if key in into and into[key] != val:
                    raise ValueError(f"stages: {name} declares {attr} {section}.{key} = {val!r}, "
                                     f"{owner[section, key]} {into[key]!r}: one default per key")
                into[key] = copy.deepcopy(val)
                owner.setdefault((section, key), name)
    return out


def require(ctx, stage: str, uses: dict) -> None:
    """Raise MissingInput (bench/context.py), naming what is missing and where it comes from,
    when an earlier stage left a RunContext attribute of ``uses`` ({attribute: the stage that
    fills it}) empty. The runner records the stage as failed, or as skipped when that earlier
    stage was stopped by its time budget."""
    empty = [(attr, src) for attr, src in uses.items() if not getattr(ctx, attr, None)]
    if empty:
        from ..context import MissingInput  # lazy: context imports the models (torch), off --help

        what = ", ".join(f"ctx.{attr} (from the {src} stage)" for attr, src in empty)
        sources = sorted({src for _, src in empty})
        raise MissingInput(f"stage {stage} needs {what}, and this run has none: enable "
                           f"{', '.join(f'stages.{s}' for s in sources)} (it runs first) and "
                           "check that it fitted at least one model")
