"""Queries live in store/: notifiers/ asks store's functions and runs no SQL of its own.
(Import direction, cycles and function-local imports: tests/test_layers.py.)"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "notifiers"
QUERY_METHODS = {"query", "scalars", "scalar", "execute"}  # a Session's ways to run SQL
MODULES = sorted(PACKAGE.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_queries_are_left_to_store(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Name) and node.func.id == "select")
        or (isinstance(node.func, ast.Attribute) and node.func.attr in QUERY_METHODS))]
    assert calls == []
