"""The one way the suite loads a dataset: the run's own (``Runner.prepare``) and the folding
stage's probes (a ``folding.dataset_params`` variant, the regimes' group counts) honour the same
``[dataset]`` options: ``min_rating``, ``min_user``, ``min_item``, ``binarize``, ``data_dir``,
the synthetic generators' seed and the size caps (``max_items``, ``max_users``,
``max_interactions``)."""

from __future__ import annotations

import numpy as np

from mfsoftmax.datasets import load
from mfsoftmax.datasets.preprocess import drop_empty

from .config import QUICK_CAPS

#: the generators seeded with the run's seed unless ``dataset.params`` names one
SEEDED = ("synthetic", "synthetic-20m")


def load_dataset(ds: dict, seed: int, params: dict | None = None):
    """``(data, full)``: the dataset of ``ds`` (a config's ``[dataset]``) with its options and
    builder params (``params`` in their place when given; a generator of :data:`SEEDED` gets
    ``seed`` unless they name one), capped to ``ds``'s ``max_*`` (:func:`cap_size`); ``full``
    is its (users, items, interactions) before the cap."""
    params = dict(ds["params"] if params is None else params)
    if ds["name"] in SEEDED:
        params.setdefault("seed", seed)
    data = load(ds["name"], data_dir=ds["data_dir"], min_rating=ds["min_rating"],
                min_user=ds["min_user"], min_item=ds["min_item"],
                binary=bool(ds.get("binarize", True)), **params)
    full = (data.n_users, data.n_items, data.n_interactions)
    return cap_size(data, *(ds.get(k) for k in QUICK_CAPS), seed=seed), full


def cap_size(data, max_items: int | None = None, max_users: int | None = None,
             max_interactions: int | None = None, seed: int = 0):
    """``data`` restricted to its ``max_items`` most popular items (ties: the lower index), then
    to a random sample of users (seeded; at least one) of at most ``max_users`` users holding at
    most ``max_interactions`` interactions; order kept, empty rows and columns dropped. ``data``
    itself when it is within every cap."""
    if max_items and data.n_items > max_items:
        top = np.argsort(-data.item_popularity(), kind="stable")[:max_items]
        data = drop_empty(data.subset(items=np.sort(top)))
    if (max_users and data.n_users > max_users) or (
            max_interactions and data.n_interactions > max_interactions):
        order = np.random.default_rng(seed).permutation(data.n_users)
        held = np.cumsum(data.user_activity()[order])
        n = min(max_users or data.n_users,
                int(np.searchsorted(held, max_interactions or held[-1], side="right")))
        data = drop_empty(data.subset(users=np.sort(order[:max(n, 1)])))
    return data
