"""The folding stage: leakage and Xin's score on a probe with known groups, WALS against w0 and
each softmax variant against the embedding dimension, next to Recall@10; plus a small sample of
query and item embeddings for the report's PCA picture."""

from __future__ import annotations

import numpy as np

from mfsoftmax.evaluation import evaluate
from mfsoftmax.folding import folding_metrics, pca2


def probe_data(runner):
    """The planted-groups data itself (or a variant from ``folding.dataset_params``), else the
    ``twin`` of the dataset (disjoint-union probe)."""
    from mfsoftmax.datasets import load, twin

    fcfg = runner.cfg["folding"]
    data = runner.data
    probe = fcfg.get("probe", "auto")
    ds = runner.cfg["dataset"]
    if probe == "twin" or (probe == "auto" and data.user_groups is None):
        return twin(data), "twin"
    if data.user_groups is None:
        raise RuntimeError(f"folding.probe = {probe!r} needs planted groups; {data.name} has none")
    if fcfg.get("dataset_params"):
        params = runner._dataset_params(ds["name"], {**ds["params"], **fcfg["dataset_params"]})
        return load(ds["name"], data_dir=ds["data_dir"], **params), "planted"
    return data, "planted"


def _measure(model, split, data, k):
    test = split.test
    fold = folding_metrics(model, test.users, test.history, data.user_groups[test.users],
                           data.item_groups, k=k, known=test.known_users)
    fold["recall@10"] = evaluate(model, test, ks=(10,))["recall@10"]
    return fold


def _embedding_sample(model, split, data, n: int, rng) -> dict | None:
    from mfsoftmax.models import Queries

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


def run_folding(runner) -> None:
    from mfsoftmax.datasets import make_split

    fcfg = runner.cfg["folding"]
    k = int(fcfg["k"])
    data, probe = probe_data(runner)
    reuse = data is runner.data  # the planted groups of the main dataset: its split and models
    split = runner.split if reuse else make_split(data, "holdout", seed=runner.seed)
    rng = np.random.default_rng(runner.seed)
    label = f"{probe}:{data.name}"
    runner.say(f"  folding probe {label}: {data.n_users} users x {data.n_items} items, "
               f"{int(data.user_groups.max()) + 1} groups")
    sweeps = runner.results["sweeps"]
    samples = {}

    def fit(name, **override):
        params = runner.tuned_params(name)
        if reuse and name in runner.fitted and all(params.get(k) == v for k, v in override.items()):
            return runner.fitted[name]
        params.update(override)
        return runner.build(name, params).fit(split.train, valid=split.valid)

    # popularity: the reference level of leakage for a non-personalised list
    for name, _ in runner.model_specs(("popularity",)):
        res = _measure(fit(name), split, data, k)
        runner.results["models"].setdefault(name, {"family": "baseline"})["folding"] = {"probe": label, **res}

    def dims_for(tuned_dim):
        """``folding.dims`` plus the model's tuned dim ([None] when neither is set)."""
        extra = {int(d) for d in fcfg.get("dims") or []}
        return sorted(extra | ({int(tuned_dim)} if tuned_dim else set())) or [None]

    def w0s_for(tuned):
        chosen = tuned.get("w0")
        return sorted(set(float(w) for w in fcfg["w0"]) | ({float(chosen)} if chosen else set()))

    variants = fcfg.get("variants") or runner._softmax_names()
    total = sum(len(dims_for(runner.tuned_params(n).get("dim"))) * len(w0s_for(runner.tuned_params(n)))
                for n, _ in runner.model_specs(("wals",)))
    total += sum(len(dims_for(runner.tuned_params(n).get("dim"))) for n in variants
                 if n in runner.cfg["models"])
    task = runner.log.task("folding fits", total)

    rows = []
    for name, _ in runner.model_specs(("wals",)):
        tuned = runner.tuned_params(name)
        chosen, chosen_dim = tuned.get("w0"), tuned.get("dim")
        w0s = w0s_for(tuned)
        # folding needs more groups than dimensions: sweep w0 at the tuned dim and the small ones
        for dim in dims_for(chosen_dim):
            for w0 in w0s:
                model = fit(name, w0=w0, **({"dim": dim} if dim else {}))
                res = _measure(model, split, data, k)
                rows.append({"model": name, "w0": w0, "dim": dim, **res})
                task.step(f"{name} w0={w0:g} d={dim}")
                if (chosen is not None and np.isclose(w0, float(chosen)) and dim == chosen_dim
                        and name in runner.results["models"]):
                    runner.results["models"][name]["folding"] = {"probe": label, **res}
                    samples[name] = _embedding_sample(model, split, data, 300, rng)
    sweeps["folding_vs_w0"] = rows

    rows = []
    for name in variants:
        if name not in runner.cfg["models"]:
            raise RuntimeError(f"folding.variants: {name!r} is not a configured model")
        best_dim = runner.tuned_params(name).get("dim")
        for dim in dims_for(best_dim):
            model = fit(name, **({"dim": dim} if dim else {}))
            res = _measure(model, split, data, k)
            rows.append({"variant": name, "dim": dim, **res})
            task.step(f"{name} d={dim}")
            if dim == best_dim or dim is None:
                if name in runner.results["models"]:
                    runner.results["models"][name]["folding"] = {"probe": label, **res}
                samples[name] = _embedding_sample(model, split, data, 300, rng)
    sweeps["folding_vs_variant"] = rows
    task.close()
    # embeddings for the PCA picture: WALS, positives-only, and the best negative-sampling DNN
    dnn_rows = [r for r in rows if r["dim"] == runner.tuned_params(r["variant"]).get("dim", r["dim"])]
    neg = [r for r in dnn_rows if "positives-only" not in r["variant"]]
    keep = [n for n in samples if runner.family(n) == "mf" or "positives-only" in n]
    if neg:
        keep.append(max(neg, key=lambda r: r["recall@10"])["variant"])
    for name in keep:
        if samples.get(name) and name in runner.results["models"]:
            runner.results["models"][name]["embeddings"] = samples[name]
