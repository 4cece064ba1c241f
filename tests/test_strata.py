"""Which family for whom: the strata stage (bench/stages/strata.py) against brute force, its
report section and headline line (reports/sections/strata.py), and a quick run end to end."""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest
import scipy.sparse as sp

from mfsoftmax.bench.config import ConfigError, load_config, merge, validate
from mfsoftmax.bench.stages.strata import item_strata, measure, user_strata
from mfsoftmax.cli import main
from mfsoftmax.datasets import EvalSet
from mfsoftmax.evaluation import evaluate, restrict_targets
from mfsoftmax.reports.render import render_report
from mfsoftmax.reports.sections.strata import family_gaps
from mfsoftmax.reports.verdicts import CLAIMS, headline
from mfsoftmax.results.schema import validate as validate_results
from tests.fixtures import RESULTS_V1


class ScoreModel:
    """Scores are a fixed users x items matrix, looked up by user index."""

    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=np.float32)

    def score(self, queries):
        return self.scores[queries.users]


def tiny_case(seed=0, n_users=60, n_items=40):
    """Random histories of 1..12 items, 0..5 targets (some users have none), two score
    matrices, and a skewed training popularity."""
    rng = np.random.default_rng(seed)
    hist, targ = [], []
    for _ in range(n_users):
        items = rng.permutation(n_items)
        h = int(rng.integers(1, 13))
        t = int(rng.integers(0, 6))
        hist.append(sorted(items[:h].tolist()))
        targ.append(sorted(items[h:h + t].tolist()))
    def csr(rows):
        r = [u for u, items in enumerate(rows) for _ in items]
        c = [i for items in rows for i in items]
        return sp.csr_matrix((np.ones(len(c), np.float32), (r, c)), shape=(n_users, n_items))
    ev = EvalSet(np.arange(n_users), csr(hist), csr(targ), known_users=True)
    scores = {"a": rng.random((n_users, n_items)), "b": rng.random((n_users, n_items))}
    popularity = np.floor(200 * rng.pareto(1.2, n_items)).astype(np.int64)
    return ev, hist, targ, scores, popularity


def brute_recall_ndcg(scores, history, targets, keep, k):
    """Recall@k and NDCG@k of one user counting only the targets where ``keep``; None without."""
    t = [i for i in targets if keep[i]]
    if not t:
        return None
    ranked = sorted((i for i in range(len(scores)) if i not in history),
                    key=lambda i: (-np.float32(scores[i]), i))[:k]
    hits = [i in t for i in ranked]
    dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(hits) if h)
    idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(t))))
    return sum(hits) / min(k, len(t)), dcg / idcg


def brute_se(xs):
    n = len(xs)
    if n < 2:
        return 0.0
    mean = sum(xs) / n
    return math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) / math.sqrt(n)


# ----------------------------------------------------------------------------- the strata
def test_user_strata_are_quantile_strata_of_history_length():
    rng = np.random.default_rng(3)
    for n, bins in ((1, 5), (7, 5), (100, 5), (250, 4), (40, 10)):
        lengths = rng.integers(1, 30, n)
        got = user_strata(lengths, bins)
        srt = sorted(lengths.tolist())
        cuts = sorted({srt[math.floor(j / bins * (n - 1))] for j in range(1, bins)})
        expect = {}
        for u, x in enumerate(lengths.tolist()):
            expect.setdefault(sum(c < x for c in cuts), []).append(u)
        assert [rows.tolist() for _, rows in got] == [expect[j] for j in sorted(expect)]
        for i, (info, rows) in enumerate(got):
            assert info["name"] == f"q{i + 1}"
            assert (info["min_items"], info["max_items"]) == (lengths[rows].min(), lengths[rows].max())
        assert len(got) <= bins
    # all users alike: one stratum; none: nothing
    assert [len(r) for _, r in user_strata(np.full(9, 4), 5)] == [9]
    assert user_strata(np.zeros(0, dtype=int), 5) == []


def test_item_strata_split_the_training_interactions_20_30_50():
    rng = np.random.default_rng(1)
    pop = np.floor(100 * rng.pareto(2.0, 300)).astype(np.int64)
    pop[:5] = 0  # never seen in training: tail
    got = item_strata(pop, [0.2, 0.3])
    total, before, expect = pop.sum(), 0, {}
    for i in sorted(range(len(pop)), key=lambda i: (-pop[i], i)):
        expect[i] = "head" if before < 0.2 * total else "torso" if before < 0.5 * total else "tail"
        before += pop[i]
    assert [info["name"] for info, _ in got] == ["head", "torso", "tail"]
    for info, mask in got:
        members = sorted(i for i, s in expect.items() if s == info["name"])
        assert np.flatnonzero(mask).tolist() == members
        assert info["n_items"] == len(members)
        assert info["interaction_share"] == pytest.approx(pop[members].sum() / total)
    head, torso, tail = (info for info, _ in got)
    assert head["interaction_share"] >= 0.2 and head["min_popularity"] >= torso["max_popularity"]
    assert tail["min_popularity"] == 0 and got[2][1][:5].all()
    # one item with most of the interactions: it is the head, the torso is empty
    (h, hm), (t, tm), (_, rest) = item_strata(np.array([5, 90, 3, 2]), [0.2, 0.3])
    assert hm.tolist() == [False, True, False, False] and t["n_items"] == 0 and not tm.any()
    assert t["interaction_share"] == 0.0 and "min_popularity" not in t and rest.sum() == 3


def test_restricted_targets_give_recall_on_the_strata_items_only():
    ev, hist, targ, scores, pop = tiny_case(seed=2)
    keep = np.zeros(ev.n_items, dtype=bool)
    keep[::3] = True
    _, per = evaluate(ScoreModel(scores["a"]), restrict_targets(ev, keep), ks=(5,), per_user=True)
    brute = [brute_recall_ndcg(scores["a"][u], hist[u], targ[u], keep, 5) for u in range(len(ev))]
    brute = [b for b in brute if b is not None]
    assert len(per["recall@5"]) == len(brute) < len(ev)
    np.testing.assert_allclose(per["recall@5"], [b[0] for b in brute])
    np.testing.assert_allclose(per["ndcg@5"], [b[1] for b in brute])
    with pytest.raises(ValueError, match="items has shape"):
        restrict_targets(ev, keep[:-1])


def test_measure_matches_brute_force_per_stratum_with_paired_errors():
    ev, hist, targ, scores, pop = tiny_case()
    models = {n: ScoreModel(s) for n, s in scores.items()}
    per = {n: evaluate(m, ev, ks=(3, 5), per_user=True)[1] for n, m in models.items()}
    out = measure(models, per, ev, pop, 3, [0.2, 0.3], ["recall@3", "ndcg@5"])
    everything = np.ones(ev.n_items, dtype=bool)
    with_t = [u for u in range(len(ev)) if targ[u]]

    def check(entry, users, keep):
        figs = {n: {u: brute_recall_ndcg(scores[n][u], hist[u], targ[u], keep, 3)[0] for u in users}
                for n in scores}
        ndcg = {n: [brute_recall_ndcg(scores[n][u], hist[u], targ[u], keep, 5)[1] for u in users]
                for n in scores}
        assert entry["n_users"] == len(users)
        for n in scores:
            vals = list(figs[n].values())
            got = entry["models"][n]
            assert got["recall@3"] == pytest.approx(sum(vals) / len(vals))
            assert got["recall@3_se"] == pytest.approx(brute_se(vals))
            assert got["ndcg@5"] == pytest.approx(sum(ndcg[n]) / len(users))
        (row,) = entry["paired_se"]
        assert (row["a"], row["b"], row["n_users"]) == ("a", "b", len(users))
        assert row["recall@3"] == pytest.approx(brute_se([figs["a"][u] - figs["b"][u] for u in users]))

    lengths = {u: len(hist[u]) for u in with_t}
    assert sum(s["n_users"] for s in out["users"]) == len(with_t)
    for s in out["users"]:
        check(s, [u for u in with_t if s["min_items"] <= lengths[u] <= s["max_items"]], everything)
    for s, (info, keep) in zip(out["items"], item_strata(pop, [0.2, 0.3]), strict=True):
        assert s["name"] == info["name"]
        check(s, [u for u in range(len(ev)) if any(keep[i] for i in targ[u])], keep)
    assert out["metrics"] == ["recall@3", "ndcg@5"] and out["user_bins"] == 3


def test_an_empty_stratum_is_kept_with_no_users_and_still_reads():
    ev, _, _, scores, _ = tiny_case(seed=4)
    pop = np.ones(ev.n_items, dtype=np.int64)
    pop[7] = 10 * ev.n_items  # one item holds most interactions: the torso is empty
    models = {n: ScoreModel(s) for n, s in scores.items()}
    per = {n: evaluate(m, ev, ks=(10,), per_user=True)[1] for n, m in models.items()}
    out = measure(models, per, ev, pop, 5, [0.2, 0.3], ["recall@10"])
    head, torso, tail = out["items"]
    assert head["n_items"] == 1 and torso == {"name": "torso", "n_items": 0, "interaction_share": 0.0,
                                              "n_users": 0, "models": {}, "paired_se": []}
    res = {"schema_version": 1, "run": {}, "dataset": {}, "strata": out,
           "models": {"a": {"family": "mf"}, "b": {"family": "softmax"}}}
    assert validate_results(res, partial=True) == []
    assert [g["label"] for g in family_gaps(res, "items")] == ["head (1 items)", "torso (0 items)",
                                                               f"tail ({ev.n_items - 1} items)"]
    assert "winner" not in family_gaps(res, "items")[1]
    with pytest.raises(ValueError, match="per-user arrays for 3 users"):
        measure(models, {"a": {"recall@10": np.zeros(3)}}, ev, pop, 5, [0.2, 0.3], ["recall@10"])


# ----------------------------------------------------------------------------- the headline
def _stratum(name, mf, sm, paired, other_sm=None, **info):
    models = {"wals": {"recall@10": mf, "recall@10_se": 0.05},
              "sm": {"recall@10": sm, "recall@10_se": 0.05},
              "pop": {"recall@10": 0.99, "recall@10_se": 0.01}}  # a baseline: never "best"
    rows = [{"a": "wals", "b": "sm", "n_users": 50, "recall@10": paired}]
    if other_sm is not None:
        models["sm2"] = {"recall@10": other_sm, "recall@10_se": 0.05}
        rows.append({"a": "wals", "b": "sm2", "n_users": 50, "recall@10": 0.001})
    return {"name": name, "n_users": 50, "models": models, "paired_se": rows, **info}


def strata_results(users, items):
    fams = {"wals": "mf", "sm": "softmax", "sm2": "softmax", "pop": "baseline"}
    return {"schema_version": 1, "models": {n: {"family": f} for n, f in fams.items()},
            "strata": {"metrics": ["recall@10"], "users": users, "items": items}}


def user_rows(gaps, se=0.01):
    edges = [(1, 4), (5, 9), (10, 20), (21, 40), (41, 90)]
    return [_stratum(f"q{i + 1}", 0.3, 0.3 + g, se, min_items=lo, max_items=hi)
            for i, (g, (lo, hi)) in enumerate(zip(gaps, edges, strict=False))]


def item_rows(gaps, se=0.01):
    return [_stratum(n, 0.3, 0.3 + g, se, n_items=10) for n, g in zip(("head", "torso", "tail"), gaps,
                                                                       strict=True)]


def strata_claim(results):
    return next(r for r in headline(results) if r.claim.key == "strata")


def test_headline_says_which_family_for_whom_by_the_paired_rule():
    # MF ahead for the two heaviest user strata, softmax on tail items; 0.019 < 2 x 0.01 is a tie
    res = strata_results(user_rows([0.0, 0.019, -0.019, -0.05, -0.03]), item_rows([0.0, 0.01, 0.1]))
    v = strata_claim(res)
    assert v.verdict == "depends" and v.winner is None
    assert v.text == ("MF ahead for users with ≥ 21 items; softmax ahead on tail items "
                      "(recall@10; elsewhere within 2 paired se)")
    assert v.figures == {"mf": "ahead in 2 of 8 strata", "softmax": "ahead in 1 of 8 strata"}
    assert len(v.line) < 200
    # the paired error decides: the same gaps with a paired se of 0.03 are all ties
    v = strata_claim(strata_results(user_rows([0.0, 0.019, -0.019, -0.05, -0.03], se=0.03),
                                    item_rows([0.0, 0.01, 0.05], se=0.03)))
    assert v.winner == "tie" and v.verdict == "not confirmed"
    assert v.text.startswith("no difference: no stratum's gap exceeds 2 paired se (recall@10")


def test_headline_light_users_middle_strata_and_every_stratum():
    v = strata_claim(strata_results(user_rows([0.05, 0.05, 0.0, 0.0, 0.0]), []))
    assert v.text.startswith("softmax ahead for users with ≤ 9 items (") and v.verdict == "depends"
    assert v.winner == "softmax"
    v = strata_claim(strata_results(user_rows([0.0, -0.1, -0.1, 0.0, 0.0]), item_rows([0, 0, 0])))
    assert v.text.startswith("MF ahead for users with 5–20 items (")
    # one family ahead in two separate runs of strata: one phrase
    v = strata_claim(strata_results(user_rows([-0.1, 0.0, -0.1, 0.0, -0.1]),
                                    item_rows([-0.1, 0.0, -0.1])))
    assert v.text.startswith("MF ahead for users with ≤ 4 or 10–20 or ≥ 41 items; MF ahead on "
                             "head and tail items (")
    v = strata_claim(strata_results(user_rows([0.1] * 5), item_rows([0.1] * 3)))
    assert v.verdict == "confirmed" and v.winner == "softmax"
    assert v.text.startswith("softmax ahead for users of every history length; softmax ahead on "
                             "head and torso and tail items (recall@10, 2 paired se)")
    v = strata_claim(strata_results(user_rows([-0.1] * 5), item_rows([-0.1] * 3)))
    assert v.verdict == "not confirmed" and v.winner == "mf"


def test_best_of_each_family_per_stratum_is_paired_with_its_own_error():
    users = [_stratum("q1", 0.30, 0.31, 0.05, other_sm=0.33, min_items=1, max_items=9)]
    (g,) = family_gaps(strata_results(users, []), "users")
    # sm2 is the softmax family's best here, judged by the (wals, sm2) row: 0.03 > 2 x 0.001
    assert g["best"] == {"mf": ("wals", 0.30), "softmax": ("sm2", 0.33)}
    assert g["se"] == 0.001 and g["winner"] == "softmax" and g["rule"] == "2 paired se"
    assert g["gap"] == pytest.approx(0.03)


def test_no_strata_is_not_measured():
    v = strata_claim({"schema_version": 1, "models": {}})
    assert v.verdict == "not measured" and v.winner is None
    assert "strata" in [c.key for c in CLAIMS]


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize("override, key", [
    ({"user_bins": 1}, "strata.user_bins"),
    ({"user_bins": True}, "strata.user_bins"),
    ({"item_shares": [0.6, 0.5]}, "strata.item_shares"),
    ({"item_shares": [0.2]}, "strata.item_shares"),
    ({"metrics": ["recall@15"]}, "strata.metrics"),
    ({"metrics": []}, "strata.metrics"),
])
def test_bad_strata_config_names_the_key(override, key):
    cfg = merge(load_config("default"), {"strata": override})
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as err:
        validate(cfg, "cfg.toml")
    assert str(err.value).startswith("cfg.toml: ") and "\n" not in str(err.value)


def test_bad_strata_config_exits_2_with_one_line(tmp_path, capsys):
    code = main(["run", "--quick", "--set", "strata.metrics=[\"ndcg@7\"]", "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "strata.metrics" in err and "'ndcg@7'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """A quick run of the quality and strata stages: its exit code, folder and terminal text."""
    out = tmp_path_factory.mktemp("runs") / "quick"
    printed = io.StringIO()  # the summary and headline go to stdout
    with contextlib.redirect_stdout(printed):
        code = main(["run", "--quick", "--models", "popularity", "wals", "softmax-in-batch",
                     "--stages", "quality,strata", "--out", str(out), "--no-progress"])
    return code, out, printed.getvalue()


def test_quick_run_writes_the_strata_section(quick):
    code, out, _ = quick
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    assert validate_results(res, "results.json") == []
    assert res["stages"]["strata"]["status"] == "ok"
    st = res["strata"]
    assert [s["name"] for s in st["items"]] == ["head", "torso", "tail"]
    assert 2 <= len(st["users"]) <= 5
    n_test = res["models"]["wals"]["n_test_users"]
    assert sum(s["n_users"] for s in st["users"]) == n_test
    for name, model in res["models"].items():  # the user strata partition the test users
        total = sum(s["models"][name]["recall@20"] * s["n_users"] for s in st["users"])
        assert total / n_test == pytest.approx(model["quality"]["recall@20"])
    for s in st["users"] + st["items"]:
        assert len(s["paired_se"]) == 3 and all(r["recall@10"] >= 0 for r in s["paired_se"])
    assert sum(s["n_items"] for s in st["items"]) == res["dataset"]["n_items"]
    md = (out / "report.md").read_text()
    assert "## Which family for whom" in md and "| Which family for whom |" in md
    assert "### Best of each family per stratum (recall@10), paired by user" in md
    assert (out / "plots" / "strata.png").stat().st_size > 10_000
    assert 'id="t-strata-gaps"' in (out / "report.html").read_text()


def test_quick_run_prints_the_strata_headline(quick):
    _, _, text = quick
    line = next(x for x in text.splitlines() if "Which family for whom" in x)
    assert any(w in line for w in ("ahead", "no difference")) and len(line) < 200


def test_strata_without_quality_fails_with_a_clear_message(tmp_path):
    out = tmp_path / "r"
    code = main(["run", "--quick", "--models", "popularity", "--stages", "strata",
                 "--no-report", "--no-progress", "--out", str(out)])
    assert code == 1
    entry = json.loads((out / "results.json").read_text())["stages"]["strata"]
    assert entry["status"] == "failed"
    assert "needs ctx.fitted (from the quality stage)" in entry["error"]
    assert "enable stages.quality" in entry["error"]


def test_old_results_without_strata_still_render(tmp_path):
    old = json.loads(RESULTS_V1.read_text())
    assert "strata" not in old
    written = render_report(old, tmp_path)
    md = written["md"].read_text()
    assert "## Which family for whom" not in md
    assert "| Which family for whom |" in md and "not measured (no stratum" in md
    assert not (tmp_path / "plots" / "strata.png").exists()


def test_no_shipped_config_runs_strata_without_quality():
    from mfsoftmax.bench.config import CONFIG_DIR

    for path in sorted(CONFIG_DIR.glob("*.toml")):
        stages = load_config(str(path))["stages"]
        assert stages["quality"] or not stages["strata"], f"{path.name}: strata needs quality"


def test_headline_sparkline_draws_each_strata_gap_in_its_winner_colour():
    from mfsoftmax.reports import glance
    from mfsoftmax.reports.sections.strata import WINNER_COLORS

    res = strata_results(user_rows([0.0, 0.019, -0.019, -0.05, -0.03]), item_rows([0.0, 0.01, 0.1]))
    assert "strata" in glance.SPARKLINES  # the row gets a figure beside it
    fig = glance.SPARKLINES["strata"](strata_claim(res), res)
    ax = fig.axes[0]
    dots = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(dots) == 8  # 5 user strata + 3 item strata, one gap each
    colours = [d.get_color() for d in dots]
    assert colours.count(WINNER_COLORS["mf"][0]) == 2          # the two heaviest user strata
    assert colours.count(WINNER_COLORS["softmax"][0]) == 1     # tail items
    assert [t.get_text() for t in ax.get_xticklabels()] == ["users", "items"]
    assert glance.SPARKLINES["strata"](strata_claim(res), {"models": {}}) is None  # no strata
