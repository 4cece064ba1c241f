"""Start-up weight: the light commands (``--help``, ``datasets``, ``compare``) do not load the
heavy packages, and every function-level import in the package says why it is there.

Each check runs in a fresh interpreter, since this test process has imported most of the
package already.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import RESULTS_V1

ROOT = Path(__file__).resolve().parents[1]
BASELINE = RESULTS_V1  # an old results file: compare reads it against itself

# a second or more each at start-up (torch several); none is needed to parse arguments
HEAVY = ("torch", "matplotlib", "pyspark", "faiss", "optuna", "implicit", "polars", "pyarrow",
         "onnxruntime")


def _loaded_after(code: str) -> set[str]:
    """Top-level names in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = (f"{code}\nimport json, sys\n"
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("label,code,extra", [
    ("import mfsoftmax.cli", "import mfsoftmax.cli", ("jsonschema", "numpy")),
    ("mfsoftmax --help (every subcommand's parser)",
     "import mfsoftmax.cli as c\nc.build_parser().format_help()", ("jsonschema", "numpy")),
    ("import mfsoftmax.compare", "import mfsoftmax.compare", ("jsonschema", "numpy")),
    ("import mfsoftmax.history", "import mfsoftmax.history", ("jsonschema", "numpy")),
    ("mfsoftmax compare (a real comparison)",
     "import contextlib, io\nfrom mfsoftmax.cli import main\n"
     "with contextlib.redirect_stdout(io.StringIO()):\n"
     f"    assert main(['compare', {str(BASELINE)!r}, {str(BASELINE)!r}]) == 0", ("numpy",)),
    ("mfsoftmax datasets (the registry list)",
     "import contextlib, io\nfrom mfsoftmax.cli import main\n"
     "with contextlib.redirect_stdout(io.StringIO()):\n"
     "    assert main(['datasets']) == 0", ()),
    ("import mfsoftmax.reports", "import mfsoftmax.reports", ("jsonschema",)),
])
def test_light_paths_do_not_load_heavy_packages(label, code, extra):
    heavy = sorted(_loaded_after(code) & {*HEAVY, *extra})
    assert not heavy, f"{label} loads {heavy}: import them inside the function that needs them"


# Function-level imports (inside a def) are kept only where they buy start-up time, for an
# optional dependency, or to break an import cycle, and then say so in a trailing comment.
REASON = re.compile(r"#.*\b(lazy|optional|cycle):")
PACKAGE_DIRS = ("src/mfsoftmax", "datasets", "models", "bench", "reports", "compare", "history")


def _function_imports(path: Path):
    lines = path.read_text(encoding="utf-8").splitlines()

    def walk(node, in_def):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield from walk(child, True)
            elif isinstance(child, (ast.Import, ast.ImportFrom)):
                if in_def:
                    yield child.lineno, lines[child.lineno - 1:child.end_lineno]
            else:
                yield from walk(child, in_def)

    yield from walk(ast.parse("\n".join(lines), str(path)), False)


def _is_test(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return name.startswith("test_") or name == "conftest.py"


def test_every_function_level_import_says_why():
    missing, seen = [], 0
    for d in PACKAGE_DIRS:
        for path in sorted((ROOT / d).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if _is_test(rel):
                continue
            for lineno, text in _function_imports(path):
                seen += 1
                if not any(REASON.search(t) for t in text):
                    missing.append(f"{rel}:{lineno}: {text[0].strip()}")
    assert seen > 0  # the walk finds the known lazy imports (torch, jsonschema, optuna, ...)
    assert not missing, ("function-level imports without a '# lazy: / # optional: / # cycle:' "
                         "reason (move them to the top of the module, or say why):\n"
                         + "\n".join(missing))


def test_the_check_catches_an_unexplained_import(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    import json\n\n\ndef g():\n    import torch  # lazy: torch\n")
    found = [(n, REASON.search(t[0]) is not None) for n, t in _function_imports(f)]
    assert found == [(2, False), (6, True)]
