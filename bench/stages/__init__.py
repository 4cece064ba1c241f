"""The suite's stages, one module each, in run order: the one registry.

Each module has ``run(ctx: RunContext) -> Section``; ``NEEDS`` (optional) names the side
information it cannot run without (``"user_features"`` / ``"item_features"``, or
``"features"``: either), and the runner skips it, with that reason, on a dataset that lacks it.
``USES`` (optional) names what it needs from earlier stages, ``{RunContext attribute: the stage
that fills it}``; the stage checks it with :func:`require` first. ``training`` is not a module:
training cost is measured by the quality stage.
"""

from __future__ import annotations

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


def require(ctx, stage: str, uses: dict) -> None:
    """Raise RuntimeError, naming what is missing and where it comes from, when an earlier stage
    left a RunContext attribute of ``uses`` ({attribute: the stage that fills it}) empty."""
    empty = [(attr, src) for attr, src in uses.items() if not getattr(ctx, attr, None)]
    if empty:
        what = ", ".join(f"ctx.{attr} (from the {src} stage)" for attr, src in empty)
        sources = sorted({src for _, src in empty})
        raise RuntimeError(f"stage {stage} needs {what}, and this run has none: enable "
                           f"{', '.join(f'stages.{s}' for s in sources)} (it runs first) and "
                           "check that it fitted at least one model")
