"""The softmax DNN recommender (``SoftmaxDNN``)."""

from __future__ import annotations

from .model import SoftmaxDNN

__all__ = ["SoftmaxDNN"]
