"""Change-point detection on one figure's series over commits: where the level steps.

Binary segmentation: the split of a segment that best separates the means of its two sides (the
least-squares split, which places a step most precisely, on the series after a running median of
3, which drops a lone outlier) is a change point when the step is
both large (``min_rel`` of the level before it) and significant (``z`` noise units, the noise
read robustly from the series' successive differences, so neither the step nor an outlier
inflates it). Each side is then searched again; a last pass drops a step that is no longer
large or significant between its neighbours. A change point names the first point of the new
level, i.e. the first commit of the step; its levels are the medians either side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_SEGMENT = 3  # points each side of a step
MIN_REL = 0.05  # smallest step, relative to the level before it
Z = 5.0  # smallest step, in noise units of the difference of two medians


@dataclass
class Step:
    """A change point: the level moves from ``before`` to ``after`` at point ``index``."""

    index: int
    before: float
    after: float

    @property
    def direction(self) -> str:
        return "up" if self.after > self.before else "down"

    @property
    def ratio(self) -> float:
        return self.after / self.before if self.before else math.inf


def noise(x: np.ndarray) -> float:
    """Robust noise sd of one point: MAD of successive differences / sqrt(2) (a step moves one
    difference only)."""
    if x.size < 3:
        return 0.0
    d = np.diff(x)
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2))


def smooth(x: np.ndarray) -> np.ndarray:
    """A running median of 3 (each end the median of its 3 points): drops a lone outlier, keeps
    a step's edge."""
    if x.size < 3:
        return x.copy()
    out = x.copy()
    out[1:-1] = np.median(np.stack([x[:-2], x[1:-1], x[2:]]), axis=0)
    out[0], out[-1] = np.median(x[:3]), np.median(x[-3:])
    return out


def _score(x: np.ndarray, lo: int, t: int, hi: int, sigma: float, min_rel: float) -> float:
    """Significance of a step at ``t`` in ``x[lo:hi]`` (0 when it is too small)."""
    left, right = x[lo:t].mean(), x[t:hi].mean()
    step = abs(right - left)
    if step == 0 or step < min_rel * abs(left):
        return 0.0
    floor = 1e-12 * max(abs(left), 1.0)  # a noiseless series: any real step is significant
    return step / (max(sigma, floor) * math.sqrt(1 / (t - lo) + 1 / (hi - t)))


def _best_split(x: np.ndarray, lo: int, hi: int, sigma: float, min_rel: float, z: float):
    """The most significant split ``t`` of ``x[lo:hi]``, or None."""
    scores = [(_score(x, lo, t, hi, sigma, min_rel), t)
              for t in range(lo + MIN_SEGMENT, hi - MIN_SEGMENT + 1)]
    best = max(scores, default=(0.0, None))
    return best[1] if best[0] >= z else None


def change_points(values, min_rel: float = MIN_REL, z: float = Z) -> list[Step]:
    """The steps of a series, in order.

    Parameters
    ----------
    values : sequence of float
        One value per commit, in commit order.
    min_rel : float
        Smallest step relative to the level before it.
    z : float
        Smallest step in noise units.
    """
    raw = np.asarray(values, float)
    sigma = noise(raw)
    x = smooth(raw)
    found, todo = [], [(0, x.size)]
    while todo:
        lo, hi = todo.pop()
        t = _best_split(x, lo, hi, sigma, min_rel, z)
        if t is not None:
            found.append(t)
            todo += [(lo, t), (t, hi)]
    found.sort()
    while True:  # prune: each step judged between its neighbours
        bounds = [0, *found, x.size]
        weak = [i for i, t in enumerate(found)
                if _score(x, bounds[i], t, bounds[i + 2], sigma, min_rel) < z]
        if not weak:
            break
        del found[weak[0]]
    bounds = [0, *found, x.size]
    return [Step(t, float(np.median(raw[bounds[i]:t])), float(np.median(raw[t:bounds[i + 2]])))
            for i, t in enumerate(found)]
