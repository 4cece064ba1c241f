"""Serving stage: single-query latency and batch throughput of every fitted model, on the path
its class declares (``suite.serving_modes``: known user, and new user where it differs). Every
(model, path) is measured in rounds that alternate across all of them (``serving_profiles``),
so a burst of load on a shared machine lands on one round of each rather than on one model.

Each row also carries the serving floor (``bench/floor.py``: a bare numpy path doing the same
work on the model's own arrays), ``ratio_to_floor`` (the measured ``p50_min_us`` / the floor's
p50), the floor's decomposition (``embed_us``, ``score_us``, ``topk_us``), the lean
single-query path ``recommend_one`` (``lean_p50_us``, ``lean_ratio_to_floor``) and, for a model
with a query tower, ``tower``: the tower's forward eager and through TorchScript (and
``torch.compile`` with ``serving.tower_compile``), the fastest correct one ``chosen``.
``embed_fast_us`` is the embed step with the chosen runtime's tower time in place of eager's.

The production figure is the lean path: ``lean_p50_us`` runs the DNN's tower through the
model's own ``serve_runtime`` (``lean_runtime``: TorchScript when it equals eager, else eager),
next to ``lean_eager_p50_us`` (the same path with the eager tower) and ``lean_embed_us`` (its
embed step alone); the report's serving verdict and table read these (the generic
``recommend`` p50 stays its own column).

Every single request is timed on one thread (``request_threads``, recorded in each row; the
batch windows at the run's ``batch_threads``): see ``bench/serving.py``. ``flags`` lists what
:func:`~..floor.contention_flags` finds wrong with a row's lean path (slower than its generic
``recommend``, or its embed inside the path over 2x the embed alone); the log and the report
show them.

``score_precision`` (a model with item and query embeddings, its main row): one request's
scoring of the whole catalogue in each of ``serving.score_precision`` (fp32, bf16, fp16, int8;
the reduced ones re-rank their ``serving.score_rerank`` best candidates in fp32), each p50
beside its recall@k against the exact fp32 top-k (``bench/score_precision.py``)."""

from __future__ import annotations

import numpy as np

from mfsoftmax.models import Queries

from ..context import RunContext, Section
from ..floor import contention_flags, floor_profiles, ratio_to_floor
from ..score_precision import PRECISIONS, RERANK, score_precision_profile
from ..serving import request_threads, serving_profiles
from ..tower_runtime import tower_profile
from . import require

#: this stage's config sections and their defaults (bench/config.py assembles them)
DEFAULTS = {
    # score_precision: one request's scoring of the whole catalogue in each of these precisions
    # ("fp32", "bf16", "fp16", "int8"; bench/score_precision.py), every reduced one re-ranking
    # its score_rerank best candidates in fp32; recall@k vs the exact fp32 top-k beside the p50
    "serving": {"queries": 1000, "warmup": 50, "batch_sizes": [1, 32, 256], "k": 10,
                "score_precision": ["fp32", "bf16", "fp16", "int8"], "score_rerank": 100},
}
#: what ``--quick`` shrinks them to (a smoke run)
QUICK = {"serving": {"queries": 200, "warmup": 10, "batch_sizes": [1, 32]}}
#: what it needs from earlier stages: {RunContext attribute: the stage that fills it}
USES = {"fitted": "quality"}


def run(ctx: RunContext) -> Section:
    require(ctx, "serving", USES)
    out = Section()
    scfg = ctx.cfg["serving"]
    train = ctx.split.train
    active = np.flatnonzero(train.user_activity() > 0)
    rng = np.random.default_rng(ctx.seed)
    users = np.sort(rng.choice(active, size=min(len(active), int(scfg["queries"])), replace=False))
    known_q = Queries(users, train.matrix[users], known=True)
    test = ctx.split.test
    new_q = Queries(test.users, test.history, known=test.known_users)
    specs, owners = [], []  # owners[i] = (model name, whether it is the model's main profile)
    for name, model in ctx.fitted.items():
        known_mode, new_mode = model.suite.serving_modes
        specs.append((model, known_q, known_mode))
        owners.append((name, True))
        if new_mode and not test.known_users:
            specs.append((model, new_q, new_mode))
            owners.append((name, False))
    profiles = serving_profiles(specs, scfg)
    _add_floors(ctx, specs, profiles, scfg)
    _add_score_precision(ctx, specs, profiles, owners, scfg)
    rows = []
    for (name, main), prof in zip(owners, profiles, strict=True):
        prof["flags"] = contention_flags(prof)
        for flag in prof["flags"]:
            ctx.say(f"  WARNING {name} ({prof['mode']}): {flag}")
        rows.append({"model": name, **prof})
        if main:
            out.model(name)["serving"] = prof
            ctx.say(f"  {name}: p50 {prof['p50_min_us']:.0f} us (fastest round's median; "
                    f"pooled {prof['p50_us']:.0f} us, {prof['mode']})")
            if prof.get("floor_p50_us"):
                ctx.say(f"    floor {prof['floor_p50_us']:.0f} us (embed {prof['embed_us']:.1f}, "
                        f"score {prof['score_us']:.1f}, top-k {prof['topk_us']:.1f}); ratio "
                        f"{prof['ratio_to_floor']:.2f}x; lean recommend_one "
                        f"{prof['lean_p50_us']:.0f} us"
                        + (f" ({prof['lean_runtime']} tower; eager tower "
                           f"{prof['lean_eager_p50_us']:.0f} us)"
                           if prof.get("lean_eager_p50_us") is not None else ""))
            if "tower" in prof:
                t = prof["tower"]
                ts = (f"torchscript {t['torchscript_us']:.0f} us" if "torchscript_us" in t
                      else "torchscript n/a (not equal to eager)")
                ctx.say(f"    tower: eager {t.get('eager_us', float('nan')):.0f} us, {ts}; "
                        f"chosen {t.get('chosen')}")
    out.top["serving"] = rows
    return out


def _singles(queries, n: int):
    """The first ``n`` queries of a batch as ``(user, history item ids, known)`` triples."""
    h = queries.history
    return [(int(queries.users[i]), h.indices[h.indptr[i]:h.indptr[i + 1]].astype(np.int64),
             bool(queries.known)) for i in range(min(len(queries), max(1, n)))]


def _add_floors(ctx, specs, profiles, scfg) -> None:
    """Floor, decomposition, lean path and (query towers) runtimes into each profile."""
    n = int(scfg.get("floor_queries", min(int(scfg["queries"]), 500)))
    rounds = int(scfg.get("rounds", 5))
    k = int(scfg["k"])
    floors = floor_profiles([(m, _singles(q, n)) for m, q, _ in specs], n=n, k=k, rounds=rounds)
    gflops = ((ctx.results or {}).get("run", {}).get("calibration") or {}).get("matmul_gflops")
    towers = {}
    for (model, queries, _), prof, fl in zip(specs, profiles, floors, strict=True):
        prof.update(fl)
        prof["ratio_to_floor"] = ratio_to_floor(prof.get("p50_min_us"), fl.get("floor_p50_us"))
        prof["lean_ratio_to_floor"] = ratio_to_floor(fl.get("lean_p50_us"), fl.get("floor_p50_us"))
        if hasattr(model, "net") and hasattr(getattr(model, "net", None), "query"):
            if id(model) not in towers:
                (u, hist, _), *rest = _singles(queries, 6)
                try:
                    with request_threads():
                        towers[id(model)] = tower_profile(
                            model, u, hist, n=n, rounds=rounds,
                            compile=bool(scfg.get("tower_compile", False)),
                            gflops=gflops, checks=[(v, h) for v, h, _ in rest])
                except Exception as exc:  # noqa: BLE001 - the row keeps its other figures
                    towers[id(model)] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
            prof["tower"] = towers[id(model)]
            t = prof["tower"]
            if fl.get("floor_kind") == "query-tower" and fl.get("embed_us") is not None:
                # the floor's embed already runs the model's fastest correct tower runtime
                prof["embed_fast_us"] = fl["embed_us"]
                prof["floor_fast_p50_us"] = fl["floor_p50_us"]
            elif "chosen_us" in t and "eager_us" in t and fl.get("embed_us") is not None:
                # the embed step with the chosen runtime's tower in place of eager's
                prof["embed_fast_us"] = round(max(0.0, fl["embed_us"] - t["eager_us"] + t["chosen_us"]), 3)
                prof["floor_fast_p50_us"] = round(prof["embed_fast_us"] + fl["score_us"] + fl["topk_us"], 3)


SCORE_QUERIES = 100  # queries of the score-precision profile (the first of the stage's)


def _add_score_precision(ctx, specs, profiles, owners, scfg) -> None:
    """``score_precision`` into the main row of every model with item and query embeddings."""
    precs = list(scfg.get("score_precision", PRECISIONS))
    if not precs:
        return
    k, rerank = int(scfg["k"]), int(scfg.get("score_rerank", RERANK))
    for (model, queries, _), prof, (name, main) in zip(specs, profiles, owners, strict=True):
        if not (main and hasattr(model, "item_embeddings") and hasattr(model, "query_embeddings")):
            continue
        rows = np.arange(min(len(queries), SCORE_QUERIES))
        sub = Queries(queries.users[rows], queries.history[rows], known=queries.known)
        b = model.item_biases() if hasattr(model, "item_biases") else None
        prof["score_precision"] = score_precision_profile(
            model.item_embeddings(), model.query_embeddings(sub), b, precs, k=k, rerank=rerank,
            rounds=int(scfg.get("rounds", 5)))
        ctx.say(f"    score precision ({name}): " + ", ".join(
            f"{p} {v['p50_us']:.0f} us recall@{k} {v[f'recall@{k}']:.3f}"
            for p, v in prof["score_precision"].items()))
