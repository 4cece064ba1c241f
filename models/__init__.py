"""Models: the shared base class and each recommender, one module per algorithm.

``MODELS`` maps a config's ``kind`` to its class. Third-party models join it without a fork:
a distribution declares an entry point in the group ``mfsoftmax.models``
(``pure-svd = "mypkg.svd:PureSVD"`` under ``[project.entry-points."mfsoftmax.models"]``), and the
class, a :class:`RecommenderBase` subclass, is registered under the entry point's name when this
package is imported (docs/models.md, "Adding a model").
"""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points as _installed

from mfsoftmax.results.vocabulary import FAMILIES

from .base import Queries, RecommenderBase, SuiteSpec, mask_history, topk
from .feature_popularity import FeaturePopularity
from .popularity import Popularity
from .softmax import SoftmaxDNN
from .wals import WALS

ENTRY_POINT_GROUP = "mfsoftmax.models"

MODELS = {"popularity": Popularity, "feature-popularity": FeaturePopularity, "wals": WALS,
          "softmax": SoftmaxDNN}


def register_model(name: str, cls) -> None:
    """Make ``cls`` available to the suite as ``kind = name``.

    Raises
    ------
    TypeError
        ``cls`` is not a :class:`RecommenderBase` subclass, or its ``family`` is not one of
        ``mf``, ``softmax``, ``baseline``.
    """
    if not (isinstance(cls, type) and issubclass(cls, RecommenderBase)):
        raise TypeError(f"model {name!r}: {cls!r} is not a RecommenderBase subclass")
    if cls.family not in FAMILIES:
        raise TypeError(f"model {name!r}: family {cls.family!r} is not one of {', '.join(FAMILIES)}")
    MODELS[name] = cls


def load_plugins(entry_points=None) -> list[str]:
    """Register the models of every installed ``mfsoftmax.models`` entry point; returns their
    names. A plugin that fails to load is reported as a warning and left out (it never breaks
    the built-in models). Built-in kinds cannot be replaced."""
    eps = _installed(group=ENTRY_POINT_GROUP) if entry_points is None else entry_points
    names = []
    for ep in eps:
        if ep.name in BUILTIN:
            warnings.warn(f"model plugin {ep.name!r} ({ep.value}) ignored: a built-in kind has "
                          "that name", stacklevel=2)
            continue
        try:
            register_model(ep.name, ep.load())
        except Exception as exc:  # a broken plugin must not take the suite down
            warnings.warn(f"model plugin {ep.name!r} ({ep.value}) not loaded: "
                          f"{type(exc).__name__}: {exc}", stacklevel=2)
            continue
        names.append(ep.name)
    return names


BUILTIN = frozenset(MODELS)
load_plugins()

__all__ = ["ENTRY_POINT_GROUP", "MODELS", "FeaturePopularity", "Popularity", "Queries",
           "RecommenderBase", "SoftmaxDNN", "SuiteSpec", "WALS", "load_plugins", "mask_history",
           "register_model", "topk"]
