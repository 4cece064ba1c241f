"""Random search on the validation split, with the same budget (trials) for every model.

Search spaces come from the config: ``[32, 64]`` is a choice, ``{log = [a, b]}`` log-uniform,
``{uniform = [a, b]}`` uniform, ``{int = [a, b]}`` an integer in [a, b]. Trial 0 always uses the
configured fixed parameters, so the defaults are among the candidates.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .config import ConfigError


def sample(space: dict, rng: np.random.Generator, where: str = "search") -> dict:
    """One draw from a search space."""
    out = {}
    for key, spec in space.items():
        if isinstance(spec, list):
            if not spec:
                raise ConfigError(f"{where}.{key}: empty choice list")
            val = spec[int(rng.integers(len(spec)))]
            out[key] = val.item() if hasattr(val, "item") else val
        elif isinstance(spec, dict) and len(spec) == 1:
            kind, (lo, hi) = next(iter(spec.items()))
            if kind == "log":
                out[key] = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
            elif kind == "uniform":
                out[key] = float(rng.uniform(lo, hi))
            elif kind == "int":
                out[key] = int(rng.integers(lo, hi + 1))
            else:
                raise ConfigError(f"{where}.{key}: unknown distribution {kind!r} (log, uniform, int)")
        else:
            raise ConfigError(f"{where}.{key}: expected a list or {{log|uniform|int = [lo, hi]}}")
    return out


def random_search(fit_and_score, fixed: dict, space: dict, trials: int, seed: int,
                  where: str = "search") -> dict:
    """Run ``trials`` trials of ``fit_and_score(params) -> (score, payload)``; keep the best.

    Returns ``{"best_params", "best_score", "best_payload", "trials": [...], "search_s"}``.
    """
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    history, best = [], None
    for t in range(trials):
        params = dict(fixed)
        if t > 0 and space:
            params.update(sample(space, rng, where))
        elif t > 0:
            break  # nothing to search: one trial is the whole budget
        score, payload = fit_and_score(params)
        history.append({"trial": t, "params": params, "score": float(score)})
        if best is None or score > best[0]:
            best = (score, params, payload)
    return {"best_params": best[1], "best_score": float(best[0]), "best_payload": best[2],
            "trials": history, "search_s": time.perf_counter() - t0}
