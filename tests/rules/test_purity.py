"""rules/ stays pure: none of our other packages, no wall clock outside the reloader."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[2] / "rules"
MODULES = sorted(RULES.glob("*.py"))


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_no_imports_of_other_packages(path: Path) -> None:
    assert not imported(path) & {"bot", "store", "notifiers", "sqlalchemy", "httpx", "redis"}


@pytest.mark.parametrize("path", [p for p in MODULES if p.name != "holder.py"],
                         ids=[p.name for p in MODULES if p.name != "holder.py"])
def test_no_clock(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert "datetime.now" not in source and "utcnow" not in source
    assert "time" not in imported(path)
