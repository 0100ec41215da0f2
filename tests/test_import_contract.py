"""The import contract: ``tasks/`` (plain logic) and ``schemas/`` (contracts) never import
Prefect, nor ``flows/`` (which does), so a unit test reaches them without the orchestrator.
Every import of every module counts, inside functions too, and ``importlib.import_module``
with a constant name. Run by ``make check`` and by both test tiers."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLAIN_PACKAGES = ("tasks", "schemas")
FORBIDDEN = {"prefect", "prefect_dask", "flows"}


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
    return [name for name in imported_modules(tree) if name.split(".")[0] in FORBIDDEN]


def test_the_contract_sees_every_way_of_importing():
    source = """
import prefect
import numpy, prefect.states as states
from prefect.logging import get_run_logger
from flows.settings import SegmentationSettings

def later():
    import prefect_dask
    importlib.import_module("prefect.runtime")
    return __import__("flows")

import prefecture  # another package that starts with the same letters
from tasks.table import Table
from . import sibling
"""
    assert sorted(forbidden_imports(ast.parse(source))) == [
        "flows",
        "flows.settings",
        "prefect",
        "prefect.logging",
        "prefect.runtime",
        "prefect.states",
        "prefect_dask",
    ]


def test_tasks_and_schemas_never_import_prefect_or_flows():
    files = sorted(path for package in PLAIN_PACKAGES for path in (ROOT / package).rglob("*.py"))
    assert len(files) > 20, files  # the scan really covers both packages
    found = {
        str(path.relative_to(ROOT)): forbidden_imports(ast.parse(path.read_text(encoding="utf-8")))
        for path in files
    }
    assert {path: names for path, names in found.items() if names} == {}
