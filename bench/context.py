"""What every stage is given: :class:`RunContext` (config, data, splits, fitted models, a log), and
what it gives back: :class:`Section` (its part of results.json, merged by the runner).

A stage reads the context and may add fitted models to it (the quality stage does); it never
writes results.json itself and never calls another stage.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field

from mfsoftmax.datasets import make_split
from mfsoftmax.models import MODELS

from .progress import Log


def build_model(kind: str, name: str, params: dict, seed: int, threads: int, progress: bool = False):
    """Instantiate the model class registered as ``kind`` with ``params``; its name is ``name``."""
    if kind not in MODELS:
        raise ValueError(f"model {name}: unknown kind {kind!r}; known: {', '.join(sorted(MODELS))}")
    cls = MODELS[kind]
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = dict(params)
    for key, val in (("seed", seed), ("threads", threads), ("name", name), ("progress", progress)):
        if key in accepted:
            kwargs.setdefault(key, val)
    unknown = set(kwargs) - set(accepted)
    if unknown and not any(p.kind == p.VAR_KEYWORD for p in accepted.values()):
        raise ValueError(f"model {name} ({kind}): unknown parameters {', '.join(sorted(unknown))}")
    model = cls(**kwargs)
    model.name = name
    return model


def spark_defaults(params: dict, cfg: dict) -> dict:
    """A model on the Spark engine gets the config's ``[spark]`` master and conf (in place)."""
    if params.get("engine") == "spark":
        params.setdefault("spark_master", cfg["spark"]["master"])
        params.setdefault("spark_conf", cfg["spark"]["conf"])
    return params


def engine_params(cls, params: dict, engines: dict | None) -> dict:
    """``params`` with the ``[engines]`` defaults for ``cls`` filled in where the model's own
    params leave them out: an MF class taking ``engine`` gets ``engines.mf``, a softmax class
    taking ``workers`` gets ``engines.dnn_workers`` (a copy)."""
    out = dict(params)
    if not engines:
        return out
    accepted = inspect.signature(cls.__init__).parameters
    if getattr(cls, "family", None) == "mf" and "engine" in accepted and "mf" in engines:
        out.setdefault("engine", engines["mf"])
    if getattr(cls, "family", None) == "softmax" and "workers" in accepted and "dnn_workers" in engines:
        out.setdefault("workers", int(engines["dnn_workers"]))
    return out


def with_engines(cfg: dict) -> dict:
    """A copy of ``cfg`` whose models' params carry the ``[engines]`` section (applied once, so
    every stage and every build sees it)."""
    out = copy.deepcopy(cfg)
    engines = cfg.get("engines")
    for spec in out.get("models", {}).values():
        cls = MODELS.get(spec.get("kind"))
        if cls is not None:
            spec["params"] = engine_params(cls, spec.get("params", {}), engines)
    return out


@dataclass
class Section:
    """A stage's results: merged by the runner into results.json.

    Attributes
    ----------
    models : dict
        ``{model name: {key: value}}`` merged into ``results.models[name]`` (dicts merge).
    top : dict
        Top-level keys (``serving``, ``ablation``, ``quality_paired_se``, ...).
    sweeps : dict
        Keys of ``results.sweeps``.
    """

    models: dict = field(default_factory=dict)
    top: dict = field(default_factory=dict)
    sweeps: dict = field(default_factory=dict)

    def model(self, name: str) -> dict:
        """The (new) entry of model ``name`` in this section."""
        return self.models.setdefault(name, {})


class StageFailed(RuntimeError):
    """A stage failed part-way; ``section`` holds what it did measure (kept in results)."""

    def __init__(self, message: str, section: Section):
        super().__init__(message)
        self.section = section


class MissingInput(RuntimeError):
    """A stage lacks the fitted models it works on (the quality stage's). When the quality stage
    did not finish ok (stopped by its budget, failed, switched off), the runner records the stage
    as skipped with that reason; otherwise as failed."""


def deep_merge(into: dict, new: dict) -> dict:
    """Merge ``new`` into ``into`` in place (dicts merge recursively, anything else replaces)."""
    for key, val in new.items():
        if isinstance(val, dict) and isinstance(into.get(key), dict):
            deep_merge(into[key], val)
        else:
            into[key] = val
    return into


class RunContext:
    """The run as a stage sees it.

    Attributes
    ----------
    cfg : dict
        The resolved config.
    data : Interactions
        The dataset (users x items).
    split : Split
        The main split (``dataset.protocol``).
    fitted, best_params, valid_scores : dict
        By model name: the quality stage's fitted models, their tuned parameters and validation
        scores (other stages reuse them).
    per_user : dict
        By model name: the quality stage's per-user test metric arrays of that fitted model
        (``evaluate(..., per_user=True)``; the strata stage splits them by user).
    log : Log
        The run's writer (``say``, ``task``, ``steps``).
    results : dict
        Read-only view of what earlier stages produced (e.g. training figures).
    """

    def __init__(self, cfg: dict, data, split, log: Log, results: dict):
        self.cfg = with_engines(cfg)  # the [engines] section applied to every model once
        self.data = data
        self.split = split
        self.log = log
        self.results = results
        self.seed = int(cfg["run"]["seed"])
        self.threads = int(cfg["run"]["threads"])
        self.ks = [int(k) for k in cfg["run"]["k"]]
        self.fitted: dict = {}
        self.best_params: dict = {}
        self.valid_scores: dict = {}
        self.per_user: dict = {}
        # the Section a stage is filling, when it registers one (``ctx.partial = out``): a stage
        # stopped at its time budget keeps what it put there (the runner resets it per stage)
        self.partial: Section | None = None
        self._splits: dict = {split.protocol: split}
        run = results.setdefault("run", {}) if isinstance(results, dict) else {}
        run["engines"] = {**dict(cfg.get("engines") or {}), "models": {
            n: {k: spec["params"][k] for k in ("engine", "workers") if k in spec["params"]}
            for n, spec in self.cfg.get("models", {}).items()}}

    def say(self, msg: str) -> None:
        self.log.say(msg)

    # ------------------------------------------------------------------ models
    def model_class(self, name: str):
        return MODELS[self.cfg["models"][name]["kind"]]

    def family(self, name: str) -> str:
        return self.model_class(name).family

    def model_specs(self, families=None):
        """``(name, spec)`` of configured models, optionally of these families only."""
        for name, spec in self.cfg["models"].items():
            if families is None or self.family(name) in families:
                yield name, spec

    def tuned_params(self, name: str) -> dict:
        """A copy of the best parameters found for ``name``, or its configured ones."""
        return dict(self.best_params.get(name, self.cfg["models"][name].get("params", {})))

    def build(self, name: str, params: dict | None = None, **override):
        spec = self.cfg["models"][name]
        p = dict(spec.get("params", {}) if params is None else params)
        p.update(override)
        spark_defaults(p, self.cfg)
        return build_model(spec["kind"], name, p, self.seed, self.threads, progress=False)

    def fitted_on(self, split, reuse: bool, name: str, **override):
        """The fitted model ``name`` (reused when trained on ``split``), else a refit with its
        best parameters plus ``override``."""
        if reuse and not override and name in self.fitted:
            return self.fitted[name]
        params = self.tuned_params(name)
        params.update(override)
        return self.build(name, params).fit(split.train, valid=split.valid)

    def softmax_names(self) -> list:
        return [n for n, _ in self.model_specs(("softmax",))]

    def best_softmax(self, among=None) -> str | None:
        names = [n for n in (among or self.softmax_names()) if n in self.valid_scores]
        return max(names, key=lambda n: self.valid_scores[n]) if names else None

    # ------------------------------------------------------------------ splits
    def split_for(self, protocol: str, **options):
        """The split of the main dataset under ``protocol`` (cached)."""
        if protocol not in self._splits:
            self._splits[protocol] = make_split(self.data, protocol, seed=self.seed, **options)
        return self._splits[protocol]

    def cold_split(self):
        """The strong split for the cold-start stages, and whether it is the main split (so its
        fitted models can be reused)."""
        if self.split.protocol == "strong":
            return self.split, True
        return self.split_for("strong"), False
