"""The event catalogue is one thing (issue #26 §5): the event types the apps register with their
topics (`live.register_topic` / `register_events`), the tables of docs/events.md, the TypedDicts'
`type` literals and the webhook event list are kept equal here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from missioncontrol import live
from webhooks import outbox

ROOT = Path(__file__).resolve().parents[2]
APPS = ("missioncontrol", "tasks", "agents", "gateways", "billing", "webhooks", "crons")
# Webhook-only types: derived from a domain event, or an admin's test.
WEBHOOK_ONLY = {"gateway.connected", "gateway.disconnected", "webhook.test"}


def documented() -> dict[str, str]:
    """type → the section it is documented in (a table row starting with it)."""
    found: dict[str, str] = {}
    section = ""
    for line in (ROOT / "docs" / "events.md").read_text().splitlines():
        if line.startswith("## "):
            section = line[3:]
        # A row's first cell: one type, or several (`a.b` / `a.c`) sharing their fields.
        cell = line.split("|")[1] if line.startswith("| `") else ""
        for event_type in re.findall(r"`([a-z_]+\.[a-z_]+)`", cell):
            found[event_type] = section
    return found


def typed() -> set[str]:
    """Every `type: Literal["x.y"]` of a TypedDict in the apps."""
    found: set[str] = set()
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                    continue
                if node.target.id != "type" or not isinstance(node.annotation, ast.Subscript):
                    continue
                value = node.annotation.slice
                if isinstance(value, ast.Constant) and "." in str(value.value):
                    found.add(str(value.value))
    return found - {"live.event"}  # the channel layer's message, not a domain event


def test_the_registered_types_are_the_documented_ones():
    registered = live.event_types()
    docs = documented()
    assert set(registered) == set(docs), (
        f"registered, not documented: {sorted(set(registered) - set(docs))}; "
        f"documented, not registered: {sorted(set(docs) - set(registered))}"
    )
    for event_type, topic in registered.items():
        assert topic in live.topics(), (event_type, topic)
        assert f"`{topic}`" in docs[event_type] or topic == "alerts", (event_type, docs[event_type])


def test_every_typed_event_is_registered():
    assert typed() <= set(live.event_types()), sorted(typed() - set(live.event_types()))


def test_webhooks_offer_every_event_but_the_named_few():
    registered = set(live.event_types())
    assert set(outbox.NOT_SENT) <= registered
    assert set(outbox.CATALOGUE) == (registered - set(outbox.NOT_SENT)) | WEBHOOK_ONLY
