"""The folding probe: two datasets with disjoint users and items stacked block-diagonally."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .core import Interactions


def _stack_features(fa: dict, fb: dict, na: int, nb: int) -> dict:
    """Features present on both sides; categorical codes of B are kept as they are (same
    vocabulary, e.g. a twin); multi-hot columns must have equal width."""
    out = {}
    for key in fa.keys() & fb.keys():
        a, b = fa[key], fb[key]
        if a.ndim != b.ndim or (a.ndim == 2 and a.shape[1] != b.shape[1]):
            continue
        out[key] = np.concatenate([a, b])
    return out


def disjoint_union(a: Interactions, b: Interactions, name: str | None = None) -> Interactions:
    """Block-diagonal union: users and items of ``b`` follow those of ``a``.

    ``user_groups``/``item_groups`` become the block (0 for ``a``, 1 for ``b``): every
    cross-block recommendation is spurious.
    """
    mat = sp.block_diag([a.matrix, b.matrix], format="csr", dtype=np.float32)
    mat.sort_indices()

    def cat(x, y):
        return None if x is None or y is None else np.concatenate([x, y])

    return Interactions(
        name=name or f"disjoint-union({a.name},{b.name})",
        matrix=mat,
        timestamps=cat(a.timestamps, b.timestamps),
        ratings=cat(a.ratings, b.ratings),
        user_features=_stack_features(a.user_features, b.user_features, a.n_users, b.n_users),
        item_features=_stack_features(a.item_features, b.item_features, a.n_items, b.n_items),
        user_groups=np.repeat([0, 1], [a.n_users, b.n_users]).astype(np.int64),
        item_groups=np.repeat([0, 1], [a.n_items, b.n_items]).astype(np.int64),
        user_ids=np.array([f"a:{x}" for x in a.user_ids] + [f"b:{x}" for x in b.user_ids], dtype=object),
        item_ids=np.array([f"a:{x}" for x in a.item_ids] + [f"b:{x}" for x in b.item_ids], dtype=object),
        meta={"probe": "disjoint-union", "blocks": [a.name, b.name]},
    )


def twin(a: Interactions) -> Interactions:
    """``a`` stacked with a relabelled copy of itself (the default real-data folding probe)."""
    return disjoint_union(a, a, name=f"twin({a.name})")
