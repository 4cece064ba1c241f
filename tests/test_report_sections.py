"""The report's rooms (issue 28): one section module per measurement in one registry, the
headline's claims taken from the sections, the shared vocabulary defined once, and the size
limits of the report's modules."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from mfsoftmax import models
from mfsoftmax.reports import sections
from mfsoftmax.reports.judge import Claim
from mfsoftmax.reports.verdicts import CLAIMS, JUDGES, headline
from mfsoftmax.results import schema, vocabulary
from tests.fixtures.results_fixture import make_results

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 450, 80


def _report_modules() -> list[Path]:
    return sorted((ROOT / "reports").glob("*.py")) + sorted((ROOT / "reports" / "sections").glob("*.py"))


def test_report_modules_and_functions_within_size_limits():
    too_long, long_functions = [], []
    for path in _report_modules() + [ROOT / "src/mfsoftmax/results/vocabulary.py"]:
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long_functions.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {n}")
    assert not too_long and not long_functions, too_long + long_functions


def test_every_section_module_declares_the_section_api():
    keys = []
    for m in sections.modules():
        assert isinstance(m.KEY, str) and isinstance(m.TITLE, str) and isinstance(m.INTRO, str), m
        assert callable(m.tables) and isinstance(m.PLOTS, tuple), m
        assert all(len(p) == 3 and callable(p[2]) for p in m.PLOTS), m
        for c in getattr(m, "CLAIMS", ()):
            assert isinstance(c, Claim) and callable(m.judge), m
        claims = {c.key for c in getattr(m, "CLAIMS", ())}
        assert set(getattr(m, "SPARKLINES", {})) <= claims, m  # a sparkline sits beside its own claim
        keys.append(m.KEY)
    plot_keys = [key for key, _, _ in sections.plots()]
    assert len(plot_keys) == len(set(plot_keys))
    # modules sharing a KEY are neighbours: they fill one report section
    assert [k for i, k in enumerate(keys) if i == 0 or keys[i - 1] != k] == list(dict.fromkeys(keys))


def test_headline_claims_come_from_the_sections_in_row_order():
    declared = [c for m in sections.modules() for c in getattr(m, "CLAIMS", ())]
    assert sorted(declared, key=lambda c: c.row) == list(CLAIMS)
    assert len({c.key for c in CLAIMS}) == len({c.row for c in CLAIMS}) == len(CLAIMS)
    assert [c.key for c in CLAIMS] == ["quality", "strata", "query_features", "cold_users",
                                       "cold_items", "folding", "training", "serving"]
    owner = {c.key: m for m in sections.modules() for c in getattr(m, "CLAIMS", ())}
    assert all(JUDGES[k] is owner[k].judge for k in JUDGES)
    assert [r.claim.key for r in headline(make_results())] == [c.key for c in CLAIMS]


def test_the_headline_does_not_load_matplotlib():
    """``mfsoftmax run`` prints the headline after its stages: reading every section module
    must not import matplotlib (plot builders import it inside)."""
    probe = ("import json, sys\nfrom mfsoftmax.reports.verdicts import headline\n"
             "from tests.fixtures.results_fixture import make_results\n"
             "headline(make_results())\n"
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "matplotlib" not in json.loads(out.stdout.strip().splitlines()[-1])


def test_the_families_vocabulary_is_defined_once():
    assert models.FAMILIES is vocabulary.FAMILIES
    assert set(vocabulary.COMPARED) < set(vocabulary.FAMILIES)
    assert not hasattr(schema, "FAMILIES") or schema.FAMILIES is vocabulary.FAMILIES
    # the corpus sweep writes "dnn" for softmax; one table translates both ways
    assert {vocabulary.SWEEP_FAMILIES[vocabulary.SWEEP_NAME[f]] for f in vocabulary.COMPARED} \
        == set(vocabulary.COMPARED)
    results = {"models": {"wals": {"family": "mf"}}}
    assert vocabulary.family_of("dnn", results) == "softmax"
    assert vocabulary.family_of("mf", results) == "mf"
    assert vocabulary.family_of("wals", results) == "mf"
    assert vocabulary.family_of("popularity", results) == "baseline"
    assert not _family_literals(), _family_literals()


def _family_literals() -> list[str]:
    """Places in reports/ and models/ that spell the families out again: a tuple, list or set
    holding both "mf" and "softmax", or a dict with the corpus sweep's "dnn" label in it."""
    found = []
    for mod in ("reports", "models"):
        for path in (ROOT / mod).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                    words = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                elif isinstance(node, ast.Dict):
                    words = {e.value for e in (*node.keys, *node.values) if isinstance(e, ast.Constant)}
                    words = {"mf", "softmax"} if "dnn" in words else set()
                else:
                    continue
                if {"mf", "softmax"} <= words:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found
