"""The ANN indexes of the corpus sweep (bench/ann/), the sweep's rows and frontier, the
perturbed-copies catalogue, and the frontier plot."""

from __future__ import annotations

import numpy as np
import pytest

from mfsoftmax.bench import ann
from mfsoftmax.bench.ann.base import l2_reduction
from mfsoftmax.bench.ann.catalogue import (
    VectorSet,
    distinct_sources,
    grow_catalogue,
    n_duplicate_rows,
    unique_rows,
    with_bias,
)
from mfsoftmax.bench.ann.exact import exact_topk
from mfsoftmax.bench.ann.measure import measure_index, pareto, recall_at_k
from mfsoftmax.bench.sweeps import serving_vs_corpus
from mfsoftmax.results.schema import validate
from mfsoftmax.results.vocabulary import family_of
from tests.fixtures.results_fixture import make_results

HAS_FAISS = ann.faiss_or_none() is not None
FAMILIES = ["exact", "hnswlib"] + (["faiss-hnsw", "faiss-ivf"] if HAS_FAISS else [])
MIPS = ["ip", "l2"]


def _cloud(n, d, seed=0, groups=8):
    """Clustered item vectors with varying norms (the shape of trained embeddings)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((groups, d)) * 1.5
    x = centers[rng.integers(0, groups, n)] + 0.5 * rng.standard_normal((n, d))
    return (x * rng.uniform(0.3, 2.0, (n, 1))).astype(np.float32)


def _build(family, mips, items, **params):
    return ann.make_index(family, params, seed=0, mips=mips).build(items)


@pytest.mark.parametrize("mips", MIPS)
@pytest.mark.parametrize("family", FAMILIES)
def test_exhaustive_setting_returns_the_exact_topk(family, mips):
    items = _cloud(300, 8)
    queries = _cloud(40, 8, seed=1)
    exact = exact_topk(items, queries, 10)
    index = _build(family, mips, items)
    found = index.search(queries, 10, index.exhaustive(len(items)))
    assert found.shape == (40, 10)
    assert recall_at_k(found, exact).mean() == 1.0
    assert index.nbytes >= items.nbytes  # every index here stores the vectors
    index.close()


@pytest.mark.parametrize("mips", MIPS)
@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "exact"])
def test_recall_rises_with_the_search_parameter(family, mips):
    items = _cloud(4000, 16, seed=2, groups=30)
    queries = _cloud(100, 16, seed=3, groups=30)
    exact = exact_topk(items, queries, 10)
    index = _build(family, mips, items)
    rows = measure_index(index, queries, exact, 10, warmup=2)
    recalls = [r["recall_vs_exact"] for r in rows]
    assert len(rows) >= 3 and {r["param"] for r in rows} == {index.param_name}
    # weakly increasing (IVF: more probes are a superset; HNSW: a wider beam, up to noise)
    assert all(b >= a - 0.01 for a, b in zip(recalls, recalls[1:], strict=False))
    assert recalls[-1] > recalls[0] or recalls[0] == 1.0
    assert recalls[-1] >= 0.95
    assert all(r["p50_us"] > 0 and r["p99_us"] >= r["p50_us"] for r in rows)
    pts = pareto(rows)
    assert pts and all(b["recall_vs_exact"] > a["recall_vs_exact"] and b["p50_us"] >= a["p50_us"]
                       for a, b in zip(pts, pts[1:], strict=False))


@pytest.mark.parametrize("mips", MIPS)
@pytest.mark.parametrize("family", FAMILIES)
def test_indexes_search_by_inner_product_not_l2(family, mips):
    """Small vectors around the query (its L2 neighbours) against a few long ones pointing
    roughly its way (its largest inner products): the index must return the long ones."""
    rng = np.random.default_rng(4)
    q = np.array([[1.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    near = (q + 0.05 * rng.standard_normal((200, 4))).astype(np.float32)  # |v| ~ 1, |q - v| small
    far = (np.array([8.0, 6.0, 0.0, 0.0]) + 0.5 * rng.standard_normal((10, 4))).astype(np.float32)
    items = np.vstack([near, far])
    l2_top = np.argsort(((items - q) ** 2).sum(1))[:10]
    assert set(l2_top) <= set(range(200))  # L2 says: the near ones
    index = _build(family, mips, items)
    found = index.search(q, 10, index.exhaustive(len(items)))
    assert set(found[0].tolist()) == set(range(200, 210))  # inner product says: the far ones


def test_l2_reduction_is_exact_mips():
    items = _cloud(500, 6, seed=5)
    queries = _cloud(30, 6, seed=6)
    aug = l2_reduction(items)
    assert aug.shape == (500, 7)
    assert np.allclose(np.linalg.norm(aug, axis=1), np.linalg.norm(aug, axis=1).max(), rtol=1e-5)
    qa = np.hstack([queries, np.zeros((30, 1), dtype=np.float32)])
    d2 = (qa ** 2).sum(1)[:, None] + (aug ** 2).sum(1)[None] - 2 * qa @ aug.T
    assert (np.argsort(d2, axis=1)[:, :10] == exact_topk(items, queries, 10)).mean() > 0.99


def test_bias_folded_into_the_inner_product():
    items, queries = _cloud(50, 4), _cloud(5, 4, seed=1)
    b = np.linspace(-1, 1, 50).astype(np.float32)
    vi, vq = with_bias(items, queries, b)
    assert np.allclose(vq @ vi.T, queries @ items.T + b, atol=1e-5)
    same_i, same_q = with_bias(items, queries, np.zeros(50))
    assert same_i.shape == items.shape and same_q.shape == queries.shape


def test_perturbed_copies_are_distinct_and_near_their_source():
    rng = np.random.default_rng(7)
    base = _cloud(400, 8, seed=8)
    base[10] = base[11] = 0.0  # exact duplicate rows in the trained table (zero factors)
    base[20] = base[21]
    items, src = grow_catalogue(base, 20_000, noise=0.1, rng=rng)
    distinct = base[unique_rows(base)]
    assert items.shape == (20_000, 8) and items.dtype == np.float32
    assert n_duplicate_rows(items) == 0  # no exact copies: nothing ties in an exact top-k
    assert len(distinct) == 398 and np.array_equal(items[:398], distinct)
    offset = np.linalg.norm(items - distinct[src], axis=1)[398:]
    spread = np.sqrt(np.trace(np.cov(distinct, rowvar=False)))
    assert np.all(offset > 0)
    assert 0.05 * spread < np.median(offset) < 0.2 * spread  # ~ noise x the cloud's spread
    pair = np.linalg.norm(distinct[:200, None] - distinct[None, 200:], axis=2)
    assert np.median(offset) < 0.25 * np.median(pair)  # a copy sits near its source
    # the copies keep the cloud's shape: norms spread like the trained ones
    assert abs(np.median(np.linalg.norm(items, axis=1)) / np.median(np.linalg.norm(distinct, axis=1))
               - 1) < 0.1
    sub, sub_src = grow_catalogue(base, 100, noise=0.1, rng=rng)  # smaller: a subset
    assert np.array_equal(sub, distinct[sub_src])
    copy_of_0 = 398 + int(np.flatnonzero(src[398:] == 0)[0])
    assert distinct_sources(np.array([[0, copy_of_0, 1]]), src) == 2.0


def _sets(seed=0):
    rng = np.random.default_rng(seed)
    mf_items = _cloud(600, 8, seed=seed)
    dnn_items = _cloud(600, 9, seed=seed + 1)
    return [VectorSet(model="mf", items=mf_items, queries=_cloud(30, 8, seed=seed + 2),
                          source_model="wals", query_embedding_us=2.0),
            VectorSet(model="dnn", items=dnn_items, queries=_cloud(30, 9, seed=seed + 3),
                          source_model="softmax-sampled-uniform",
                          query_embedding_us=float(rng.uniform(100, 200))),
            VectorSet(model="random", vectors="random", dim=8)]


def test_corpus_sweep_rows_honour_the_contract():
    rows, frontier = serving_vs_corpus([400, 2000], _sets(), n_queries=30, warmup=2,
                                       grow_noise=0.3, time_budget_s=600,
                                       index_params={"hnswlib": {"ef": [10, 64]},
                                                     "faiss-hnsw": {"ef_search": [16, 64]},
                                                     "faiss-ivf": {"nprobe": [1, 4, 1000]}})
    problems = validate({"schema_version": 1, "sweeps": {"serving_vs_corpus": rows,
                                                         "ann_frontier": frontier}}, partial=True)
    assert problems == []
    for r in rows:
        assert {"model", "n_items", "index", "p50_us", "recall_vs_exact", "vectors"} <= set(r)
        assert isinstance(r["n_items"], int)
    measured = [r for r in rows if r["index"] != "skipped"]
    for r in measured:
        assert {"p99_us", "build_s", "index_bytes", "param", "param_value", "mips",
                "operating_point"} <= set(r)
    exact = [r for r in measured if r["index"] == "exact"]
    assert {(r["model"], r["n_items"]) for r in exact} == {
        (m, n) for m in ("mf", "dnn", "random") for n in (400, 2000)}
    assert all(r["recall_vs_exact"] == 1.0 and r["operating_point"] for r in exact)
    # the serving verdict reads exact rows by family: mf and dnn map to the two families
    fams = {family_of(r["model"], {}) for r in exact}
    assert {"mf", "softmax"} <= fams
    trained = [r for r in measured if r["vectors"] == "trained"]
    assert all(r["query_embedding_us"] and r["total_p50_us"] > r["p50_us"] for r in trained)
    assert all(r["exact_duplicates"] == 0 for r in trained if r["n_items"] > 600)
    assert {r["vectors"] for r in measured} == {"trained", "random"}
    labels = {r["index"] for r in measured}
    assert "hnswlib-hnsw(M=16)" in labels and "hnswlib-hnsw(M=16,l2-reduction)" in labels
    if HAS_FAISS:
        assert any(lab.startswith("faiss-ivf(nlist=") for lab in labels)
        ivf = [r for r in measured if r["index"].startswith("faiss-ivf")]
        assert max(r["param_value"] for r in ivf if r["n_items"] == 400) <= 10  # capped at nlist
    # one operating point per (size, set, index), and a frontier entry for each
    groups = {}
    for r in measured:
        groups.setdefault((r["n_items"], r["model"], r["index"]), []).append(r)
    assert all(sum(r["operating_point"] for r in g) == 1 for g in groups.values())
    assert len(frontier) == len(groups)
    for f in frontier:
        assert f["points"] and isinstance(f["meets_target"], bool)
        rec = [p["recall_vs_exact"] for p in f["points"]]
        assert rec == sorted(rec)


def test_sweep_skips_what_it_cannot_measure(monkeypatch):
    monkeypatch.setattr(ann, "faiss_or_none", lambda: None)
    rows, _ = serving_vs_corpus([300], _sets()[:1], n_queries=10, warmup=1, mips=["ip"],
                                index_params={"hnswlib": {"ef": [16]}})
    skipped = [r for r in rows if r["index"] == "skipped"]
    assert {r["skipped_index"] for r in skipped} == {"faiss-hnsw", "faiss-ivf"}
    assert all("faiss" in r["note"] and r["p50_us"] is None for r in skipped)
    # a spent budget skips the sizes left, with a note
    rows, _ = serving_vs_corpus([300, 600], _sets()[:1], n_queries=10, warmup=1, mips=["ip"],
                                indexes=["hnswlib"], time_budget_s=0.0)
    assert [r["index"] for r in rows] == ["skipped", "skipped"]
    assert "time budget" in rows[0]["note"]


def test_make_index_refuses_unknown_names_and_parameters():
    with pytest.raises(ValueError, match="unknown ANN index"):
        ann.make_index("annoy")
    with pytest.raises(ValueError, match="ann_params.hnswlib"):
        ann.make_index("hnswlib", {"m": 16})
    with pytest.raises(ValueError, match="mips"):
        ann.make_index("hnswlib", mips="cosine")
    assert "faiss" in (ann.available("faiss-ivf") or "faiss") and ann.available("exact") is None


def test_each_index_module_holds_its_grid_and_the_factory_uses_it():
    # one module per index, its parameter grid beside it: the class's defaults, the sweep
    # make_index builds without params, and the config's sweeps.ann_params come from it
    for family, mod in ann.MODULES.items():
        cls = ann.INDEXES[family]
        assert cls.__module__ == mod.__name__
        if not mod.PARAMS:
            assert family == "exact" and cls.sweep_key is None
            continue
        index = ann.make_index(family)
        assert index.sweep() == list(mod.PARAMS[cls.sweep_key])
        built = {k: getattr(index, k) for k in mod.PARAMS if k != cls.sweep_key}
        assert built == {k: v for k, v in mod.PARAMS.items() if k != cls.sweep_key}
        assert set(mod.QUICK) == {cls.sweep_key}
    assert ann.default_params() == {f: m.PARAMS for f, m in ann.MODULES.items() if m.PARAMS}
    assert ann.default_params(quick=True)["hnswlib"] == ann.MODULES["hnswlib"].QUICK
    grid = ann.default_params()
    grid["hnswlib"]["ef"].append(1)  # a copy: the module's grid is untouched
    assert 1 not in ann.MODULES["hnswlib"].PARAMS["ef"]


def test_frontier_plot_draws_from_fixture_and_sweep_rows():
    import matplotlib.pyplot as plt

    from mfsoftmax.reports.sections.serving_corpus import ann_frontier

    fig = ann_frontier(make_results())  # older rows: one point per index and size
    assert fig is not None
    assert {ax.get_title() for ax in fig.axes} >= {"MF (WALS) embeddings", "softmax DNN embeddings"}
    assert all(ax.get_lines() for ax in fig.axes)
    plt.close(fig)
    rows, frontier = serving_vs_corpus([500], _sets(), n_queries=20, warmup=1, mips=["ip", "l2"],
                                       indexes=["hnswlib"], index_params={"hnswlib": {"ef": [10, 40]}})
    results = {"sweeps": {"serving_vs_corpus": rows, "ann_frontier": frontier}}
    fig = ann_frontier(results)
    assert len(fig.axes) == 3  # mf, dnn, random
    labels = {line.get_label() for ax in fig.axes for line in ax.get_lines()}
    assert {"exact", "hnswlib-hnsw(M=16)", "hnswlib-hnsw(M=16,l2-reduction)"} <= labels
    plt.close(fig)
    assert ann_frontier({"sweeps": {}}) is None
