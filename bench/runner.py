"""The suite's stages. One :class:`Runner` holds the data, the split, the fitted models and the
results dict (RESULTS.md); each stage fills its part, and a failing stage is recorded as failed
without touching what the others measured."""

from __future__ import annotations

import inspect
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from mfsoftmax.evaluation import evaluate, paired_standard_errors, standard_errors
from mfsoftmax.runtime import to_jsonable

from .config import STAGES
from .progress import Log
from .schema import SCHEMA_VERSION, feature_pairs

# Stages that need side information the dataset may lack; skipped (with the reason) without it.
STAGE_NEEDS = {"ablation": "user_features", "cold_start_items": "item_features"}


def build_model(kind: str, name: str, params: dict, seed: int, threads: int, progress: bool = False):
    """Instantiate the model class registered as ``kind`` with ``params``; its name is ``name``."""
    from mfsoftmax.models import MODELS

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


def paired_rows(per_users: dict, **extra) -> list:
    """``[{"a", "b", **extra, "n_users", metric: se of the per-user difference a - b}]`` for
    every pair of models evaluated on the same users (a before b in ``per_users`` order)."""
    names = list(per_users)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            se = paired_standard_errors(per_users[a], per_users[b])
            n = len(next(iter(per_users[a].values()), ()))
            rows.append({"a": a, "b": b, **extra, "n_users": int(n), **se})
    return rows


def paired_rows_by_point(per: dict, n_known) -> list:
    """``paired_rows`` at every point of a cold-start curve (``per``: {model: {n_known: per-user
    arrays}}, as the curves return it), each row with its ``n_known``."""
    return [row for n in n_known
            for row in paired_rows({name: p[int(n)] for name, p in per.items()}, n_known=int(n))]


def add_lift_se(rows: list, pers: list) -> None:
    """Give each ablation row with user features, whose model also has a row without them and
    the same history setting, ``lift_se``: the standard error of the per-user difference (with
    - without features) of each metric, warm and at 0 items (same users, paired)."""
    for i, j in feature_pairs(rows):
        rows[i]["lift_se"] = paired_standard_errors(pers[i], pers[j])


class Runner:
    """Runs the configured stages and accumulates ``results``."""

    def __init__(self, cfg: dict, run_dir: Path):
        from mfsoftmax.runtime import pin_threads, run_info

        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.seed = int(cfg["run"]["seed"])
        self.threads = int(cfg["run"]["threads"])
        self.ks = [int(k) for k in cfg["run"]["k"]]
        progress = cfg["run"].get("progress")
        self.progress = sys.stderr.isatty() if progress is None else bool(progress)
        self.log = Log(self.progress)
        threads = pin_threads(self.threads)
        info = run_info(self.seed, cfg, threads)
        self.results = {
            "schema_version": SCHEMA_VERSION,
            "run": {"id": self.run_dir.name, **info, "finished_at": None, "status": "running"},
            "dataset": {},
            "models": {},
            "sweeps": {},
            "stages": {},
        }
        self.fitted: dict = {}
        self.best_params: dict = {}
        self.valid_scores: dict = {}
        self._splits: dict = {}
        self.write_error: str | None = None
        self.saved_once = False

    # ------------------------------------------------------------------ setup
    def say(self, msg: str) -> None:
        self.log.say(msg)

    def prepare(self) -> None:
        from mfsoftmax.datasets import DatasetError, load, make_split

        ds = self.cfg["dataset"]
        t0 = time.perf_counter()
        self.data = load(ds["name"], data_dir=ds["data_dir"], min_rating=ds["min_rating"],
                         min_user=ds["min_user"], min_item=ds["min_item"],
                         **self._dataset_params(ds["name"], ds["params"]))
        self.split = make_split(self.data, ds["protocol"], seed=self.seed, **ds["split"])
        for label, part in (("test", self.split.test), ("validation", self.split.valid)):
            if len(part) == 0:
                raise DatasetError(
                    f"{self.data.name}: the {ds['protocol']} split has 0 {label} users "
                    f"({self.data.n_users} users, {self.data.n_interactions} interactions); "
                    "nothing to evaluate: use more data or change dataset.split")
        self._splits[ds["protocol"]] = self.split
        self.results["dataset"] = {
            "name": self.data.name, "n_users": self.data.n_users, "n_items": self.data.n_items,
            "n_interactions": self.data.n_interactions, "density": self.data.density,
            "protocol": ds["protocol"], "k": self.ks, "split": self.split.describe(),
            "stats": self.data.stats(), "load_s": time.perf_counter() - t0,
        }
        self.say(f"dataset {self.data.name}: {self.data.n_users} users x {self.data.n_items} items, "
                 f"{self.data.n_interactions} interactions; protocol {ds['protocol']}")

    def _dataset_params(self, name: str, params: dict) -> dict:
        params = dict(params)
        if name == "synthetic":
            params.setdefault("seed", self.seed)
        return params

    def split_for(self, protocol: str, **options):
        """The split of the main dataset under ``protocol`` (cached)."""
        from mfsoftmax.datasets import make_split

        if protocol not in self._splits:
            self._splits[protocol] = make_split(self.data, protocol, seed=self.seed, **options)
        return self._splits[protocol]

    # ----------------------------------------------------------------- stages
    def run_all(self) -> None:
        order = [
            ("quality", self.stage_quality),  # includes tuning and training cost
            ("serving", self.stage_serving),
            ("ablation", self.stage_ablation),
            ("hashing", self.stage_hashing),
            ("cold_start_users", self.stage_cold_users),
            ("cold_start_items", self.stage_cold_items),
            ("folding", self.stage_folding),
            ("offline_topk", self.stage_offline_topk),
            ("serving_vs_corpus", self.stage_serving_vs_corpus),
            ("training_vs_size", self.stage_training_vs_size),
        ]
        enabled = [(n, f) for n, f in order if self.cfg["stages"].get(n, True)]
        if not self.cfg["stages"].get("training", True):
            self.say("note: training cost is measured inside the quality stage")
        self.save()  # the dataset section is on disk before the first stage
        for name, fn in self.log.steps(enabled, "stages", label=lambda x: x[0]):
            self.run_stage(name, fn)

    def skip_reason(self, name: str) -> str | None:
        """Why stage ``name`` cannot run on this dataset (None when it can)."""
        needs = STAGE_NEEDS.get(name)
        if needs == "user_features" and not self.data.user_features:
            return f"{self.data.name} has no user features (the ablation removes them)"
        if needs == "item_features" and not self.data.item_features:
            return f"{self.data.name} has no item features (a new item is embedded from them)"
        return None

    def run_stage(self, name: str, fn) -> None:
        """Run one stage, record its status, and write results.json (atomically) after it."""
        t0 = time.perf_counter()
        reason = self.skip_reason(name)
        if reason:
            self.results["stages"][name] = {"status": "skipped", "error": None, "wall_s": 0.0,
                                            "reason": reason}
            self.say(f"stage {name}: skipped: {reason}")
            self.save()
            return
        self.say(f"stage {name} ...")
        entry = {"status": "running", "error": None, "wall_s": None}
        self.results["stages"][name] = entry
        try:
            fn()
            entry["status"] = "ok"
        except KeyboardInterrupt:
            entry["status"] = "interrupted"
            entry["error"] = "KeyboardInterrupt"
            raise
        except Exception as exc:  # recorded, the run goes on
            entry["status"] = "failed"
            entry["error"] = f"{type(exc).__name__}: {exc}"
            self.log.say(traceback.format_exc().rstrip())
            self.say(f"stage {name} FAILED: {entry['error']}")
        finally:
            entry["wall_s"] = time.perf_counter() - t0
            self.say(f"stage {name}: {entry['status']} in {entry['wall_s']:.1f}s")
            if entry["status"] != "interrupted":
                self.save()

    def model_specs(self, kinds=None):
        for name, spec in self.cfg["models"].items():
            if kinds is None or spec["kind"] in kinds:
                yield name, spec

    def tuned_params(self, name: str) -> dict:
        """A copy of the best parameters found for ``name``, or its configured ones."""
        return dict(self.best_params.get(name, self.cfg["models"][name].get("params", {})))

    def build(self, name: str, params: dict | None = None, **override):
        spec = self.cfg["models"][name]
        p = dict(spec.get("params", {}) if params is None else params)
        p.update(override)
        return build_model(spec["kind"], name, p, self.seed, self.threads, progress=False)

    def family(self, name: str) -> str:
        from mfsoftmax.models import MODELS

        return MODELS[self.cfg["models"][name]["kind"]].family

    # ------------------------------------------------------ quality + training
    def stage_quality(self) -> None:
        from .measure import timed_fit
        from .tuning import random_search

        split = self.split
        metric = self.cfg["tuning"]["metric"]
        trials = int(self.cfg["tuning"]["trials"])
        curve_users = split.valid.subset(np.arange(min(len(split.valid), 2000)))
        pop = split.train.item_popularity()

        def curve_fn(m):
            return evaluate(m, curve_users, ks=(10,))["recall@10"]

        failures, per_users = [], {}
        for name, spec in self.model_specs():
            self.say(f"  {name}: {trials} trial(s) of random search on validation {metric}")
            try:
                def fit_and_score(params, name=name):
                    model = self.build(name, params)
                    training = timed_fit(model, split.train, split.valid, curve_fn=curve_fn)
                    valid = evaluate(model, split.valid, ks=self.ks)
                    return valid[metric], (model, training, valid)

                search = random_search(fit_and_score, spec.get("params", {}), spec.get("search", {}),
                                       trials, self.seed, where=f"models.{name}.search")
                model, training, valid = search["best_payload"]
                test, per_user = evaluate(model, split.test, ks=self.ks, item_popularity=pop,
                                          per_user=True)
            except Exception as exc:
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
                traceback.print_exc()
                continue
            per_users[name] = per_user
            self.fitted[name] = model
            self.best_params[name] = search["best_params"]
            self.valid_scores[name] = search["best_score"]
            self.results["models"][name] = {
                "family": model.family,
                "params": to_jsonable(model.get_params() or search["best_params"]),
                "quality": {k: v for k, v in test.items() if k != "n_users"},
                "quality_se": standard_errors(per_user),
                "n_test_users": test["n_users"],
                "validation": {k: v for k, v in valid.items() if k != "n_users"},
                "training": training,
                "tuning": {"trials": len(search["trials"]), "search_s": search["search_s"],
                           "metric": metric, "best_params": to_jsonable(search["best_params"]),
                           "best_valid": search["best_score"], "history": to_jsonable(search["trials"])},
            }
            self.say(f"  {name}: test recall@20 {test.get('recall@20', float('nan')):.4f}, "
                     f"train {training['wall_s']:.2f}s")
        self.results["quality_paired_se"] = paired_rows(per_users)
        if failures:
            raise RuntimeError("; ".join(failures))

    # ----------------------------------------------------------------- serving
    def stage_serving(self) -> None:
        from mfsoftmax.models import Queries

        from .serving import serving_profile

        scfg = self.cfg["serving"]
        train = self.split.train
        active = np.flatnonzero(train.user_activity() > 0)
        rng = np.random.default_rng(self.seed)
        users = np.sort(rng.choice(active, size=min(len(active), int(scfg["queries"])), replace=False))
        known_q = Queries(users, train.matrix[users], known=True)
        test = self.split.test
        new_q = Queries(test.users, test.history, known=test.known_users)
        rows = []
        for name, model in self.fitted.items():
            fam = model.family
            if fam == "mf":
                prof = serving_profile(model, known_q, scfg, "known-user")
                rows.append({"model": name, **prof})
                if not test.known_users:
                    rows.append({"model": name, **serving_profile(model, new_q, scfg, "fold-in")})
            elif fam == "softmax":
                prof = serving_profile(model, known_q, scfg, "query-tower")
                rows.append({"model": name, **prof})
            else:
                prof = serving_profile(model, known_q, scfg, "lookup")
                rows.append({"model": name, **prof})
            self.results["models"][name]["serving"] = prof
            self.say(f"  {name}: p50 {prof['p50_us']:.0f} us ({prof['mode']})")
        self.results["serving"] = rows

    # ---------------------------------------------------------------- ablation
    def _softmax_names(self):
        return [n for n, s in self.model_specs() if self.family(n) == "softmax"]

    def _best_softmax(self, among=None) -> str | None:
        names = [n for n in (among or self._softmax_names()) if n in self.valid_scores]
        return max(names, key=lambda n: self.valid_scores[n]) if names else None

    def _cold_split(self):
        if self.split.protocol == "strong":
            return self.split, True
        return self.split_for("strong"), False

    def _fitted_on(self, split, reuse: bool, name: str, **override):
        """The fitted model ``name`` (reused when trained on ``split``), else a refit with its
        best parameters plus ``override``."""
        if reuse and not override and name in self.fitted:
            return self.fitted[name]
        params = self.tuned_params(name)
        params.update(override)
        return self.build(name, params).fit(split.train, valid=split.valid)

    def stage_ablation(self) -> None:
        from .coldstart import new_user_curve

        base = self.cfg["ablation"].get("base") or self._best_softmax()
        if base is None:
            raise RuntimeError("no fitted softmax model to ablate")
        split, reuse = self._cold_split()
        variants = [("history", True, False), ("user features", False, True), ("both", True, True)]
        rows, pers = [], []
        for label, hist, feats in variants:
            model = self._fitted_on(split, reuse and hist and feats, base,
                                    **({} if hist and feats else {"use_history": hist,
                                                                   "use_user_features": feats}))
            rows.append(self._ablation_row(base, model, split, hist, feats, new_user_curve, label, pers))
        inputs = {"wals": (True, False, "interactions; user features only through the zero-history heuristic"),
                  "popularity": (None, None, "none (item popularity)"),
                  "feature-popularity": (None, True, "user features only (popularity per feature value)")}
        for name, spec in self.model_specs(tuple(inputs)):
            if name in self.best_params:
                model = self._fitted_on(split, reuse, name)
                hist, feats, label = inputs[spec["kind"]]
                rows.append(self._ablation_row(name, model, split, hist, feats, new_user_curve, label, pers))
        add_lift_se(rows, pers)
        self.results["ablation"] = rows

    def stage_hashing(self) -> None:
        """The DNN's memory lever: the base softmax model refitted on the main split with its
        tables hashed into a share of the item count (``hashing.fractions``; 1 = exact), for
        each ``hashing.scopes`` (``inputs``: history and user-feature tables only; ``all``: the
        item side too)."""
        from .measure import timed_fit

        hcfg = self.cfg["hashing"]
        base = hcfg.get("base") or self._best_softmax()
        if base is None:
            raise RuntimeError("no fitted softmax model to hash")
        split = self.split
        n = split.train.n_items
        points = []
        for frac in hcfg["fractions"]:
            if float(frac) >= 1.0:
                points.append(("exact", None, 1.0))
            else:
                points += [(scope, max(1, int(round(float(frac) * n))), float(frac))
                           for scope in hcfg["scopes"]]
        rows = []
        for scope, buckets, frac in points:
            if buckets is None and base in self.fitted:  # the exact tables: the quality stage's fit
                model, training = self.fitted[base], self.results["models"][base]["training"]
            else:
                extra = {} if buckets is None else {"hash_buckets": buckets, "hash_scope": scope}
                model = self.build(base, self.tuned_params(base), **extra)
                training = timed_fit(model, split.train, split.valid)
            res = evaluate(model, split.test, ks=(10, 20))
            rows.append({"model": base, "scope": scope, "fraction": frac, "buckets": buckets or n,
                         "embedding_mb": model.embedding_bytes() / 2**20,
                         "parameters": model.n_parameters(),
                         "recall@10": res["recall@10"], "recall@20": res["recall@20"],
                         "ndcg@20": res["ndcg@20"], "wall_s": training["wall_s"],
                         "peak_rss_mb": training["peak_rss_mb"], "epochs": training["epochs"]})
            tables = "exact tables" if buckets is None else f"{scope} hashed into {buckets} rows"
            self.say(f"  {base}, {tables}: recall@20 {res['recall@20']:.4f}, "
                     f"{rows[-1]['embedding_mb']:.2f} MB of embeddings")
        self.results["sweeps"]["hashing"] = rows

    def _ablation_row(self, name, model, split, hist, feats, curve, label, pers) -> dict:
        """One ablation row; its per-user warm and 0-item arrays are appended to ``pers``."""
        res, warm = evaluate(model, split.test, ks=(20,), per_user=True)
        cold, cold_per = curve({name: model}, split.test, n_known=(0,), ks=(20,), seed=self.seed,
                               per_user=True)
        cold = cold[name][0]
        pers.append({**{k: warm[k] for k in ("recall@20", "ndcg@20")},
                     **{f"cold_{k}": cold_per[name][0][k] for k in ("recall@20", "ndcg@20")}})
        return {"model": name, "inputs": label, "family": model.family, "history": hist,
                "user_features": feats,
                "recall@20": res["recall@20"], "ndcg@20": res["ndcg@20"],
                "cold_recall@20": cold["recall@20"], "cold_ndcg@20": cold["ndcg@20"]}

    # -------------------------------------------------------------- cold start
    def stage_cold_users(self) -> None:
        from .coldstart import new_user_curve

        split, reuse = self._cold_split()
        # on a strong split the fitted models serve as they are: every model gets its curve;
        # otherwise only the configured ones are refitted on a strong split
        names = (list(self.best_params) if reuse else
                 self.cfg["cold_start"].get("models") or list(self.best_params))
        models = {n: self._fitted_on(split, reuse, n) for n in names if n in self.best_params}
        curves, per = new_user_curve(models, split.test, n_known=self.cfg["cold_start"]["n_known_users"],
                                     ks=(10, 20), seed=self.seed, per_user=True)
        for name, rows in curves.items():
            self.results["models"][name].setdefault("cold_start", {})["users"] = rows
        # every pair of models at every point: the same users, so their gaps pair
        self.results["cold_users_paired_se"] = paired_rows_by_point(per, self.cfg["cold_start"]["n_known_users"])
        if self.cfg["cold_start"]["split_seeds"]:
            self.results["sweeps"]["cold_start_seeds"] = self._cold_seeds(names, curves if reuse else None)

    def _cold_seeds(self, names: list, own_curves: dict | None) -> list:
        """Recall@10/20 of new users with 0 revealed items on strong splits drawn with each of
        ``cold_start.split_seeds`` for ``cold_start.seed_models`` (else ``cold_start.models``,
        else ``names``) plus the two popularity baselines, refitted with their tuned parameters;
        the run's own split takes its points from ``own_curves`` (the stage's curves on it, None
        when the main split is not strong). One split's 0-item comparison is within noise."""
        from mfsoftmax.datasets import make_split

        from .coldstart import new_user_curve

        cs = self.cfg["cold_start"]
        names = cs.get("seed_models") or cs.get("models") or names
        names = [n for n in dict.fromkeys(["popularity", "feature-popularity", *names])
                 if n in self.best_params]
        opts = self.cfg["dataset"]["split"] if self.split.protocol == "strong" else {}
        rows = []
        for s in cs["split_seeds"]:
            if own_curves is not None and int(s) == self.seed:
                curves = {n: own_curves[n] for n in names}
            else:
                split = make_split(self.data, "strong", seed=int(s), **opts)
                models = {n: self._fitted_on(split, False, n) for n in names}
                # the curve's users (enough items for its largest n_known), at the 0 point only
                curves = new_user_curve(models, split.test, n_known=(0,), ks=(10, 20), seed=int(s),
                                        min_items=max(cs["n_known_users"]))
            for name, pts in curves.items():
                p = next(q for q in pts if q["n_known"] == 0)
                rows.append({"seed": int(s), "model": name, "recall@10": p["recall@10"],
                             "recall@20": p["recall@20"], "n_users": p["n_users"]})
            self.say(f"cold start, split seed {s}: " + ", ".join(
                f"{r['model']} {r['recall@20']:.3f}" for r in rows if r["seed"] == int(s)))
        return rows

    def stage_cold_items(self) -> None:
        from .coldstart import new_item_curve

        split = self.split_for("new-items", item_frac=float(self.cfg["cold_start"]["item_frac"]))
        names = self.cfg["cold_start"].get("models") or list(self.best_params)
        models = {}
        names = [n for n in names if n in self.best_params]
        for name in self.log.steps(names, "new-item refits", plain=True):
            extra = {"item_tower": "add"} if self.family(name) == "softmax" else {}
            models[name] = self._fitted_on(split, False, name, **extra)
        curves, per = new_item_curve(models, split, n_known=self.cfg["cold_start"]["n_known_items"],
                                     ks=(10,), seed=self.seed, per_user=True)
        for name, rows in curves.items():
            self.results["models"][name].setdefault("cold_start", {})["items"] = rows
        self.results["cold_items_paired_se"] = paired_rows_by_point(per, self.cfg["cold_start"]["n_known_items"])

    # ----------------------------------------------------------------- folding
    def stage_folding(self) -> None:
        from .folding_stage import run_folding

        run_folding(self)

    # ------------------------------------------------------------------ sweeps
    def stage_offline_topk(self) -> None:
        from .sweeps import offline_topk

        mf = [n for n, m in self.fitted.items() if m.family == "mf"]
        if not mf:
            raise RuntimeError("no fitted MF model")
        model = self.fitted[mf[0]]
        self.results["offline_topk"] = {"model": mf[0], **offline_topk(
            model, self.split.train.n_users, k=int(self.cfg["offline_topk"]["k"]))}

    def stage_serving_vs_corpus(self) -> None:
        from .sweeps import serving_vs_corpus

        sw = self.cfg["sweeps"]
        self.results["sweeps"]["serving_vs_corpus"] = serving_vs_corpus(
            sw["corpus_sizes"], dim=int(sw["dim"]), n_queries=int(sw["queries"]), ann=sw["ann"],
            ann_ef=int(sw["ann_ef"]), seed=self.seed, time_budget_s=float(sw["time_budget_s"]),
            log=self.log)

    def stage_training_vs_size(self) -> None:
        from .sweeps import training_vs_size

        sw = self.cfg["sweeps"]
        builders = {}
        wals = [n for n, s in self.model_specs(("wals",))]
        if wals:
            n = wals[0]
            p = self.tuned_params(n)
            builders[n] = lambda n=n, p=p: self.build(n, {**p, "iterations": 1})
        dnn = sw.get("train_dnn")
        if dnn in self.cfg["models"]:
            p = self.tuned_params(dnn)
            builders[dnn] = lambda p=p: self.build(dnn, {**p, "epochs": 1})
        rows = training_vs_size(sw["train_sizes"], builders, n_items=int(sw["train_items"]),
                                seed=self.seed, time_budget_s=float(sw["time_budget_s"]))
        self.results["sweeps"]["training_vs_size"] = rows

    # ------------------------------------------------------------------ output
    def finish(self) -> None:
        from mfsoftmax.runtime import now_iso

        self.results["run"]["finished_at"] = now_iso()
        interrupted = False
        for entry in self.results["stages"].values():
            if entry["status"] in ("running", "interrupted"):
                entry["status"] = "interrupted"
                interrupted = True
        for name in STAGES:
            if name == "training":
                continue
            if name not in self.results["stages"] and self.cfg["stages"].get(name, True):
                self.results["stages"][name] = {"status": "not run", "error": None, "wall_s": 0.0}
        self.results["run"]["status"] = "interrupted" if interrupted else "complete"

    def write_results(self) -> Path:
        """Write results.json atomically (the previous file stays whole if this fails)."""
        from mfsoftmax.runtime import atomic_write_json

        path = self.run_dir / "results.json"
        atomic_write_json(path, self.results)
        return path

    def save(self) -> Path | None:
        """:meth:`write_results`, or None with ``write_error`` set when the disk refuses it (a
        full disk, a removed folder): the run goes on and the last good file is kept."""
        try:
            path = self.write_results()
        except OSError as exc:
            first = self.write_error is None
            self.write_error = f"{exc.strerror or exc}"
            if first:
                self.say(f"WARNING: could not write results.json: {self.write_error} "
                         "(the run goes on; the last file written is kept)")
            return None
        self.write_error = None
        self.saved_once = True
        return path

    def headline_text(self) -> str:
        """The report's headline verdicts, one line per textbook claim."""
        try:
            from mfsoftmax.reports.verdicts import headline

            rows = headline(to_jsonable(self.results))
        except Exception as exc:  # the summary must print even if a verdict cannot be read
            return f"\nheadline: not available ({type(exc).__name__}: {exc})"
        width = max(len(r.claim.title) for r in rows)
        return "\nheadline (textbook claim: verdict)\n" + "\n".join(
            f"  {r.claim.title:<{width}}  {r.line}" for r in rows)

    def summary_table(self) -> str:
        head = f"{'model':<32} {'recall@20':>9} {'ndcg@20':>8} {'train_s':>8} {'p50_us':>8} " \
               f"{'leak@10':>8} {'cold0_r@20':>10}"
        lines = [head, "-" * len(head)]
        for name, m in self.results["models"].items():
            q = m.get("quality", {})
            users = m.get("cold_start", {}).get("users", [])
            cold0 = next((r.get("recall@20") for r in users if r["n_known"] == 0), None)
            lines.append(
                f"{name:<32} {_fmt(q.get('recall@20'), 4):>9} {_fmt(q.get('ndcg@20'), 4):>8} "
                f"{_fmt(m.get('training', {}).get('wall_s'), 2):>8} "
                f"{_fmt(m.get('serving', {}).get('p50_us'), 0):>8} "
                f"{_fmt(m.get('folding', {}).get('leakage@10'), 3):>8} {_fmt(cold0, 4):>10}")
        st = ", ".join(f"{k}={v['status']}" for k, v in self.results["stages"].items())
        lines.append(f"\nstages: {st}")
        return "\n".join(lines)


def _fmt(v, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"
