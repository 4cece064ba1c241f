"""`RecommenderBase`: the contract every model of the suite implements.

A model is fitted on a users x items training :class:`~mfsoftmax.datasets.Interactions` and then
scores batches of queries. A query is a user index (for features) plus the items the model may
know of that user (``history``); ``known`` says whether those users are rows of the training
matrix (MF can look them up) or new (MF must fold them in, the DNN runs its tower either way).
"""

from __future__ import annotations

import abc
import difflib
import inspect
import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from mfsoftmax.ranking import Queries, mask_history, topk
from mfsoftmax.runtime import atomic_write_json

from .params import ParamError, check_memory, check_params
from .suite_spec import HOOKS, SuiteSpec

__all__ = ["Queries", "RecommenderBase", "SuiteSpec", "mask_history", "topk", "topk_one"]


def _copy(value):
    """``value``, with a dict or list copied (a parameter read out must not alias the model)."""
    return dict(value) if isinstance(value, dict) else list(value) if isinstance(value, list) else value


def topk_one(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of one score vector, best first, with :func:`topk`'s order (scores
    descending, equal scores by ascending id): ``argpartition`` of the ``k`` best, the tie at
    the boundary resolved to the lowest ids, then a sort of those ``k``."""
    n = scores.shape[0]
    k = max(0, min(int(k), n))
    if k == 0:
        return np.zeros(0, np.int64), np.zeros(0, scores.dtype)
    if k < n:
        idx = np.argpartition(scores, n - k)[n - k:]
        kth = scores[idx].min()
        if np.isnan(kth):
            raise ValueError("topk_one: scores contain NaN")
        n_tied = np.count_nonzero(scores == kth)
        if n_tied > np.count_nonzero(scores[idx] == kth):  # ties cross the boundary
            above = np.flatnonzero(scores > kth)
            tied = np.flatnonzero(scores == kth)[:k - len(above)]
            idx = np.concatenate([above, tied])
    else:
        idx = np.arange(n)
    vals = scores[idx]
    order = np.lexsort((idx, -vals))
    return idx[order].astype(np.int64, copy=False), vals[order]


class RecommenderBase(abc.ABC):
    """Base class: ``fit`` on training interactions, ``score`` batches of queries.

    Subclasses set ``name`` (stable identifier used in results) and ``family``
    (``"mf"``, ``"softmax"`` or ``"baseline"``).
    """

    name = "base"
    family = "baseline"

    #: What the suite needs to know of the class (serving paths, ablation, timing, quick caps,
    #: new items, folding, memory): one :class:`SuiteSpec`, read by the runner, the config and
    #: the stages; nothing there branches on a model's kind or name.
    suite: SuiteSpec = SuiteSpec()
    #: The constructor's parameters: name -> :class:`~mfsoftmax.models.params.Param` (type and
    #: valid range), checked by :meth:`checked_params` for every path that builds a model.
    PARAMS: dict = {}

    def __init_subclass__(cls, **kwargs):
        """Refuse a class that declares :class:`SuiteSpec`'s fields as attributes of its own
        (the pre-``SuiteSpec`` way, which the suite no longer reads) or a ``suite`` that is
        not a :class:`SuiteSpec`: TypeError naming the attributes."""
        super().__init_subclass__(**kwargs)
        loose = [h for h in HOOKS if h in vars(cls)]
        if loose:
            raise TypeError(f"{cls.__name__}: declare {', '.join(loose)} in one class attribute "
                            f"suite = SuiteSpec({loose[0]}=...), not as attributes of the class "
                            f"(docs/models.md, 'Adding a model')")
        if not isinstance(cls.suite, SuiteSpec):
            raise TypeError(f"{cls.__name__}: suite must be a SuiteSpec, got {cls.suite!r}")

    @classmethod
    def checked_params(cls, values: dict) -> dict:
        """The declared :attr:`PARAMS` among ``values`` (e.g. a constructor's ``locals()``),
        checked and converted; raises :class:`ParamError` naming the parameter and its range."""
        return check_params(cls.__name__, cls.PARAMS, values)

    @classmethod
    def check_names(cls, params: dict) -> None:
        """Raise :class:`ParamError` for a key of ``params`` the constructor does not take."""
        sig = inspect.signature(cls.__init__).parameters
        if any(p.kind == p.VAR_KEYWORD for p in sig.values()):
            return
        accepted = [k for k in sig if k != "self"]
        for key, val in params.items():
            if key not in accepted:
                close = difflib.get_close_matches(key, accepted, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ParamError(cls.__name__, key, val, f"{cls.__name__} has no parameter "
                                 f"{key!r}{hint}; it takes: {', '.join(accepted)}",
                                 what="unknown parameter")

    def memory_parts(self, n_users: int, n_items: int, nnz: int) -> dict:
        """Estimated bytes of the arrays a fit on ``n_users x n_items`` with ``nnz``
        interactions allocates, by part (empty: not estimated)."""
        return {}

    def check_memory(self, train, available: float | None = None) -> float:
        """Refuse (:class:`ParamError`, naming the spec's ``memory_params``) a fit on ``train``
        whose :meth:`memory_parts` exceed the memory available; returns the estimate in bytes."""
        m, n = train.matrix.shape
        parts = self.memory_parts(int(m), int(n), int(train.matrix.nnz))
        params = {p: getattr(self, p) for p in self.suite.memory_names(self)}
        if not parts or not params:
            return float(sum(parts.values()))
        return check_memory(type(self).__name__, parts, params, available)

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

    def recommend_one(self, user: int, history_items=(), k: int = 10,
                      known: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item ids and scores of one request, best first (1-d arrays): the lean
        single-query serving path. ``history_items`` are the user's item ids (excluded).

        Same items, in the same order, as ``recommend`` of the one-row query (scores descending,
        equal scores by ascending id), without building a CSR batch or the batch top-k: for a
        model with ``query_embeddings``/``item_embeddings``, embed (a row of ``U`` for a known
        MF user), ``V @ q`` (+ ``item_biases``), history to -inf by index, ``argpartition``
        and a sort of the ``k``. Other models fall back to ``recommend``."""
        hist = np.asarray(history_items, dtype=np.int64).reshape(-1)
        if not (hasattr(self, "query_embeddings") and hasattr(self, "item_embeddings")):
            return self._recommend_one_generic(user, hist, k, known)
        if not known and not hist.size:  # a model's own cold-user rule lives in score()
            return self._recommend_one_generic(user, hist, k, known)
        U = getattr(self, "U", None)
        if known and isinstance(U, np.ndarray) and not hasattr(self, "item_biases"):
            q = U[int(user)]  # a known MF user: a row lookup
        else:
            q = self.query_embeddings(self._one_query(user, hist, known))[0]
        V = self.item_embeddings()
        scores = V @ q
        if hasattr(self, "item_biases"):
            scores += self.item_biases()
        if hist.size:
            scores[hist] = -np.inf
        return topk_one(scores, k)

    def _one_query(self, user, hist: np.ndarray, known: bool) -> Queries:
        """A one-row :class:`Queries` of ``hist`` (item ids), built without scipy's constructor
        checks (a fifth of its cost) when the ids are valid; the constructor otherwise."""
        hist = np.unique(hist)
        data, indices = np.ones(len(hist), np.float32), hist.astype(np.int32)
        indptr = np.array([0, len(hist)], dtype=np.int32)
        if len(hist) == 0 or (hist[0] >= 0 and hist[-1] < self.n_items):
            try:
                h = object.__new__(sp.csr_matrix)
                n, template = getattr(self, "_csr_template", (None, None))
                if n != self.n_items:
                    template = sp.csr_matrix((1, self.n_items), dtype=np.float32).__dict__.copy()
                    self._csr_template = (self.n_items, template)
                h.__dict__.update(template)
                h.data, h.indices, h.indptr = data, indices, indptr
                if h.shape == (1, self.n_items) and h.nnz == len(hist):
                    return Queries(np.array([int(user)], dtype=np.int64), h, known)
            except Exception:  # noqa: BLE001, S110 - another scipy: the checked constructor
                pass
        h = sp.csr_matrix((data, indices, indptr), shape=(1, self.n_items))
        return Queries(np.array([int(user)], dtype=np.int64), h, known)

    def _recommend_one_generic(self, user, hist, k, known):
        ids, scores = self.recommend(self._one_query(user, hist, known), k=k)
        return ids[0], scores[0]

    def get_params(self) -> dict:
        """Hyper-parameters, JSON-serialisable: each declared parameter (:attr:`PARAMS`, in
        the constructor's order) read from the attribute of the same name, tables and lists
        copied (empty when the class declares none)."""
        return {name: _copy(getattr(self, name)) for name in self.PARAMS}

    # --------------------------------------------------------------- persistence
    def save(self, path) -> None:
        """Save to ``path`` (a folder): ``params.json`` plus model-specific arrays."""
        raise NotImplementedError(f"{self.name} does not support save()")

    @classmethod
    def load(cls, path) -> RecommenderBase:
        raise NotImplementedError(f"{cls.__name__} does not support load()")

    @staticmethod
    def _write_params(path, params: dict) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(path) / "params.json", params)

    @staticmethod
    def _read_params(path) -> dict:
        return json.loads((Path(path) / "params.json").read_text())
