"""Datasets: the `Interactions` container, the loader registry, preprocessing and splits."""

from . import synthetic as _synthetic
from .core import DatasetError, Interactions, check_users_items, feature_cardinality, from_coo
from .registry import REGISTRY, Loader, load, register
from .splits import PROTOCOLS, EvalSet, Split, make_split, protocol_options
from .union import disjoint_union, twin

register(
    "synthetic",
    "Seeded planted-groups generator (embedded default, no download)",
)(_synthetic.synthetic)
register(
    "synthetic-20m",
    "The planted-groups generator at MovieLens-20M's shape: 138,493 users x 26,744 items, ~20M "
    "interactions (no download)",
)(_synthetic.synthetic_20m)

# Loaders that register themselves on import.
from . import files as _files  # noqa: E402,F401
from . import movielens as _movielens  # noqa: E402,F401

__all__ = [
    "DatasetError", "Interactions", "check_users_items", "feature_cardinality", "from_coo",
    "REGISTRY", "Loader", "load", "register", "PROTOCOLS", "EvalSet", "Split", "make_split", "protocol_options",
    "disjoint_union", "twin",
]
