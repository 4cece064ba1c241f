"""Splits and protocols (docs/definitions.md): holdout, temporal, strong and new-items.

Every split keeps the full user and item index spaces (matrices stay users x items of the whole
dataset); what changes is which interactions are in ``train`` and which users/items are evaluated.
Each split is deterministic given the seed, and validation and test are disjoint.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .core import DatasetError, Interactions, check_users_items

PROTOCOLS = ("holdout", "temporal", "strong", "new-items")


@dataclass
class EvalSet:
    """Users to evaluate, what the model may know of them, and their targets.

    Attributes
    ----------
    users : ndarray of int
        User indices in the dataset's user space (features are looked up with them).
    history : csr_matrix (len(users) x n_items)
        Items the model may use as input and that are excluded from the ranking.
    target : csr_matrix (len(users) x n_items)
        Held-out items to find.
    known_users : bool
        True when these users' histories are rows of the training matrix (holdout, temporal,
        new-items); False for held-out users (strong), whom a model must fold in.
    candidates : ndarray of int or None
        Restrict the ranking to these items (new-items protocol); None ranks all items.
    """

    users: np.ndarray
    history: sp.csr_matrix
    target: sp.csr_matrix
    known_users: bool
    candidates: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.users)
        check_users_items(self.history, n, what="EvalSet.history")
        check_users_items(self.target, n, self.history.shape[1], what="EvalSet.target")

    def __len__(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return self.history.shape[1]

    def subset(self, rows: np.ndarray) -> EvalSet:
        """The eval set restricted to positions ``rows``."""
        return EvalSet(self.users[rows], self.history[rows], self.target[rows], self.known_users,
                       self.candidates)


@dataclass
class Split:
    """Train interactions plus disjoint validation and test eval sets."""

    protocol: str
    data: Interactions
    train: Interactions
    valid: EvalSet
    test: EvalSet
    seed: int
    new_items: np.ndarray | None = None

    def describe(self) -> dict:
        return {
            "protocol": self.protocol,
            "seed": self.seed,
            "n_train_interactions": self.train.n_interactions,
            "n_valid_users": len(self.valid),
            "n_test_users": len(self.test),
            "n_valid_targets": int(self.valid.target.nnz),
            "n_test_targets": int(self.test.target.nnz),
            "n_new_items": None if self.new_items is None else len(self.new_items),
        }


def _rows(m: sp.csr_matrix) -> np.ndarray:
    return np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))


def _per_user_tail(data: Interactions, frac: float, key: np.ndarray) -> np.ndarray:
    """Mask (aligned with data) of the last ``frac`` of each user's interactions ordered by
    ``key``; users with >= 2 interactions keep at least one on each side."""
    m = data.matrix
    rows = _rows(m)
    lens = np.diff(m.indptr)
    n_t = np.where(lens >= 2, np.clip(np.rint(frac * lens), 1, np.maximum(lens - 1, 1)), 0).astype(np.int64)
    order = np.lexsort((key, rows))
    pos = np.arange(m.nnz) - m.indptr[rows[order]]
    mask = np.zeros(m.nnz, dtype=bool)
    mask[order] = pos >= (lens - n_t)[rows[order]]
    return mask


def _eval_set(part: Interactions, history: Interactions, users: np.ndarray, known: bool,
              candidates=None) -> EvalSet:
    return EvalSet(users=users, history=history.matrix[users], target=part.matrix[users],
                   known_users=known, candidates=candidates)


def _split_users(users: np.ndarray, valid_share: float, rng) -> tuple[np.ndarray, np.ndarray]:
    users = rng.permutation(users)
    n_valid = int(round(valid_share * len(users)))
    if len(users) >= 2:
        n_valid = min(max(n_valid, 1), len(users) - 1)
    return np.sort(users[:n_valid]), np.sort(users[n_valid:])


def holdout(data: Interactions, seed: int = 0, test_frac: float = 0.2, valid_share: float = 0.25,
            temporal: bool = False) -> Split:
    """Weak generalisation: per user a random (or, with ``temporal``, the latest) ``test_frac`` of
    interactions is the target. Users with a target are divided into disjoint validation
    (``valid_share``) and test users; everyone's remaining interactions are training data."""
    for name, val in (("test_frac", test_frac), ("valid_share", valid_share)):
        if not 0.0 < float(val) < 1.0:
            raise DatasetError(f"{data.name}: split option {name}={val!r} must be in (0, 1)")
    rng = np.random.default_rng(seed)
    if temporal:
        if data.timestamps is None:
            raise DatasetError(f"{data.name}: protocol 'temporal' needs timestamps")
        key = data.timestamps.astype(np.float64) + rng.random(data.n_interactions) * 1e-3
    else:
        key = rng.random(data.n_interactions)
    is_target = _per_user_tail(data, test_frac, key)
    train = data.select(~is_target)
    held = data.select(is_target)
    users = np.flatnonzero(held.user_activity() > 0)
    if len(users) == 0:
        raise DatasetError(
            f"{data.name}: {'temporal' if temporal else 'holdout'} protocol needs at least one "
            "user with >= 2 interactions (one to train on, one to hold out; 2 such users for a "
            f"validation user too); {_what_we_have(data, 0, 2)}")
    valid_users, test_users = _split_users(users, valid_share, rng)
    return Split(
        protocol="temporal" if temporal else "holdout", data=data, train=train,
        valid=_eval_set(held, train, valid_users, True), test=_eval_set(held, train, test_users, True),
        seed=seed,
    )


def _what_we_have(data: Interactions, eligible: int, min_activity: int) -> str:
    """"this dataset has ..." for the split errors, with merged duplicate rows when any."""
    dup = data.meta.get("duplicates")
    merged = (f"; its {dup['rows']} rows hold {dup['pairs']} distinct (user, item) pairs"
              if dup else "")
    users = f"{data.n_users} user" + ("s" if data.n_users != 1 else "")
    return (f"this dataset has {users}, {eligible} with >= {min_activity} "
            f"interactions{merged}")


def _strong_minimum(data, n, n_heldout, heldout_frac, min_activity, eligible) -> str:
    """The error of a strong split that cannot be made, stating the real minimum."""
    have = _what_we_have(data, eligible, min_activity)
    if n < 1:
        if n_heldout is not None:
            return f"{data.name}: strong protocol: n_heldout={n_heldout} must be >= 1"
        need = math.ceil(0.5 / heldout_frac)
        while int(round(heldout_frac * need)) < 1:
            need += 1
        return (f"{data.name}: strong protocol: heldout_frac={heldout_frac} of {data.n_users} "
                f"users rounds to 0 held-out users; it needs at least {need} users, and at least "
                f"3 with >= {min_activity} interactions (a validation user, a test user and one "
                f"to train on); {have}")
    return (f"{data.name}: strong protocol holds out {n} validation and {n} test users with >= "
            f"{min_activity} interactions and needs one more to train on: at least {2 * n + 1} "
            f"such users; {have}")


def strong(data: Interactions, seed: int = 0, heldout_frac: float = 0.1, n_heldout: int | None = None,
           target_frac: float = 0.2, min_activity: int = 5) -> Split:
    """Strong generalisation (cold-start users): disjoint validation and test users never seen in
    training; each held-out user's items are split 80/20 into fold-in history and target."""
    rng = np.random.default_rng(seed)
    eligible = np.flatnonzero(data.user_activity() >= min_activity)
    n = n_heldout if n_heldout is not None else int(round(heldout_frac * data.n_users))
    if n < 1 or 2 * n >= len(eligible):
        raise DatasetError(_strong_minimum(data, n, n_heldout, heldout_frac, min_activity,
                                           len(eligible)))
    chosen = rng.choice(eligible, size=2 * n, replace=False)
    valid_users, test_users = np.sort(chosen[:n]), np.sort(chosen[n:])
    heldout = np.zeros(data.n_users, dtype=bool)
    heldout[chosen] = True
    rows = _rows(data.matrix)
    train = data.select(~heldout[rows])
    is_target = _per_user_tail(data, target_frac, rng.random(data.n_interactions)) & heldout[rows]
    fold_in = data.select(heldout[rows] & ~is_target)
    held = data.select(is_target)
    return Split(
        protocol="strong", data=data, train=train,
        valid=_eval_set(held, fold_in, valid_users, False),
        test=_eval_set(held, fold_in, test_users, False), seed=seed,
    )


def new_items(data: Interactions, seed: int = 0, item_frac: float = 0.1, valid_share: float = 0.5,
              min_popularity: int = 1) -> Split:
    """Item cold start: a random ``item_frac`` of items is removed from training. Their
    interactions are the targets, ranked among the held-out items only; held-out items are
    divided into disjoint validation and test items."""
    rng = np.random.default_rng(seed)
    eligible = np.flatnonzero(data.item_popularity() >= min_popularity)
    n_new = max(2, int(round(item_frac * data.n_items)))
    if n_new >= len(eligible):
        raise DatasetError(f"{data.name}: new-items protocol cannot hold out {n_new} of {len(eligible)} items")
    new = rng.choice(eligible, size=n_new, replace=False)
    valid_items, test_items = _split_users(new, valid_share, rng)
    is_new = np.zeros(data.n_items, dtype=bool)
    is_new[new] = True
    train = data.select(~is_new[data.matrix.indices])
    sets = []
    for items in (valid_items, test_items):
        in_set = np.zeros(data.n_items, dtype=bool)
        in_set[items] = True
        held = data.select(in_set[data.matrix.indices])
        users = np.flatnonzero((held.user_activity() > 0) & (train.user_activity() > 0))
        sets.append(_eval_set(held, train, users, True, candidates=np.sort(items)))
    return Split(protocol="new-items", data=data, train=train, valid=sets[0], test=sets[1],
                 seed=seed, new_items=np.sort(new))


def make_split(data: Interactions, protocol: str, seed: int = 0, **options) -> Split:
    """Split ``data`` under ``protocol`` (one of :data:`PROTOCOLS`)."""
    if protocol == "holdout":
        return holdout(data, seed=seed, **options)
    if protocol == "temporal":
        return holdout(data, seed=seed, temporal=True, **options)
    if protocol == "strong":
        return strong(data, seed=seed, **options)
    if protocol == "new-items":
        return new_items(data, seed=seed, **options)
    raise DatasetError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def protocol_options(protocol: str) -> tuple[str, ...]:
    """The split options ``protocol`` takes (``dataset.split`` keys), e.g. ``heldout_frac``."""
    fn = {"holdout": holdout, "temporal": holdout, "strong": strong, "new-items": new_items}.get(protocol)
    if fn is None:
        raise DatasetError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    return tuple(k for k in inspect.signature(fn).parameters if k not in ("data", "seed", "temporal"))
