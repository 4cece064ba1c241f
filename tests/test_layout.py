"""The layout targets (issue 28) on every product module: sizes, folder cycles, and the writer of
results.json importing no reader.

Product modules are the ``.py`` files of the packages pyproject installs (``[tool.setuptools]``
``packages`` and ``package-dir``), less pytest files (``test_*.py``, ``conftest.py``: bench's
benchmark cases). Sizes: a module counts its lines (as ``wc -l``); a function or method counts
from its ``def`` line to its last line (``end_lineno - lineno + 1``: decorators left out, its
docstring, comments and blank lines in). Folders: a package directly under ``mfsoftmax``
(``mfsoftmax.bench``, ``mfsoftmax.cli``, ...) with its subpackages is one folder, the modules of
``mfsoftmax`` itself (``src/mfsoftmax/*.py``: evaluation, runtime, ...) another, the core;
``mfsoftmax/__main__.py`` (``python -m mfsoftmax``) belongs to the CLI. Every import counts,
function-level (lazy) ones and relative ones (resolved) included.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80
CORE = "mfsoftmax"
#: the writer of results.json: the suite's run, its runner and its stages
WRITER = ("mfsoftmax.bench.runner", "mfsoftmax.bench.suite", "mfsoftmax.bench.stages")
#: the readers of results.json
READERS = ("mfsoftmax.reports", "mfsoftmax.compare", "mfsoftmax.history")
#: top-level folders of the repository that are no product code
NOT_PRODUCT = {"tests", "docs", "runs", "build", "dist"}


# ------------------------------------------------------------------------------- the modules
def package_dirs(root: Path = ROOT) -> dict[str, Path]:
    """Import name -> folder of each package ``root``'s pyproject installs."""
    cfg = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    dirs, packages = cfg["tool"]["setuptools"]["package-dir"], cfg["tool"]["setuptools"]["packages"]
    out = {}
    for pkg in packages:
        parts = pkg.split(".")
        head = next(n for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in dirs)
        out[pkg] = root.joinpath(dirs[".".join(parts[:head])], *parts[head:])
    return out


def product_modules(root: Path = ROOT) -> dict[str, Path]:
    """Import name -> file of every product module (a package's name for its ``__init__``)."""
    mods = {}
    for pkg, folder in package_dirs(root).items():
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("test_") or path.name == "conftest.py":
                continue
            mods[pkg if path.stem == "__init__" else f"{pkg}.{path.stem}"] = path
    return mods


def imports_of(name: str, path: Path, modules: dict) -> list[tuple[int, str]]:
    """(line, imported name) of each project import in module ``name`` (any depth in the
    file); ``from P import x`` names the module ``P.x`` when there is one, else ``P``."""
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([node.module] if node.module else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]
        else:
            continue
        out += [(node.lineno, t) for t in targets if t == CORE or t.startswith(CORE + ".")]
    return out


def folder_of(module: str, modules: dict) -> str:
    """The folder of ``module``: ``mfsoftmax.<package>`` for a package's modules, ``mfsoftmax``
    (the core) for the modules of ``mfsoftmax`` itself; ``__main__`` is the CLI's."""
    parts = module.split(".")
    if parts[1:2] == ["__main__"]:
        return f"{CORE}.cli"
    if len(parts) > 1 and (f"{CORE}.{parts[1]}" in modules
                           and modules[f"{CORE}.{parts[1]}"].stem == "__init__"):
        return f"{CORE}.{parts[1]}"
    return CORE


def import_graph(root: Path = ROOT):
    """(modules, {module: [(line, imported module)]}, [unknown imports as messages])."""
    modules = product_modules(root)
    graph, unknown = {}, []
    for name, path in modules.items():
        graph[name] = []
        for line, target in imports_of(name, path, modules):
            if target in modules:
                graph[name].append((line, target))
            else:
                unknown.append(f"{_rel(path, root)}:{line}: imports {target}, no module of the "
                               "project (moved or renamed?)")
    return modules, graph, unknown


def _rel(path: Path, root: Path = ROOT) -> str:
    return path.relative_to(root).as_posix()


# ------------------------------------------------------------------------------- the checks
def long_module(path: Path, root: Path = ROOT) -> list[str]:
    """The module's size when over its limit, as a message (none else)."""
    n = len(path.read_text(encoding="utf-8").splitlines())
    return [f"{_rel(path, root)}: {n} lines (limit {MAX_MODULE_LINES})"] if n > MAX_MODULE_LINES else []


def long_functions(path: Path, root: Path = ROOT) -> list[str]:
    """Each function or method of the module over its limit, as a message."""
    text = path.read_text(encoding="utf-8")
    out = []

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = child.end_lineno - child.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    out.append(f"{_rel(path, root)}:{child.lineno}: {prefix}{child.name}: {size} "
                               f"lines (limit {MAX_FUNCTION_LINES})")
                walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")
            else:
                walk(child, prefix)

    walk(ast.parse(text, str(path)), "")
    return out


def folder_edges(modules: dict, graph: dict, root: Path = ROOT) -> dict[str, dict[str, str]]:
    """{folder: {folder it imports: the first import that does it, as ``file:line module``}}."""
    edges: dict[str, dict[str, str]] = {}
    for name, targets in graph.items():
        src = folder_of(name, modules)
        for line, target in targets:
            dst = folder_of(target, modules)
            if dst != src:
                edges.setdefault(src, {}).setdefault(
                    dst, f"{_rel(modules[name], root)}:{line} {target}")
    return edges


def shortest_path(start: str, next_of, is_goal) -> list[str] | None:
    """The shortest ``[start, ..., goal]`` (at least one step) along ``next_of(node)`` to a node
    where ``is_goal(node)``, else None (breadth-first, successors in the order given)."""
    back, queue = {start: None}, deque([start])
    while queue:
        node = queue.popleft()
        for nxt in next_of(node):
            if is_goal(nxt):
                path = [node]
                while back[path[-1]] is not None:
                    path.append(back[path[-1]])
                return [*reversed(path), nxt]
            if nxt not in back:
                back[nxt] = node
                queue.append(nxt)
    return None


def cycles(edges: dict[str, dict]) -> list[list[str]]:
    """One shortest cycle ``[a, b, ..., a]`` through each folder that is on one (each cycle
    once)."""
    found, seen = [], set()
    for start in sorted(edges):
        cycle = shortest_path(start, lambda n: sorted(edges.get(n, {})), lambda n, s=start: n == s)
        if cycle and frozenset(cycle) not in seen:
            seen.add(frozenset(cycle))
            found.append(cycle)
    return found


def reader_chains(modules: dict, graph: dict, writer=WRITER, readers=READERS,
                  root: Path = ROOT) -> list[str]:
    """For each writer module that reaches a reader module through imports (importing a module
    runs its packages' ``__init__`` too), the shortest chain, as a message."""
    def within(name, prefixes):
        return any(name == p or name.startswith(p + ".") for p in prefixes)

    def next_of(name):
        parent = name.rpartition(".")[0]
        return [*(t for _, t in graph[name]), *([parent] if parent in modules else [])]

    out = []
    for start in sorted(m for m in modules if within(m, writer)):
        chain = shortest_path(start, next_of, lambda n: within(n, readers))
        if chain:
            out.append(f"{_rel(modules[start], root)} imports a reader: " + " -> ".join(chain))
    return out


def unlisted_packages(root: Path = ROOT) -> list[str]:
    """Folders of product code (``.py`` files other than pytest's) that pyproject does not
    install, as messages."""
    listed = {p.resolve() for p in package_dirs(root).values()}
    found = set()
    for top in sorted(root.iterdir()):
        if (not top.is_dir() or top.name.startswith(".") or top.name in NOT_PRODUCT
                or top.name.endswith(".egg-info")):
            continue
        found |= {path.parent for path in top.rglob("*.py")
                  if not (path.name.startswith("test_") or path.name == "conftest.py")}
    return [f"{_rel(folder, root)}/: Python modules in a package pyproject does not list in "
            "[tool.setuptools] packages (not installed from a clean clone)"
            for folder in sorted(found) if folder.resolve() not in listed]


# ------------------------------------------------------------------------------- the tests
def test_every_package_folder_is_installed():
    missing = unlisted_packages()
    assert not missing, "\n".join(missing)


def test_every_project_import_names_a_module():
    _, _, unknown = import_graph()
    assert not unknown, "\n".join(unknown)


def test_no_module_over_450_lines():
    found = [msg for path in product_modules().values() for msg in long_module(path)]
    assert not found, "modules over the size limit (split them):\n" + "\n".join(found)


def test_no_function_over_80_lines():
    found = [msg for path in product_modules().values() for msg in long_functions(path)]
    assert not found, "functions over the size limit (split them):\n" + "\n".join(found)


def test_no_import_cycle_between_folders():
    modules, graph, _ = import_graph()
    edges = folder_edges(modules, graph)
    assert {"mfsoftmax.bench", "mfsoftmax.reports", "mfsoftmax.cli"} <= set(edges)  # walked
    found = [" -> ".join(c) + "  (" + "; ".join(edges[a][b] for a, b in zip(c, c[1:], strict=False))
             + ")" for c in cycles(edges)]
    assert not found, "import cycles between folders:\n" + "\n".join(found)


def test_the_writer_imports_no_reader():
    modules, graph, _ = import_graph()
    assert any(m.startswith("mfsoftmax.bench.stages.") for m in modules)  # the stages are walked
    chains = reader_chains(modules, graph)
    assert not chains, "\n".join(chains)


# ------------------------------------------------------------------- the checks catch things
def _toy(tmp_path, files: dict[str, str]) -> Path:
    """A repository with packages ``mfsoftmax`` (src/mfsoftmax), ``mfsoftmax.a`` (a) with
    ``mfsoftmax.a.sub`` (a/sub) and ``mfsoftmax.b`` (b), holding ``files``."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.setuptools]\npackage-dir = {"mfsoftmax" = "src/mfsoftmax", "mfsoftmax.a" = "a", '
        '"mfsoftmax.b" = "b"}\npackages = ["mfsoftmax", "mfsoftmax.a", "mfsoftmax.a.sub", '
        '"mfsoftmax.b"]\n')
    for rel in ("src/mfsoftmax", "a", "a/sub", "b"):
        (tmp_path / rel).mkdir(parents=True)
        (tmp_path / rel / "__init__.py").write_text("")
    for rel, text in files.items():
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_the_checks_catch_a_cycle_a_reader_and_a_stale_import(tmp_path):
    root = _toy(tmp_path, {
        "a/sub/deep.py": "def f():\n    from ...b import view  # lazy: a function-level import\n",
        "b/view.py": "from mfsoftmax.a import sub\nfrom mfsoftmax.gone import x\n",
        "src/mfsoftmax/core.py": "import json\n",
    })
    modules, graph, unknown = import_graph(root)
    assert graph["mfsoftmax.a.sub.deep"] == [(2, "mfsoftmax.b.view")]  # relative, resolved
    assert unknown == ["b/view.py:2: imports mfsoftmax.gone, no module of the project "
                       "(moved or renamed?)"]
    edges = folder_edges(modules, graph, root)
    assert cycles(edges) == [["mfsoftmax.a", "mfsoftmax.b", "mfsoftmax.a"]]
    assert edges["mfsoftmax.a"]["mfsoftmax.b"] == "a/sub/deep.py:2 mfsoftmax.b.view"
    chains = reader_chains(modules, graph, writer=("mfsoftmax.a.sub",), readers=("mfsoftmax.b",),
                           root=root)
    assert chains == ["a/sub/deep.py imports a reader: mfsoftmax.a.sub.deep -> mfsoftmax.b.view"]
    assert folder_of("mfsoftmax.core", modules) == "mfsoftmax"
    assert folder_of("mfsoftmax.__main__", modules) == "mfsoftmax.cli"


def test_the_checks_catch_sizes_and_unlisted_packages(tmp_path):
    body = "".join(f"        x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES - 1))
    root = _toy(tmp_path, {
        "a/big.py": ("class C:\n    @property\n    def ok(self):\n" + body
                     + "\n    def long(self):\n" + body + "        pass\n" + "\n" * MAX_MODULE_LINES),
    })
    (root / "b" / "new").mkdir()
    (root / "b" / "new" / "ranker.py").write_text("")  # a namespace package: no __init__.py
    n = len((root / "a" / "big.py").read_text().splitlines())
    assert long_module(root / "a" / "big.py", root) == [
        f"a/big.py: {n} lines (limit {MAX_MODULE_LINES})"]
    assert long_module(root / "a" / "__init__.py", root) == []
    assert long_functions(root / "a" / "big.py", root) == [  # C.ok: exactly at the limit
        f"a/big.py:{MAX_FUNCTION_LINES + 4}: C.long: {MAX_FUNCTION_LINES + 1} lines "
        f"(limit {MAX_FUNCTION_LINES})"]
    assert [m.split(":")[0] for m in unlisted_packages(root)] == ["b/new/"]
