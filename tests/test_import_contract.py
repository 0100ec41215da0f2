"""The import contract: ``tasks/`` (plain logic) and ``schemas/`` (contracts) never import
Prefect, nor ``flows/`` (which does), so a unit test reaches them without the orchestrator.
Every import of every module counts, inside functions too, and ``importlib.import_module``
with a constant name. Run by ``make check`` and by both test tiers."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the pipeline stages, the contracts, and the settings and plan of a run (segment/settings.py,
# segment/plan.py): none of them imports Prefect, flows/ or the command line
PLAIN = ("tasks", "schemas", "segment/settings.py", "segment/plan.py")
FORBIDDEN = {"prefect", "prefect_dask", "flows", "segment.cli"}


def imported_modules(tree: ast.AST) -> list[str]:
    """The absolute module names ``tree`` imports."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr)
            in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.append(node.args[0].value)
    return names


def forbidden_imports(tree: ast.AST) -> list[str]:
    return [
        name
        for name in imported_modules(tree)
        if name.split(".")[0] in FORBIDDEN or ".".join(name.split(".")[:2]) in FORBIDDEN
    ]


def test_the_contract_sees_every_way_of_importing():
    source = """
import prefect
import numpy, prefect.states as states
from prefect.logging import get_run_logger
from flows.steps import plan
from segment.cli.main import main
from segment.settings import SegmentationSettings  # the settings model: allowed

def later():
    import prefect_dask
    importlib.import_module("prefect.runtime")
    return __import__("flows")

import prefecture  # another package that starts with the same letters
from tasks.table import ColumnPlan
from . import sibling
"""
    assert sorted(forbidden_imports(ast.parse(source))) == [
        "flows",
        "flows.steps",
        "prefect",
        "prefect.logging",
        "prefect.runtime",
        "prefect.states",
        "prefect_dask",
        "segment.cli.main",
    ]


def test_tasks_and_schemas_never_import_prefect_or_flows():
    files = sorted(
        path
        for name in PLAIN
        for path in ((ROOT / name).rglob("*.py") if (ROOT / name).is_dir() else [ROOT / name])
    )
    assert len(files) > 20, files  # the scan really covers the packages
    assert ROOT / "segment" / "settings.py" in files
    found = {
        str(path.relative_to(ROOT)): forbidden_imports(ast.parse(path.read_text(encoding="utf-8")))
        for path in files
    }
    assert {path: names for path, names in found.items() if names} == {}


# --- no import cycle ------------------------------------------------------------------------------

PROJECT_PACKAGES = ("segment", "flows", "tasks", "schemas")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def without_main_block(tree: ast.Module) -> ast.Module:
    """``tree`` without its ``if __name__ == "__main__":`` block (a script's entry point runs
    the module as ``__main__``, a copy: its imports are no cycle)."""
    body = [
        node
        for node in tree.body
        if not (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name)
            and node.test.left.id == "__name__"
        )
    ]
    return ast.Module(body=body, type_ignores=[])


def project_imports(tree: ast.Module, modules: set[str]) -> set[str]:
    """The project modules ``tree`` imports, inside functions too: ``from a.b import c``
    counts as ``a.b.c`` when that is a module, else ``a.b``."""
    found = set()
    for node in ast.walk(without_main_block(tree)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if name in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found & modules


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def test_import_cycles_are_found_lazy_imports_included():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert import_cycles(graph) == [["a", "b", "c"]]
    tree = ast.parse(
        "import x.y\ndef f():\n    from x import z\nif __name__ == '__main__':\n    import w"
    )
    assert project_imports(tree, {"x.y", "x.z", "w"}) == {"x.y", "x.z"}


def test_no_module_of_the_project_imports_itself_through_others():
    files = sorted(path for package in PROJECT_PACKAGES for path in (ROOT / package).rglob("*.py"))
    modules = {module_name(path) for path in files}
    graph = {
        module_name(path): project_imports(ast.parse(path.read_text(encoding="utf-8")), modules)
        - {module_name(path)}
        for path in files
    }
    assert len(graph) > 40 and any(graph.values())  # the scan sees the project's imports
    assert import_cycles(graph) == []
