"""Options every loader honours: positive threshold, iterated k-core, binarisation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from .core import DatasetError, Interactions, small_pages


def threshold(data: Interactions, min_rating: float | None) -> Interactions:
    """Keep interactions whose rating (or value) is >= ``min_rating``."""
    if min_rating is None:
        return data
    values = data.ratings if data.ratings is not None else data.matrix.data
    return data.select(values >= min_rating)


def k_core(data: Interactions, min_user: int = 0, min_item: int = 0) -> Interactions:
    """Iterated k-core: drop users with < ``min_user`` and items with < ``min_item`` interactions
    until both hold, then re-index the survivors."""
    if min_user <= 1 and min_item <= 1:
        return data
    users = np.arange(data.n_users)
    items = np.arange(data.n_items)
    cur = data
    while True:  # each round removes someone, so this ends
        ua, ip = cur.user_activity(), cur.item_popularity()
        keep_u = ua >= min_user
        keep_i = ip >= min_item
        if keep_u.all() and keep_i.all():
            break
        users, items = users[keep_u], items[keep_i]
        cur = cur.subset(np.flatnonzero(keep_u), np.flatnonzero(keep_i))
        if cur.n_users == 0 or cur.n_items == 0:
            raise DatasetError(
                f"{data.name}: k-core with min_user={min_user}, min_item={min_item} removes everything"
            )
    cur.meta = dict(cur.meta, k_core={"min_user": min_user, "min_item": min_item})
    return cur


def binarize(data: Interactions) -> Interactions:
    """Set every interaction value to 1 (ratings stay available in ``data.ratings``).

    The new matrix shares ``indices`` and ``indptr`` with ``data.matrix`` (a 20M-interaction
    matrix is not copied for it); only its values are new."""
    m = data.matrix
    with small_pages():
        ones = np.ones(m.nnz, dtype=np.float32)
    b = sp.csr_matrix((ones, m.indices, m.indptr), shape=m.shape, copy=False)
    b.has_sorted_indices = m.has_sorted_indices
    return replace(data, matrix=b)


def drop_empty(data: Interactions) -> Interactions:
    """Remove users and items with no interactions left."""
    ua, ip = data.user_activity(), data.item_popularity()
    if (ua > 0).all() and (ip > 0).all():
        return data
    return data.subset(np.flatnonzero(ua > 0), np.flatnonzero(ip > 0))


def preprocess(data: Interactions, min_rating: float | None = None, min_user: int = 0,
               min_item: int = 0, binary: bool = True) -> Interactions:
    """Apply threshold, k-core and binarisation in that order; empty users/items are dropped
    after a threshold."""
    out = threshold(data, min_rating)
    if min_rating is not None:
        out = drop_empty(out)
    out = k_core(out, min_user, min_item)
    if binary:
        out = binarize(out)
    if out.n_interactions == 0:
        raise DatasetError(f"{data.name}: no interactions left after preprocessing")
    return out
