"""The event catalogue is one thing (issue #26 §5): the event types the apps register with their
topics (`live.register_topic` / `register_events`), the tables of docs/events.md, the TypedDicts'
`type` literals and the webhook event list are kept equal here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from missioncontrol import live
from tests.missioncontrol.test_boundary import APPS
from webhooks import outbox

ROOT = Path(__file__).resolve().parents[2]

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


def test_configuration_changes_are_typed_events(db, carol_admin, alice_viewer):
    """Budgets, webhook endpoints and gateway grants changed by an admin are domain events (a
    webhook subscriber can follow them), each once, with what it now is."""
    from decimal import Decimal

    from billing import actions as billing
    from billing.models import Budget
    from gateways import actions as gateways
    from missioncontrol.audit import Actor
    from missioncontrol.models import LiveEvent
    from tests.gateways.factories import make_gateway
    from webhooks import actions as webhooks
    from webhooks.models import Endpoint

    actor = Actor.user(carol_admin)
    budget = billing.save_budget(
        actor, Budget(name="Cap", amount_usd=Decimal("5"), thresholds=[80])
    )
    budget.amount_usd = Decimal("7")
    billing.save_budget(actor, budget)
    billing.delete_budget(actor, budget)
    endpoint = webhooks.save_endpoint(actor, Endpoint(url="https://example.com/hook"))
    webhooks.delete_endpoint(actor, Endpoint.objects.get(pk=endpoint.pk))
    gateways.set_grant(actor, make_gateway(), alice_viewer, "operate")

    seen = [(e.type, e.topic, e.payload) for e in LiveEvent.objects.order_by("seq")]
    config = [
        (t, topic, p)
        for t, topic, p in seen
        if t in live.event_types() and "actor" in p and t != "gateway.added"  # the factory's
    ]
    kinds = [(t, topic) for t, topic, _p in config]
    assert kinds == [
        ("budget.saved", "costs"),
        ("budget.saved", "costs"),
        ("budget.deleted", "costs"),
        ("webhook.endpoint_saved", "alerts"),
        ("webhook.endpoint_deleted", "alerts"),
        ("gateway.grant_changed", "gateways"),
    ]
    payloads = [p for _t, _topic, p in config]
    assert [p.get("created") for p in payloads[:2]] == [True, False]
    assert Decimal(payloads[1]["budget"]["amount_usd"]) == 7
    assert "secret" not in payloads[3]["endpoint"]
    assert payloads[3]["endpoint"]["url"] == "https://example.com/hook"
    assert payloads[5]["user"]["username"] == "alice"
    assert payloads[5]["level"] == "operate"
    for event_type, _topic, payload in config:
        assert live.event_types()[event_type]
        assert payload["actor"]["label"] == "carol", event_type
