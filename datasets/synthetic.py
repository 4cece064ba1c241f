"""Seeded synthetic interactions with planted groups (the embedded default dataset).

The generator aims at data on which ranking is hard in the way it is on MovieLens, while keeping
the planted groups that the folding stage needs:

* **planted groups**: users and items are split into ``n_groups`` groups (items in contiguous
  blocks); a share ``1 - noise`` of a user's items lies in its own group;
* **long-tail popularity over the whole catalogue**: each item has a global popularity rank (a
  random permutation, so every group holds head and tail items) and weight ``rank ** -zipf``;
* **low-rank tastes inside a group**: items have random unit latent vectors ``v_i`` in
  ``latent_dim`` dimensions, and ``n_tastes`` random unit taste vectors ``t_c`` are shared by
  all groups; ``a_ic = sqrt(latent_dim) * t_c . v_i`` has mean 0 and variance 1 (unit vectors:
  no item is liked by every taste). Taste ``c`` picks an item of group ``g`` with probability
  ``softmax_i(taste * a_ic + log pop_i)`` over the items of ``g``. A user mixes two tastes (a
  primary one with weight ``U(0.5, 1)``, a secondary one), so which items of its group a user
  takes follows a low-rank latent model: a model has to rank inside the group, not only find
  it (ranking a user's group by popularity alone falls well short of the user's own
  preferences);
* **cross-group noise**: a share ``noise`` of a user's items lies outside its group, drawn by
  global popularity among the other groups' items;
* **log-normal activity**: distinct items per user ~ log-normal with mean ``mean_activity`` and
  log-sd ``activity_sigma`` (at least ``min_activity``; in-group items capped at half the
  group). Items are drawn without replacement (the first distinct draws are kept), so the
  counts are counts of distinct items;
* **features with partial signal**: each feature is a coarse, noisy view of the hidden structure
  (a code is replaced by a random one with probability ``feature_noise``): user ``segment``
  (the group), ``region`` (a bucket of the group), ``age_bucket`` (a bucket of the primary
  taste); item ``category`` (the group), ``year_bucket`` (a bucket of the item's favourite
  taste). They help cold start without giving the answer away.

The defaults are the embedded default dataset: ``mfsoftmax datasets show synthetic`` shows what
``mfsoftmax run`` uses. ``synthetic-20m`` (:func:`synthetic_20m`) is the same generator at
MovieLens-20M's shape (138,493 users x 26,744 items, ~20M interactions, at least 20 per user),
its in-group items drawn by exponential keys (``in_group="keys"``). Everything is vectorised and
no m x n array is ever built (the keys are drawn for blocks of users x one group's items).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .core import DatasetError, Interactions, from_coo
from .synthetic_draws import Groups, Sampler, draw_distinct, in_group_by_keys


def _check_ranges(**p) -> None:
    """Raise :class:`DatasetError` naming the first parameter outside its valid range."""
    def need(ok, key, valid):
        if not ok:
            raise DatasetError(f"dataset 'synthetic': parameter {key}={p[key]} is out of range: "
                               f"valid is {valid}")

    need(p["n_groups"] >= 1, "n_groups", "an integer >= 1")
    for key in ("n_users", "n_items"):
        need(p[key] >= p["n_groups"], key, f"an integer >= n_groups ({p['n_groups']})")
    need(0.0 <= p["noise"] <= 1.0, "noise", "[0, 1]")
    need(p["n_groups"] >= 2 or p["noise"] == 0, "noise", "0 when n_groups=1")
    need(0.0 <= p["feature_noise"] <= 1.0, "feature_noise", "[0, 1]")
    for key in ("latent_dim", "n_tastes"):
        need(p[key] >= 1, key, "an integer >= 1")
    need(p["in_group"] in ("draws", "keys"), "in_group", "'draws' or 'keys'")
    for key in ("zipf", "taste", "activity_sigma"):
        need(p[key] >= 0, key, "a number >= 0")
    need(p["mean_activity"] > 0, "mean_activity", "a number > 0")
    need(p["min_activity"] >= 0, "min_activity", "an integer >= 0")


def synthetic(n_users: int = 4000, n_items: int = 2400, n_groups: int = 16,
              mean_activity: float = 20.0, activity_sigma: float = 0.9, zipf: float = 1.0,
              noise: float = 0.2, feature_noise: float = 0.5, latent_dim: int = 8,
              n_tastes: int = 16, taste: float = 2.5, min_activity: int = 3,
              in_group: str = "draws", seed: int = 0, data_dir=None) -> Interactions:
    """Generate the planted-groups dataset (the defaults are the embedded default dataset).

    Parameters
    ----------
    n_users, n_items, n_groups : int
        Sizes; every group gets at least one user and one item.
    mean_activity : float
        Mean distinct items per user, log-normal with log-sd ``activity_sigma``; at least
        ``min_activity``, and at most half the user's group inside the group.
    zipf : float
        Exponent of the catalogue-wide popularity: the item of global rank r has weight
        r**-zipf (0 = every item equally popular).
    noise : float
        Share of a user's items outside its group, drawn by global popularity (0 = perfectly
        separated groups).
    feature_noise : float
        Probability that a feature code is random instead of the one the hidden structure gives.
    latent_dim, n_tastes : int
        Dimension of the item and taste latent vectors; number of taste vectors (shared by all
        groups; each user mixes two).
    taste : float
        Strength of the tastes: scale of the affinity ``sqrt(latent_dim) * t_c . v_i`` (mean 0,
        variance 1) in the item logits; 0 = every user of a group follows the same popularity.
    min_activity : int
        Fewest items drawn per user.
    in_group : {"draws", "keys"}
        How a user's in-group items are drawn without replacement from its taste mixture:
        ``"draws"`` (the default dataset's): with replacement in rounds, keeping the first
        distinct draws (bounded rounds: a heavy user of a skewed taste may end a few short);
        ``"keys"``: the same distribution (successive sampling) by exponential keys
        (Efraimidis-Spirakis: the k smallest ``E_i / p_i`` of the group's items), one pass per
        block of users of a group, exact counts and much faster for heavy users; a different
        draw for the same seed.
    seed : int
        Seed of the generator; the same seed gives the same dataset.
    """
    _check_ranges(n_users=n_users, n_items=n_items, n_groups=n_groups, noise=noise,
                  feature_noise=feature_noise, latent_dim=latent_dim, n_tastes=n_tastes,
                  in_group=in_group, zipf=zipf, taste=taste, activity_sigma=activity_sigma,
                  mean_activity=mean_activity, min_activity=min_activity)
    rng = np.random.default_rng(seed)
    groups = _groups(n_users, n_items, n_groups, rng)
    affinity, weights = _item_weights(n_items, zipf, latent_dim, n_tastes, taste, rng)
    users = _users(groups, n_items, n_tastes, mean_activity, activity_sigma, min_activity, noise,
                   rng)
    sampler = Sampler(groups, weights, users.share, users.primary, users.secondary, rng)
    kept = []  # per round: the sorted keys of the kept draws
    if in_group == "keys":
        kept.append(in_group_by_keys(weights[:, :n_tastes], groups.items, groups.start,
                                      groups.size, groups.users, users.primary, users.secondary,
                                      users.share, users.k_in, n_items, rng))
        users.need[0::2] = 0
    keys = draw_distinct(sampler, users.need, n_users, n_items, kept)
    users_idx, items = np.divmod(keys, np.int64(n_items))
    del keys
    t0 = 1_600_000_000
    timestamps = t0 + rng.integers(0, 365 * 86400, size=len(users_idx))
    user_features, item_features = _features(groups, users.primary, affinity, n_tastes,
                                             feature_noise, rng)
    return from_coo(
        "synthetic", users_idx, items, n_users, n_items, timestamps=timestamps,
        user_features=user_features, item_features=item_features,
        user_groups=groups.users.astype(np.int64), item_groups=groups.items.astype(np.int64),
        meta={"generator": "planted-groups-tastes", "seed": seed, "n_groups": n_groups,
              "noise": noise, "zipf": zipf, "mean_activity": mean_activity, "taste": taste,
              "n_tastes": n_tastes, "latent_dim": latent_dim, "feature_noise": feature_noise,
              **({"in_group": in_group} if in_group != "draws" else {})},
    )


def _groups(n_users: int, n_items: int, n_groups: int, rng) -> Groups:
    """Users spread evenly over the groups in random order; items in contiguous blocks."""
    user_groups = np.sort(rng.permutation(np.arange(n_users) % n_groups))
    item_groups = np.arange(n_items) * n_groups // n_items  # contiguous blocks
    rng.shuffle(user_groups)
    return Groups(user_groups, item_groups, np.searchsorted(item_groups, np.arange(n_groups)),
                   np.bincount(item_groups, minlength=n_groups))


def _item_weights(n_items, zipf, latent_dim, n_tastes, taste, rng):
    """``(affinity, weights)``: each item's affinity to each taste (n_items x n_tastes: mean 0,
    variance 1) and its unnormalised weight under each taste, plus one last column for
    popularity alone (the noise draws)."""
    log_pop = -zipf * np.log1p(rng.permutation(n_items))
    # unit vectors: no item is liked by every taste (shared popularity comes from the ranks)
    v = rng.standard_normal((n_items, latent_dim))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    t = rng.standard_normal((n_tastes, latent_dim))
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    affinity = np.sqrt(latent_dim) * (v @ t.T)  # (n_items, n_tastes): mean 0, variance 1
    logits = np.empty((n_items, n_tastes + 1))
    logits[:, :n_tastes] = taste * affinity + log_pop[:, None]
    logits[:, n_tastes] = log_pop
    logits -= logits.max(axis=0)
    weights = np.maximum(np.exp(logits), 1e-300)  # no block of zero mass, whatever zipf
    return affinity, weights


@dataclass
class _Users:
    """Each user's two tastes and the primary's weight, its in-group item count and what each of
    its segments still needs (segment ``2u``: in-group items, ``2u + 1``: noise items)."""

    primary: np.ndarray
    secondary: np.ndarray
    share: np.ndarray
    k_in: np.ndarray
    need: np.ndarray


def _users(groups: Groups, n_items, n_tastes, mean_activity, activity_sigma, min_activity,
           noise, rng) -> _Users:
    """Two tastes per user; distinct items per user split into in-group and noise ones."""
    n_users = len(groups.users)
    primary = rng.integers(0, n_tastes, n_users)
    secondary = rng.integers(0, n_tastes, n_users)
    share = rng.uniform(0.5, 1.0, n_users)
    mu = np.log(mean_activity) - activity_sigma**2 / 2
    activity = np.maximum(min_activity, rng.lognormal(mu, activity_sigma, n_users).astype(np.int64))
    k_out = rng.binomial(activity, noise) if noise > 0 else np.zeros(n_users, dtype=np.int64)
    size = groups.size[groups.users]
    k_in = np.minimum(activity - k_out, np.minimum(size, np.maximum(min_activity, size // 2)))
    k_out = np.minimum(k_out, n_items - size)
    need = np.stack([k_in, k_out], axis=1).ravel()  # segment 2u: in-group, 2u + 1: noise
    return _Users(primary, secondary, share, k_in, need)


def _features(groups: Groups, primary, affinity, n_tastes, feature_noise, rng):
    """``(user_features, item_features)``: coarse views of the hidden structure, each code
    replaced by a random one with probability ``feature_noise``."""
    def noisy(labels, card):
        out = np.asarray(labels, dtype=np.int64).copy()
        flip = rng.random(len(out)) < feature_noise
        out[flip] = rng.integers(0, card, size=int(flip.sum()))
        return out

    n_groups = groups.n
    n_regions = max(1, n_groups // 4)
    user_features = {
        "segment": noisy(groups.users, n_groups),
        "region": noisy(groups.users % n_regions, n_regions),
        "age_bucket": noisy(primary * 7 // n_tastes, 7),
    }
    item_features = {
        "category": noisy(groups.items, n_groups),
        "year_bucket": noisy(np.argmax(affinity, axis=1) * 10 // n_tastes, 10),
    }
    return user_features, item_features


#: MovieLens-20M's shape (Harper & Konstan 2015; the ml-20m ratings.csv): 138,493 users x 26,744
#: items, 20,000,263 ratings, every user with >= 20 ratings (median 68, mean 144, heavy right
#: tail), item popularity a long tail. ``synthetic-20m`` draws ~20M distinct (user, item) pairs in
#: that shape with the default generator's planted groups and within-group tastes.
ML20M_SHAPE = {"n_users": 138_493, "n_items": 26_744, "n_groups": 20, "mean_activity": 150.0,
               "activity_sigma": 1.0, "min_activity": 20}


def synthetic_20m(n_users: int = ML20M_SHAPE["n_users"], n_items: int = ML20M_SHAPE["n_items"],
                  n_groups: int = ML20M_SHAPE["n_groups"],
                  mean_activity: float = ML20M_SHAPE["mean_activity"],
                  activity_sigma: float = ML20M_SHAPE["activity_sigma"], zipf: float = 1.0,
                  noise: float = 0.2, feature_noise: float = 0.5, latent_dim: int = 8,
                  n_tastes: int = 16, taste: float = 2.5,
                  min_activity: int = ML20M_SHAPE["min_activity"], in_group: str = "keys",
                  seed: int = 0, data_dir=None) -> Interactions:
    """The planted-groups generator (:func:`synthetic`) at MovieLens-20M's shape: 138,493 users x
    26,744 items, ~20M interactions, log-normal activity with at least 20 items per user (mean
    150 before the in-group cap of half a group), catalogue-wide Zipf popularity, 20 planted
    groups of ~1,337 items with the default within-group tastes and cross-group noise; in-group
    items drawn by exponential keys (``in_group="keys"``: exact counts, fast for heavy users). Any
    parameter can be overridden (e.g. ``n_users`` for a smaller run of the same shape)."""
    data = synthetic(n_users=n_users, n_items=n_items, n_groups=n_groups,
                     mean_activity=mean_activity, activity_sigma=activity_sigma, zipf=zipf,
                     noise=noise, feature_noise=feature_noise, latent_dim=latent_dim,
                     n_tastes=n_tastes, taste=taste, min_activity=min_activity,
                     in_group=in_group, seed=seed)
    return replace(data, name="synthetic-20m", meta={**data.meta, "preset": "ml-20m-shape"})
