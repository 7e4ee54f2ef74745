"""The boundary (DESIGN.md): edges turn the outside world into calls of actions and open no
transaction of their own — the action owns it (issue #26 §2). Management commands that copy or
re-key a whole database (copy_data, rotate_encryption_key) are maintenance tools, not edges
of a business operation, and are left out."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("missioncontrol", "tasks", "agents", "gateways", "billing", "webhooks", "crons")
EDGES = (
    "views.py",
    "api.py",
    "ingest.py",
    "stream.py",
    "consumers.py",
    "fastpath.py",
    "connector.py",
    "admin.py",
)


def _opens_a_transaction(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr == "atomic":
            lines.append(node.lineno)
        if isinstance(node, ast.Name) and node.id == "atomic":
            lines.append(node.lineno)
    return lines


def test_no_edge_opens_a_transaction() -> None:
    found = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if path.name in EDGES or path.name.endswith("_views.py"):
                found += [f"{path.relative_to(ROOT)}:{n}" for n in _opens_a_transaction(path)]
    assert found == []
