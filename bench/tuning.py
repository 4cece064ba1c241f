"""Hyperparameter search on the validation split, with the same budget (trials) for every model.

The search is an Optuna study: ``sampler="tpe"`` (the default) a seeded ``TPESampler``,
``sampler="random"`` a seeded ``RandomSampler``. Search spaces come from the config: ``[32, 64]``
is a choice (``suggest_categorical``), ``{log = [a, b]}`` log-uniform and ``{uniform = [a, b]}``
uniform (``suggest_float``), ``{int = [a, b]}`` an integer in [a, b] (``suggest_int``).

Trial 0 always uses the configured fixed parameters (enqueued into the study, so TPE learns from
it), so the defaults are among the candidates; a fixed value outside its searched range widens
that range to include it (a choice list gains the value) rather than being refused. The same
seed and the same scores give the same trials.
"""

from __future__ import annotations

import json
import math
import time

from .config import ConfigError

SAMPLERS = ("tpe", "random")
_PRIMITIVE = (type(None), bool, int, float, str)


def startup_trials(trials: int) -> int:
    """Trials TPE draws at random before it models the scores: a third of the budget (trial 0,
    the fixed params, among them), between 2 and 10 (Optuna's default of 10 would leave a budget
    of ~10 trials with no model-guided trial at all)."""
    return max(2, min(10, trials // 3))


def parse_space(space: dict, fixed: dict, where: str = "search") -> dict:
    """``{key: (kind, spec)}``: kind ``choice`` (spec = the choices), ``log``/``uniform``/``int``
    (spec = ``(lo, hi)``). A fixed value outside its range widens the range to include it."""
    out = {}
    for key, spec in space.items():
        has_fixed = key in fixed
        if isinstance(spec, list):
            if not spec:
                raise ConfigError(f"{where}.{key}: empty choice list")
            choices = [v.item() if hasattr(v, "item") else v for v in spec]
            if has_fixed and fixed[key] not in choices:
                choices.append(fixed[key])
            out[key] = ("choice", choices)
        elif isinstance(spec, dict) and len(spec) == 1:
            kind, bounds = next(iter(spec.items()))
            if kind not in ("log", "uniform", "int"):
                raise ConfigError(f"{where}.{key}: unknown distribution {kind!r} (log, uniform, int)")
            if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
                raise ConfigError(f"{where}.{key}: {kind} takes [lo, hi], got {bounds!r}")
            lo, hi = bounds
            if lo > hi or (kind == "log" and lo <= 0):
                raise ConfigError(f"{where}.{key}: {kind} range [{lo}, {hi}] is empty"
                                  + (" or not positive" if kind == "log" else ""))
            if has_fixed and isinstance(fixed[key], (int, float)) and not isinstance(fixed[key], bool):
                if kind == "log" and fixed[key] <= 0:
                    raise ConfigError(f"{where}.{key}: the fixed value {fixed[key]!r} (trial 0) is "
                                      f"not in the log range [{lo}, {hi}]; set a positive "
                                      f"params.{key}")
                lo, hi = min(lo, fixed[key]), max(hi, fixed[key])
            if kind == "int":
                out[key] = ("int", (int(math.floor(lo)), int(math.ceil(hi))))
            else:
                out[key] = (kind, (float(lo), float(hi)))
        else:
            raise ConfigError(f"{where}.{key}: expected a list or {{log|uniform|int = [lo, hi]}}")
    return out


def _encode(choices: list) -> list | None:
    """Optuna's categorical values must be None/bool/int/float/str: other choices (e.g. a layer
    list ``[256, 128]``) go in as their JSON text. ``None`` when no encoding is needed."""
    if all(isinstance(c, _PRIMITIVE) for c in choices):
        return None
    return [json.dumps(c) for c in choices]


def _suggest(trial, parsed: dict) -> dict:
    params = {}
    for key, (kind, spec) in parsed.items():
        if kind == "choice":
            enc = _encode(spec)
            if enc is None:
                params[key] = trial.suggest_categorical(key, spec)
            else:
                params[key] = spec[enc.index(trial.suggest_categorical(key, enc))]
        elif kind == "int":
            params[key] = int(trial.suggest_int(key, *spec))
        else:
            params[key] = float(trial.suggest_float(key, *spec, log=kind == "log"))
    return params


def _enqueued(parsed: dict, fixed: dict) -> dict:
    """Trial 0's values for the searched keys (those the fixed params name)."""
    out = {}
    for key, (kind, spec) in parsed.items():
        if key not in fixed:
            continue  # no fixed value: the class default is not known here, so trial 0 draws it
        val = fixed[key]
        if kind != "choice" and (isinstance(val, bool) or not isinstance(val, (int, float))):
            continue  # e.g. a None default: not a point of the range, so trial 0 draws it
        enc = _encode(spec) if kind == "choice" else None
        out[key] = enc[spec.index(val)] if enc is not None else val
    return out


def make_sampler(sampler: str, seed: int, trials: int):
    import optuna  # lazy: optuna (~0.5 s); config validation imports this module

    if sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(trials))
    if sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"tuning.sampler: unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")


def search(fit_and_score, fixed: dict, space: dict, trials: int, seed: int,
           where: str = "search", sampler: str = "tpe") -> dict:
    """Run ``trials`` trials of ``fit_and_score(params) -> (score, payload)`` (higher is better);
    keep the best (the earliest of equal scores, so trial 0 wins ties).

    Returns ``{"best_params", "best_score", "best_payload", "trials": [...], "search_s",
    "sampler"}``; each ``trials`` entry is ``{"trial", "params", "score", "seconds"}`` and
    ``search_s`` is the wall time of the whole search (every fit and evaluation, and the
    sampler's own time). With an empty space one trial (the fixed params) is the whole budget.
    """
    import optuna  # lazy: optuna, as in make_sampler

    t0 = time.perf_counter()
    parsed = parse_space(space or {}, fixed, where)
    study_sampler = make_sampler(sampler, seed, trials)  # validates the name before any fit
    history, best = [], None

    def objective(trial):
        nonlocal best
        t = time.perf_counter()
        params = {**fixed, **_suggest(trial, parsed)}
        score, payload = fit_and_score(params)
        score = float(score)
        history.append({"trial": trial.number, "params": params, "score": score,
                        "seconds": time.perf_counter() - t})
        if best is None or score > best[0]:
            best = (score, params, payload)
        return score  # NaN: Optuna marks the trial failed and goes on

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # it logs a line per trial at INFO
    try:
        study = optuna.create_study(direction="maximize", sampler=study_sampler)
        study.enqueue_trial(_enqueued(parsed, fixed))
        study.optimize(objective, n_trials=trials if parsed else 1)
    finally:
        optuna.logging.set_verbosity(previous)
    return {"best_params": best[1], "best_score": float(best[0]), "best_payload": best[2],
            "trials": history, "search_s": time.perf_counter() - t0, "sampler": sampler}


def random_search(fit_and_score, fixed: dict, space: dict, trials: int, seed: int,
                  where: str = "search") -> dict:
    """:func:`search` with ``sampler="random"`` (Optuna's seeded ``RandomSampler``)."""
    return search(fit_and_score, fixed, space, trials, seed, where=where, sampler="random")
