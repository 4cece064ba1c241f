"""Folding stage: leakage and Xin's score on a probe with known groups; models whose class sweeps
``w0`` (WALS) against w0 at each dim, models that sweep ``dim`` (each softmax variant) against the
embedding dimension, next to Recall@10; ``reference`` models (popularity) once; plus a small
sample of query and item embeddings for the report's PCA picture."""

from __future__ import annotations

import numpy as np

from mfsoftmax.datasets import make_split, twin
from mfsoftmax.evaluation import evaluate
from mfsoftmax.folding import folding_metrics, pca2
from mfsoftmax.ranking import Queries

from ..context import RunContext, Section
from ..data import load_dataset

#: this stage's config sections and their defaults (bench/config.py assembles them)
DEFAULTS = {
    # groups: also sweep w0 on planted-groups probes with these group counts at regime_dims
    # (synthetic data): where raising w0 helps and where it hurts. w0 = 0 fits directly.
    "folding": {"probe": "auto", "k": 10, "w0": [0.0, 0.0001, 0.001, 0.01, 0.1, 1.0],
                "variants": [], "dims": [], "dataset_params": {}, "groups": [],
                "regime_dims": []},
}
#: what ``--quick`` shrinks them to (a smoke run)
QUICK = {"folding": {"w0": [0.001, 0.1], "dims": [], "groups": []}}


def probe_data(ctx: RunContext):
    """The planted-groups data itself (or a variant from ``folding.dataset_params``), else the
    ``twin`` of the dataset (disjoint-union probe)."""
    fcfg = ctx.cfg["folding"]
    data = ctx.data
    probe = fcfg.get("probe", "auto")
    ds = ctx.cfg["dataset"]
    if probe == "twin" or (probe == "auto" and data.user_groups is None):
        return twin(data), "twin"
    if data.user_groups is None:
        raise RuntimeError(f"folding.probe = {probe!r} needs planted groups; {data.name} has none")
    if fcfg.get("dataset_params"):  # loaded as the run's data is (bench/data.py)
        return load_dataset(ds, ctx.seed, {**ds["params"], **fcfg["dataset_params"]})[0], "planted"
    return data, "planted"


def _measure(model, split, data, k, per_user: dict | None = None):
    """Folding metrics of ``model`` on the probe's test users, and their recall@10: the mean of
    ``per_user["recall@10"]`` (the quality stage's per-user arrays of this very model on this
    split: the same figure, not scored again) when given, else scored here."""
    test = split.test
    fold = folding_metrics(model, test.users, test.history, data.user_groups[test.users],
                           data.item_groups, k=k, known=test.known_users)
    if per_user is not None and "recall@10" in per_user:
        fold["recall@10"] = float(np.mean(per_user["recall@10"]))
    else:
        fold["recall@10"] = evaluate(model, test, ks=(10,))["recall@10"]
    return fold


def _embedding_sample(model, split, data, n: int, rng) -> dict | None:
    if not (hasattr(model, "query_embeddings") and hasattr(model, "item_embeddings")):
        return None
    users = np.sort(rng.choice(split.test.users, size=min(n, len(split.test)), replace=False))
    rows = np.searchsorted(split.test.users, users)
    q = np.asarray(model.query_embeddings(Queries(users, split.test.history[rows], split.test.known_users)))
    items = np.sort(rng.choice(data.n_items, size=min(n, data.n_items), replace=False))
    v = np.asarray(model.item_embeddings())[items]
    # store the joint 2-D PCA projection of the sample, not d-dim vectors (keeps results small)
    xy, var = pca2(np.vstack([q, v]).astype(np.float64))
    return {"query": np.round(xy[:len(q)], 4).tolist(), "query_group": data.user_groups[users].tolist(),
            "item": np.round(xy[len(q):], 4).tolist(), "item_group": data.item_groups[items].tolist(),
            "projection": "pca-2d", "explained_variance": np.round(var, 4).tolist(),
            "dim": int(q.shape[1])}


def run(ctx: RunContext) -> Section:
    probe = _Probe(ctx)
    ctx.say(f"  folding probe {probe.label}: {probe.data.n_users} users x {probe.data.n_items} "
            f"items, {int(probe.data.user_groups.max()) + 1} groups")
    for name in probe.sweeping("reference"):  # popularity: the level of a non-personal list
        res = probe.measure(probe.fit(name))
        entry = probe.out.model(name)
        if name not in ctx.results["models"]:
            entry["family"] = ctx.family(name)
        entry["folding"] = {"probe": probe.label, **res}
    variants = ctx.cfg["folding"].get("variants") or probe.sweeping("dim")
    task = ctx.log.task("folding fits", probe.n_fits(variants))
    sweeps = probe.out.sweeps
    sweeps["folding_vs_w0"] = _w0_rows(probe, task)
    if ctx.cfg["folding"].get("groups"):
        sweeps["folding_regimes"] = _regimes(ctx, probe.sweeping("w0"), probe.w0s_for, probe.k)
    sweeps["folding_vs_variant"] = _variant_rows(probe, variants, task)
    task.close()
    _keep_embeddings(probe, sweeps["folding_vs_variant"])
    return probe.out


class _Probe:
    """The folding stage's probe (:func:`probe_data`), its split, and what the stage gathers on
    it: the Section, the embedding samples and each model's embedding role."""

    def __init__(self, ctx: RunContext):
        self.ctx, self.fcfg = ctx, ctx.cfg["folding"]
        self.k = int(self.fcfg["k"])
        self.data, kind = probe_data(ctx)
        self.reuse = self.data is ctx.data  # the main dataset's groups: its split and models
        self.split = ctx.split if self.reuse else make_split(self.data, "holdout", seed=ctx.seed)
        self.rng = np.random.default_rng(ctx.seed)
        self.label = f"{kind}:{self.data.name}"
        self.out = Section()
        self.samples: dict = {}
        self.roles: dict = {}

    def fit(self, name: str, **override):
        """``name`` with its tuned params and ``override``, fitted on the probe (the quality
        stage's fit when the probe is the main dataset and nothing is overridden)."""
        ctx = self.ctx
        params = ctx.tuned_params(name)
        if (self.reuse and name in ctx.fitted
                and all(params.get(k) == v for k, v in override.items())):
            return ctx.fitted[name]
        params.update(override)
        return ctx.build(name, params).fit(self.split.train, valid=self.split.valid)

    def measure(self, model) -> dict:
        ctx = self.ctx
        quality = next((ctx.per_user.get(n) for n, m in ctx.fitted.items() if m is model), None)
        return _measure(model, self.split, self.data, self.k, quality if self.reuse else None)

    def sample(self, name: str, model) -> None:
        """Keep a sample of ``model``'s embeddings for the PCA picture."""
        self.samples[name] = _embedding_sample(model, self.split, self.data, 300, self.rng)

    def sweeping(self, kind: str) -> list:
        """The configured models whose class sweeps ``kind`` (``w0``, ``dim``, ``reference``)."""
        ctx = self.ctx
        return [n for n, _ in ctx.model_specs() if ctx.model_class(n).suite.folding_sweep == kind]

    def dims_for(self, tuned_dim) -> list:
        """``folding.dims`` plus the model's tuned dim ([None] when neither is set)."""
        extra = {int(d) for d in self.fcfg.get("dims") or []}
        return sorted(extra | ({int(tuned_dim)} if tuned_dim else set())) or [None]

    def w0s_for(self, tuned: dict) -> list:
        chosen = tuned.get("w0")
        return sorted(set(float(w) for w in self.fcfg["w0"]) | ({float(chosen)} if chosen else set()))

    def n_fits(self, variants: list) -> int:
        """How many fits the w0 and variant sweeps make (the progress total)."""
        tuned = self.ctx.tuned_params
        total = sum(len(self.dims_for(tuned(n).get("dim"))) * len(self.w0s_for(tuned(n)))
                    for n in self.sweeping("w0"))
        return total + sum(len(self.dims_for(tuned(n).get("dim"))) for n in variants
                           if n in self.ctx.cfg["models"])


def _w0_rows(probe: _Probe, task) -> list:
    """Leakage and Recall@10 of each model that sweeps w0, at each w0 and dim."""
    ctx, rows = probe.ctx, []
    for name in probe.sweeping("w0"):
        tuned = ctx.tuned_params(name)
        chosen, chosen_dim = tuned.get("w0"), tuned.get("dim")
        w0s = probe.w0s_for(tuned)
        # folding needs more groups than dimensions: sweep w0 at the tuned dim and the small ones
        w0_params = ctx.model_class(name).w0_params
        for dim in probe.dims_for(chosen_dim):
            for w0 in w0s:
                model = probe.fit(name, **w0_params(w0), **({"dim": dim} if dim else {}))
                res = probe.measure(model)
                rows.append({"model": name, "w0": w0, "dim": dim, **res})
                task.step(f"{name} w0={w0:g} d={dim}")
                if (chosen is not None and np.isclose(w0, float(chosen)) and dim == chosen_dim
                        and name in ctx.results["models"]):
                    probe.out.model(name)["folding"] = {"probe": probe.label, **res}
                    probe.sample(name, model)
                probe.roles[name] = model.embedding_role()
    return rows


def _variant_rows(probe: _Probe, variants: list, task) -> list:
    """Leakage and Recall@10 of each variant (each softmax model) at each dim."""
    ctx, rows = probe.ctx, []
    for name in variants:
        if name not in ctx.cfg["models"]:
            raise RuntimeError(f"folding.variants: {name!r} is not a configured model")
        best_dim = ctx.tuned_params(name).get("dim")
        for dim in probe.dims_for(best_dim):
            model = probe.fit(name, **({"dim": dim} if dim else {}))
            res = probe.measure(model)
            rows.append({"variant": name, "dim": dim, **res})
            task.step(f"{name} d={dim}")
            if dim == best_dim or dim is None:
                if name in ctx.results["models"]:
                    probe.out.model(name)["folding"] = {"probe": probe.label, **res}
                probe.sample(name, model)
                probe.roles[name] = model.embedding_role()
    return rows


def _keep_embeddings(probe: _Probe, rows: list) -> None:
    """Embeddings for the PCA picture: MF, the DNNs without negatives, and the best DNN with
    negatives (each model's embedding_role says which it is)."""
    ctx, roles, samples = probe.ctx, probe.roles, probe.samples
    dnn_rows = [r for r in rows if r["dim"] == ctx.tuned_params(r["variant"]).get("dim", r["dim"])]
    neg = [r for r in dnn_rows if roles.get(r["variant"]) == "negatives"]
    keep = [n for n in samples if roles.get(n) in ("mf", "no-negatives")]
    if neg:
        keep.append(max(neg, key=lambda r: r["recall@10"])["variant"])
    for name in keep:
        if samples.get(name) and name in ctx.results["models"]:
            probe.out.model(name)["embeddings"] = {**samples[name], "role": roles[name]}


def _regimes(ctx: RunContext, names: list, w0s_for, k: int) -> list:
    """Leakage@k and Recall@10 against w0 on planted-groups probes with ``folding.groups`` groups
    at each of ``folding.regime_dims`` (else the swept dims): the regime, groups per dimension,
    where raising w0 helps or hurts. Synthetic data only (the probe is regenerated per count)."""
    fcfg, ds = ctx.cfg["folding"], ctx.cfg["dataset"]
    if ds["name"] != "synthetic":
        raise RuntimeError("folding.groups regenerates the planted-groups probe: it needs the "
                           f"synthetic dataset, not {ds['name']!r}")
    dims = [int(d) for d in (fcfg.get("regime_dims") or fcfg.get("dims") or [])]
    if not dims:
        raise RuntimeError("folding.groups needs folding.regime_dims (or folding.dims)")
    jobs = [(g, n, d, w0) for g in fcfg["groups"] for n in names for d in dims
            for w0 in w0s_for(ctx.tuned_params(n))]
    task = ctx.log.task("folding regimes", len(jobs))
    rows, probes = [], {}
    for g, name, dim, w0 in jobs:
        if g not in probes:  # loaded as the run's data is (bench/data.py), with g groups
            data = load_dataset(ds, ctx.seed, {**ds["params"], **fcfg.get("dataset_params", {}),
                                               "n_groups": int(g)})[0]
            probes[g] = (data, make_split(data, "holdout", seed=ctx.seed))
        data, split = probes[g]
        params = {**ctx.tuned_params(name), **ctx.model_class(name).w0_params(w0), "dim": dim}
        model = ctx.build(name, params).fit(split.train, valid=split.valid)
        res = _measure(model, split, data, k)
        rows.append({"model": name, "n_groups": int(g), "dim": dim, "groups_per_dim": g / dim,
                     "w0": float(w0), **res})
        task.step(f"{g} groups d={dim} w0={w0:g}")
    task.close()
    return rows
