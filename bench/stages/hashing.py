"""Hashing stage, the DNN's memory lever: the base softmax model refitted on the main split with
its tables hashed into a share of the item count (``hashing.fractions``; 1 = exact), for each
``hashing.scopes`` (``inputs``: history and user-feature tables only; ``all``: the item side
too)."""

from __future__ import annotations

from mfsoftmax.evaluation import evaluate

from ..context import MissingInput, RunContext, Section
from ..measure import timed_fit

#: this stage's config sections and their defaults (bench/config.py assembles them)
DEFAULTS = {
    # tables hashed into these shares of the item count (1.0 = exact); scopes: "inputs" (history
    # and user-feature tables) and/or "all" (the item side too)
    "hashing": {"base": None, "fractions": [1.0, 0.5, 0.1], "scopes": ["inputs", "all"]},
}
#: what ``--quick`` shrinks them to (a smoke run)
QUICK = {"hashing": {"fractions": [1.0, 0.25]}}


def run(ctx: RunContext) -> Section:
    hcfg = ctx.cfg["hashing"]
    base = hcfg.get("base") or ctx.best_softmax()
    if base is None:
        raise MissingInput("no fitted softmax model to hash")
    split = ctx.split
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
        if buckets is None and base in ctx.fitted:  # the exact tables: the quality stage's fit
            model, training = ctx.fitted[base], ctx.results["models"][base]["training"]
        else:
            extra = {} if buckets is None else {"hash_buckets": buckets, "hash_scope": scope}
            model = ctx.build(base, ctx.tuned_params(base), **extra)
            training = timed_fit(model, split.train, split.valid)
        res = evaluate(model, split.test, ks=(10, 20))
        rows.append({"model": base, "scope": scope, "fraction": frac, "buckets": buckets or n,
                     "embedding_mb": model.embedding_bytes() / 2**20,
                     "parameters": model.n_parameters(),
                     "recall@10": res["recall@10"], "recall@20": res["recall@20"],
                     "ndcg@20": res["ndcg@20"], "wall_s": training["wall_s"],
                     "peak_rss_mb": training["peak_rss_mb"], "epochs": training["epochs"]})
        tables = "exact tables" if buckets is None else f"{scope} hashed into {buckets} rows"
        ctx.say(f"  {base}, {tables}: recall@20 {res['recall@20']:.4f}, "
                f"{rows[-1]['embedding_mb']:.2f} MB of embeddings")
    return Section(sweeps={"hashing": rows})
