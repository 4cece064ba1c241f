"""The A/B gate's statistics: ratio of medians, a paired bootstrap interval, the verdict.

Rounds are interleaved (base and head measured back to back, the order alternating), so a
round's two samples share the machine's load of that moment. The interval therefore resamples
whole rounds (a paired bootstrap): a burst of load that slows both sides of a round moves both
medians together instead of widening the interval. Chosen over Mann-Whitney because it gives an
interval on the ratio itself (the figure the 1.15x threshold is about) and needs no assumption
on the shape of the two distributions.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_SLOWDOWN = 1.15  # fail only at a slowdown at least this large ...
CONFIDENCE = 0.95  # ... whose interval at this level lies above 1 (significant)
N_BOOT = 2000
BOOT_SEED = 0


@dataclass
class Estimate:
    """Ratio of medians head / base and its interval (``lo``, ``hi``)."""

    base: float
    head: float
    ratio: float
    lo: float
    hi: float
    n: int


def estimate(base, head, confidence: float = CONFIDENCE, n_boot: int = N_BOOT,
             seed: int = BOOT_SEED) -> Estimate:
    """Ratio of medians ``median(head) / median(base)`` with a paired bootstrap interval.

    Parameters
    ----------
    base, head : sequence of float
        One sample per round, the same rounds on both sides (``base[i]`` next to ``head[i]``).
    confidence : float
        Two-sided level of the percentile interval.
    n_boot, seed : int
        Bootstrap resamples and their seed (the interval is reproducible).
    """
    import numpy as np  # lazy: `mfsoftmax --help` stays light

    b, h = np.asarray(base, float), np.asarray(head, float)
    if b.shape != h.shape or b.size < 2:
        raise ValueError(f"need two paired series of >= 2 rounds, got {b.size} and {h.size}")
    idx = np.random.default_rng(seed).integers(0, b.size, size=(n_boot, b.size))
    ratios = np.median(h[idx], axis=1) / np.median(b[idx], axis=1)
    tail = (1.0 - confidence) / 2 * 100
    lo, hi = np.percentile(ratios, [tail, 100 - tail])
    mb, mh = float(np.median(b)), float(np.median(h))
    return Estimate(mb, mh, mh / mb, float(lo), float(hi), int(b.size))


def verdict(e: Estimate, max_slowdown: float = MAX_SLOWDOWN) -> str:
    """``SLOWER`` (fails): ratio >= ``max_slowdown`` and the interval above 1; ``faster``: the
    mirror image; ``ok`` otherwise."""
    if e.ratio >= max_slowdown and e.lo > 1.0:
        return "SLOWER"
    if e.ratio <= 1.0 / max_slowdown and e.hi < 1.0:
        return "faster"
    return "ok"


def settled(e: Estimate, max_slowdown: float = MAX_SLOWDOWN) -> bool:
    """True when more rounds would not change the answer much: the interval lies wholly below
    or wholly above the threshold (adaptive stopping; the gate stops at its round cap too)."""
    return e.hi < max_slowdown or e.lo >= max_slowdown
