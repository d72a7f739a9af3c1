"""The layout's rules, read from the source: no import cycle among the project's modules, ``embeddings``
never imports ``qa``, and no module grows past a few hundred lines."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("qa", "embeddings")
MAX_LINES = 350


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    found = {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    found["app"] = ROOT / "app.py"
    return found


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """The project modules ``path`` imports, at any depth of its code (a function-level import counts:
    it runs the imported module too). ``from a.b import c`` imports ``a.b.c`` when that is a module,
    else ``a.b``."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in known)
    return found - {name}


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, name, set(modules)) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None.

    Importing a submodule also runs its package's ``__init__``; that edge is not followed, since an
    ``__init__`` that re-exports its own submodules is not a cycle.

    >>> find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}})
    ['a', 'b', 'c', 'a']
    >>> find_cycle({"a": {"b"}, "b": set()}) is None
    True
    """
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if node.startswith(target + "."):  # a submodule importing its own package's __init__
                continue
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if state.get(target) is None and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if state.get(start) is None and (cycle := visit(start)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle_and_no_false_one():
    import doctest
    import sys

    failed, attempted = doctest.testmod(sys.modules[__name__])
    assert attempted >= 2 and failed == 0


def test_no_import_cycle_among_the_project_modules():
    graph = import_graph()
    assert {"qa.answer", "qa.generation.factory", "embeddings.build"} <= set(graph)  # the walk saw the tree
    assert "qa.generation.base" in graph["qa.generation.ikllama"]  # and its edges
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_embeddings_never_imports_qa():
    graph = import_graph()
    leaks = {name: sorted(t for t in targets if t.split(".")[0] == "qa")
             for name, targets in graph.items() if name.split(".")[0] == "embeddings"}
    assert not {k: v for k, v in leaks.items() if v}


def test_backends_import_the_base_never_the_factory():
    graph = import_graph()
    for backend in ("qa.generation.ikllama", "qa.generation.llamacpp", "qa.generation.hftransformers"):
        assert "qa.generation.factory" not in graph[backend]


def test_evaluation_and_interfaces_sit_on_top_of_the_core():
    """The answer steps never import evaluation, the CLI or the UI (those depend on the core)."""
    graph = import_graph()
    upper = ("qa.evaluation", "qa.cli", "qa.ui", "app")
    for name, targets in graph.items():
        if not name.startswith(upper):
            assert not [t for t in targets if t.startswith(upper)], name


@pytest.mark.parametrize("name", sorted(project_modules()))
def test_modules_stay_short(name: str):
    lines = project_modules()[name].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it by responsibility"


def test_app_py_is_a_thin_entry_point():
    assert (ROOT / "app.py").read_text(encoding="utf-8").count("\n") < 150


@pytest.mark.parametrize("script", sorted(p.stem for p in (ROOT / "bench").glob("bench_*.py")))
def test_every_bench_script_imports(script, monkeypatch):
    """A bench script that no longer imports after a move is a bench nobody can rerun."""
    monkeypatch.syspath_prepend(str(ROOT))
    module = importlib.import_module(f"bench.{script}")
    assert callable(getattr(module, "main", None)), f"bench/{script}.py has no main()"
