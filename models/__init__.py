"""Models: the shared base class and each recommender, one module per algorithm."""

from .base import Queries, RecommenderBase, mask_history, topk
from .feature_popularity import FeaturePopularity
from .popularity import Popularity
from .softmax_dnn import SoftmaxDNN
from .wals import WALS

MODELS = {"popularity": Popularity, "feature-popularity": FeaturePopularity, "wals": WALS,
          "softmax": SoftmaxDNN}


def register_model(name: str, cls) -> None:
    """Make ``cls`` available to the suite under ``name``."""
    MODELS[name] = cls


__all__ = ["MODELS", "FeaturePopularity", "Popularity", "Queries", "RecommenderBase", "mask_history", "register_model", "topk", "SoftmaxDNN", "WALS"]
