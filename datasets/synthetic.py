"""Seeded synthetic interactions with planted groups (the embedded default dataset).

Users and items are split into ``n_groups`` planted groups. A user interacts only with items of
its own group, except for a share ``noise`` of its interactions that go to a uniformly chosen other
group. Inside a group, item popularity is Zipf-like (exponent ``zipf``); user activity is
log-normal. User and item features are noisy copies of the group (``feature_noise``), plus an
uninformative feature, so features help cold start without giving the answer away.
Everything is vectorised: no m x n array is ever built.
"""

from __future__ import annotations

import numpy as np

from .core import Interactions, from_coo


def synthetic(n_users: int = 6000, n_items: int = 2000, n_groups: int = 20,
              mean_activity: float = 40.0, activity_sigma: float = 0.8, zipf: float = 1.0,
              noise: float = 0.0, feature_noise: float = 0.3, min_activity: int = 3,
              seed: int = 0, data_dir=None) -> Interactions:
    """Generate the planted-groups dataset.

    Parameters
    ----------
    n_users, n_items, n_groups : int
        Sizes; every group gets at least one user and one item.
    mean_activity : float
        Mean interactions per user (before de-duplication), log-normal with ``activity_sigma``.
    zipf : float
        Popularity exponent of items inside their group (weight of rank r is r**-zipf).
    noise : float
        Share of interactions sent to another, uniformly chosen group (0 = perfectly separated).
    feature_noise : float
        Probability that a feature code is random instead of the group's.
    seed : int
        Seed of the generator; the same seed gives the same dataset.
    """
    if not (n_groups >= 1 and n_users >= n_groups and n_items >= n_groups):
        raise ValueError(f"n_groups={n_groups} needs n_users and n_items >= n_groups")
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise={noise} must be in [0, 1]")
    if n_groups == 1 and noise > 0:
        raise ValueError("noise > 0 needs n_groups >= 2")
    rng = np.random.default_rng(seed)
    user_groups = np.sort(rng.permutation(np.arange(n_users) % n_groups))
    item_groups = np.arange(n_items) * n_groups // n_items  # contiguous blocks
    rng.shuffle(user_groups)

    # per-group Zipf CDF laid end to end: group g's CDF runs from g to g + 1
    group_start = np.searchsorted(item_groups, np.arange(n_groups))
    group_size = np.bincount(item_groups, minlength=n_groups)
    rank_in_group = np.arange(n_items) - group_start[item_groups]
    # a random popularity order inside each group
    perm_key = rng.random(n_items)
    order = np.lexsort((perm_key, item_groups))
    weights = np.empty(n_items)
    weights[order] = (rank_in_group + 1.0) ** -zipf
    group_tot = np.bincount(item_groups, weights=weights, minlength=n_groups)
    cdf = np.cumsum(weights) - np.repeat(np.cumsum(group_tot) - group_tot, group_size)
    cdf = cdf / group_tot[item_groups] + item_groups
    cdf[group_start + group_size - 1] = np.arange(n_groups) + 1.0  # exact upper ends

    mu = np.log(mean_activity) - activity_sigma**2 / 2
    activity = np.maximum(min_activity, rng.lognormal(mu, activity_sigma, n_users).astype(np.int64))
    activity = np.minimum(activity, np.maximum(min_activity, group_size[user_groups] // 2))
    users = np.repeat(np.arange(n_users), activity)
    groups = user_groups[users]
    if noise > 0:
        leak = rng.random(len(users)) < noise
        shift = rng.integers(1, n_groups, size=int(leak.sum()))
        groups = groups.copy()
        groups[leak] = (groups[leak] + shift) % n_groups
    u = rng.random(len(users))
    items = np.searchsorted(cdf, groups + u, side="right")
    items = np.minimum(items, group_start[groups] + group_size[groups] - 1)
    t0 = 1_600_000_000
    timestamps = t0 + rng.integers(0, 365 * 86400, size=len(users))

    def noisy(labels, card):
        out = labels.copy()
        flip = rng.random(len(out)) < feature_noise
        out[flip] = rng.integers(0, card, size=int(flip.sum()))
        return out.astype(np.int64)

    user_features = {
        "segment": noisy(user_groups, n_groups),
        "region": noisy(user_groups % max(1, n_groups // 4 or 1), max(1, n_groups // 4 or 1)),
        "age_bucket": rng.integers(0, 7, n_users).astype(np.int64),
    }
    item_features = {
        "category": noisy(item_groups, n_groups),
        "year_bucket": rng.integers(0, 10, n_items).astype(np.int64),
    }
    return from_coo(
        "synthetic", users, items, n_users, n_items, timestamps=timestamps,
        user_features=user_features, item_features=item_features,
        user_groups=user_groups.astype(np.int64), item_groups=item_groups.astype(np.int64),
        meta={"generator": "planted-groups", "seed": seed, "n_groups": n_groups, "noise": noise,
              "zipf": zipf, "mean_activity": mean_activity},
    )
