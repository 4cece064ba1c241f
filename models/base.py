"""`RecommenderBase`: the contract every model of the suite implements.

A model is fitted on a users x items training :class:`~mfsoftmax.datasets.Interactions` and then
scores batches of queries. A query is a user index (for features) plus the items the model may
know of that user (``history``); ``known`` says whether those users are rows of the training
matrix (MF can look them up) or new (MF must fold them in, the DNN runs its tower either way).
"""

from __future__ import annotations

import abc
import json
from pathlib import Path

import numpy as np

from mfsoftmax.ranking import Queries, mask_history, topk

__all__ = ["Queries", "RecommenderBase", "mask_history", "topk"]


class RecommenderBase(abc.ABC):
    """Base class: ``fit`` on training interactions, ``score`` batches of queries.

    Subclasses set ``name`` (stable identifier used in results) and ``family``
    (``"mf"``, ``"softmax"`` or ``"baseline"``).
    """

    name = "base"
    family = "baseline"

    # ---- what the suite needs to know of a model (read by the runner, config and reports;
    # nothing there branches on a model's kind or name)
    #: The serving path of a known user's request and of a new user's (None: a new user takes
    #: the known user's path, so it is not measured apart).
    serving_modes: tuple = ("lookup", None)
    #: The model's reference row in the query-features ablation: (uses history, uses user
    #: features, what it sees); None leaves it out.
    ablation_inputs: tuple | None = None
    #: The parameters that switch history and user features off, for a model the ablation
    #: refits without each (None: not ablated itself).
    ablation_switches: tuple | None = None
    #: Parameters that make ``fit`` one pass over the data (an iteration, an epoch), for timing.
    one_pass: dict = {}
    #: Caps of the ``--quick`` smoke run, e.g. ``{"epochs": 2}``.
    quick_caps: dict = {}
    #: Parameters a refit needs to embed items unseen in training (the new-items stage).
    new_item_params: dict = {}
    #: What the folding stage sweeps: "w0" (w0 at each dim), "dim", "reference" (measured
    #: once, a non-personalised level), or None (not measured).
    folding_sweep: str | None = None

    def embedding_role(self) -> str | None:
        """What this model's query/item embeddings illustrate in the folding picture: ``"mf"``,
        ``"no-negatives"`` (a softmax trained on positives only), ``"negatives"``; None when it
        has no embeddings to draw."""
        return None

    n_users: int = 0
    n_items: int = 0

    @abc.abstractmethod
    def fit(self, train, valid=None, callback=None) -> RecommenderBase:
        """Fit on ``train`` (Interactions, users x items).

        ``valid`` (EvalSet) may be used for early stopping. ``callback(iteration, model)`` is
        called after each iteration/epoch; a truthy return value stops training.
        """

    @abc.abstractmethod
    def score(self, queries: Queries) -> np.ndarray:
        """Scores of every item for each query: float32 array (len(queries) x n_items)."""

    def _check_scores(self, scores: np.ndarray, queries: Queries) -> np.ndarray:
        assert scores.shape == (len(queries), self.n_items), (
            f"{self.name}: scores shape {scores.shape}, expected ({len(queries)}, {self.n_items})"
        )
        return scores

    def recommend(self, queries: Queries, k: int = 10, exclude_history: bool = True,
                  candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item ids and scores for each query (batch-first), best first."""
        if queries.history.shape[1] != self.n_items:
            raise ValueError(f"queries have {queries.history.shape[1]} items, model has {self.n_items}")
        scores = np.array(self.score(queries), dtype=np.float32, copy=True)
        if exclude_history:
            mask_history(scores, queries.history)
        if candidates is not None:
            keep = np.zeros(self.n_items, dtype=bool)
            keep[candidates] = True
            scores[:, ~keep] = -np.inf
        return topk(scores, k)

    def get_params(self) -> dict:
        """Hyper-parameters, JSON-serialisable."""
        return {}

    # --------------------------------------------------------------- persistence
    def save(self, path) -> None:
        """Save to ``path`` (a folder): ``params.json`` plus model-specific arrays."""
        raise NotImplementedError(f"{self.name} does not support save()")

    @classmethod
    def load(cls, path) -> RecommenderBase:
        raise NotImplementedError(f"{cls.__name__} does not support load()")

    @staticmethod
    def _write_params(path, params: dict) -> None:
        from mfsoftmax.runtime import atomic_write_json

        Path(path).mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(path) / "params.json", params)

    @staticmethod
    def _read_params(path) -> dict:
        return json.loads((Path(path) / "params.json").read_text())
