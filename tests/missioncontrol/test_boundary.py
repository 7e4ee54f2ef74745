"""The boundary (DESIGN.md): edges turn the outside world into calls of actions and open no
transaction of their own — the action owns it (issue #26 §2); actions take typed inputs, never
an untyped payload (issue #26 §1: a gateway's frames are typed in gateways/frames.py, forms and
API bodies arrive as dataclasses or TypedDicts). Management commands that copy or
re-key a whole database (copy_data, rotate_encryption_key) are maintenance tools, not edges
of a business operation, and are left out."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = (
    "missioncontrol",
    "tasks",
    "agents",
    "gateways",
    "billing",
    "webhooks",
    "crons",
    "runs",
    "pipelines",
    "mcpserver",
    "notifications",
)
EDGES = (
    "views.py",
    "api.py",
    "ingest.py",
    "stream.py",
    "consumers.py",
    "fastpath.py",
    "connector.py",
    "admin.py",
    "tools.py",
    "endpoint.py",
    "server.py",
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


# An annotation is untyped when it is (or holds) Any, or is a bare container or `object`
# whose contents nobody named.
_LOOSE = {"Any", "object", "dict", "list", "tuple", "Mapping", "Sequence", "Iterable"}


def _loose(annotation: ast.expr | None) -> bool:
    if annotation is None:
        return True
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        annotation = ast.parse(annotation.value, mode="eval").body
    if isinstance(annotation, ast.Name | ast.Attribute):
        name = annotation.id if isinstance(annotation, ast.Name) else annotation.attr
        return name in _LOOSE
    # Any inside (dict[str, Any], list[Any], X | Any); `Mapping[str, object]` names its keys
    # and is how an audit detail (JSON) is passed: allowed.
    return any(isinstance(n, ast.Name) and n.id == "Any" for n in ast.walk(annotation))


def untyped_action_parameters(root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted(root.glob("*/actions.py")):
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if node.name.startswith("_"):
                continue
            args = node.args
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                if arg.arg in {"self", "cls"}:
                    continue
                if _loose(arg.annotation):
                    shown = ast.unparse(arg.annotation) if arg.annotation else "no annotation"
                    found.append(f"{path.parent.name}.{node.name}({arg.arg}: {shown})")
    return found


def test_no_action_takes_an_untyped_payload() -> None:
    assert untyped_action_parameters() == []


def test_the_walk_sees_an_untyped_payload(tmp_path: Path) -> None:
    app = tmp_path / "shop"
    app.mkdir()
    (app / "actions.py").write_text(
        "from typing import Any\n"
        "def buy(order: dict[str, Any], note: str) -> None: ...\n"
        "def sell(what, price: int) -> None: ...\n"
        "def ship(box: Mapping[str, object], to: list[Any]) -> None: ...\n"
        "def _private(x: Any) -> None: ...\n"
    )
    assert untyped_action_parameters(tmp_path) == [
        "shop.buy(order: dict[str, Any])",
        "shop.sell(what: no annotation)",
        "shop.ship(to: list[Any])",
    ]


# The direction core modules import in (docs/design.md, "Import direction"): an app's core may
# import only apps below it. Edges (pages, APIs, the connector, presenters, the overview's
# parts, admin, management commands, app wiring) sit on top and may read any app.
LAYERS = {
    "missioncontrol": 0,
    "gateways": 1,
    "webhooks": 1,
    "agents": 2,
    "tasks": 3,
    "crons": 3,
    "billing": 4,
    "runs": 5,
    "pipelines": 6,
    "mcpserver": 7,
    # Reads the overview (missioncontrol), grants (gateways), the webhooks' outbox machinery.
    "notifications": 2,
}
EDGE_MODULES = {
    "views", "api", "api_urls", "api_auth", "ingest", "stream", "consumers", "fastpath",
    "connector", "commands", "history", "admin", "admin_site", "presenters", "overview",
    "context_processors", "asgi", "urls", "rows", "forms", "cards", "apps", "loops",
    "audit_views", "fragments", "nav", "openapi", "checks", "setup", "sender",
}  # fmt: skip


def _core_modules() -> list[Path]:
    found = []
    for app in LAYERS:
        for path in sorted((ROOT / app).rglob("*.py")):
            parts = set(path.relative_to(ROOT / app).parts)
            if parts & {"migrations", "management", "templatetags", "fastpath"}:
                continue
            if path.stem in EDGE_MODULES or path.stem.endswith("_views"):
                continue
            found.append(path)
    return found


def upward_imports() -> list[str]:
    wrong = []
    for path in _core_modules():
        app = path.relative_to(ROOT).parts[0]
        for node in ast.walk(ast.parse(path.read_text())):  # function-local imports too
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                target = name.split(".")[0]
                if target in LAYERS and target != app and LAYERS[target] >= LAYERS[app]:
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    return wrong


def test_core_modules_import_one_way() -> None:
    """tasks once imported billing.budgets for its pause check while billing's actions
    imported tasks', and agents' validation imported billing: a circle held by function-local
    imports. Now tasks asks a registered guard and usage is validated in billing."""
    assert upward_imports() == []
