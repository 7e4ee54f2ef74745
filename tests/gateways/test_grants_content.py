"""Issue #30 §2: per-gateway grants narrow what a user *sees*, not only what a route answers —
budgets and their spend, budget alerts (banner, overview, the budgets page), their live events
and activity rows, the assignee selects and the costs filter chips; and an operator narrowed to
one gateway cannot acknowledge another gateway's alert."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.db import transaction
from django.test import Client
from django.urls import reverse

from agents import actions as agent_actions
from agents.models import Agent
from billing import actions as billing_actions
from billing.actions import UsageItem, record_usage
from billing.models import Budget, BudgetAlert
from gateways import actions as gateway_actions
from gateways import frames
from missioncontrol import live, subscriptions
from missioncontrol.audit import Actor
from missioncontrol.models import AuditEvent, LiveEvent
from tasks.models import Task
from tests.gateways.factories import make_gateway
from tests.missioncontrol.factories import UserFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
ADMIN = Actor.system("test")
HIDDEN = ("HiddenGatewayBudget", "HiddenAgentBudget", "AllSpendBudget", "ModelBudget")


@pytest.fixture
def world() -> Any:
    with time_machine.travel(NOW, tick=False):
        seen = make_gateway(name="seen-gw")
        hidden = make_gateway(name="hidden-gw", url="ws://127.0.0.1:10/")
        for gateway in (seen, hidden):
            agent_actions.sync_gateway_agents(gateway.pk, frames.agents([{"id": "main"}]))
        agents = {g.name: Agent.objects.get(gateway=g) for g in (seen, hidden)}
        direct = Agent.objects.create(name="direct-ada")
        plan: dict[str, Any] = {"amount_usd": Decimal("0.01"), "thresholds": [50]}
        scopes: list[tuple[str, dict[str, Any]]] = [
            ("SeenGatewayBudget", {"scope": "gateway", "gateway": seen}),
            ("DirectAgentBudget", {"scope": "agent", "agent": direct}),
            ("HiddenGatewayBudget", {"scope": "gateway", "gateway": hidden}),
            ("HiddenAgentBudget", {"scope": "agent", "agent": agents["hidden-gw"]}),
            ("AllSpendBudget", {"scope": "all"}),
            ("ModelBudget", {"scope": "model", "model": "gpt-4o"}),
        ]
        for name, kw in scopes:
            billing_actions.save_budget(ADMIN, Budget(name=name, **plan, **kw))
        for agent in (agents["seen-gw"], agents["hidden-gw"], direct):
            with transaction.atomic():  # $0.0075 each: every budget crosses 50 %
                record_usage([UsageItem(agent.pk, "gpt-4o", 1000, 500, NOW, provider="openai")])
        otto = UserFactory.create(username="otto", role="operator")
        gateway_actions.set_grant(ADMIN, seen, otto, "view")
        client = Client()
        client.force_login(otto)
        yield {"seen": seen, "hidden": hidden, "agents": agents, "direct": direct, "client": client}


def alert_of(name: str) -> BudgetAlert:
    return BudgetAlert.objects.get(budget__name=name)


def test_every_budget_crossed(world):
    assert BudgetAlert.objects.count() == 6


@pytest.mark.parametrize("url", ["/", "/board/", "/costs/budgets/", "/agents/"])
def test_pages_show_only_the_budgets_and_alerts_of_granted_gateways(world, url):
    page = world["client"].get(url).content.decode()
    for name in HIDDEN:
        assert name not in page, f"{name} on {url}"
    if url != "/agents/":  # the banner, the overview and the budgets page show the rest
        assert "SeenGatewayBudget" in page
        assert "DirectAgentBudget" in page


def test_an_unnarrowed_operator_still_sees_every_budget(world):
    UserFactory.create(username="olga", role="operator")
    client = Client()
    client.force_login(UserFactory._meta.model.objects.get(username="olga"))
    page = client.get("/costs/budgets/").content.decode()
    for name in (*HIDDEN, "SeenGatewayBudget", "DirectAgentBudget"):
        assert name in page


def test_an_operator_cannot_acknowledge_another_gateways_alert(world):
    client = world["client"]
    for name in HIDDEN:
        alert = alert_of(name)
        response = client.post(reverse("billing:alert-ack", args=[alert.pk]))
        assert response.status_code == 404
        alert.refresh_from_db()
        assert alert.acknowledged_at is None
    mine = alert_of("SeenGatewayBudget")
    assert client.post(reverse("billing:alert-ack", args=[mine.pk])).status_code == 302
    mine.refresh_from_db()
    assert mine.acknowledged_at is not None


def test_alert_events_and_audit_rows_carry_the_gateway_they_concern(world):
    seen, hidden = world["seen"].pk, world["hidden"].pk
    expected = {
        "SeenGatewayBudget": seen,
        "DirectAgentBudget": None,
        "HiddenGatewayBudget": hidden,
        "HiddenAgentBudget": hidden,
        "AllSpendBudget": live.EVERY_GATEWAY,
        "ModelBudget": live.EVERY_GATEWAY,
    }
    events = {
        e.payload["budget"]["name"]: e.gateway_id
        for e in LiveEvent.objects.filter(type="budget.threshold_crossed")
    }
    assert events == expected
    rows = {
        a.object_repr: a.gateway_id
        for a in AuditEvent.objects.filter(verb="budget.threshold_crossed")
    }
    assert rows == expected
    # And the live filter leaves out what the narrowed user may not see.
    sub = subscriptions.Subscription(["alerts"], "operator", gateways=frozenset({seen}))
    shown = {name for name, gid in events.items() if sub._shows("operator", gid)}
    assert shown == {"SeenGatewayBudget", "DirectAgentBudget"}


def test_the_activity_feed_leaves_out_other_gateways_budgets(world):
    for name in HIDDEN:
        billing_actions.acknowledge_alert(ADMIN, alert_of(name))
    page = world["client"].get("/").content.decode()
    for name in HIDDEN:
        assert name not in page


@pytest.mark.parametrize("url", ["/board/", "/tasks/", "/tasks/new/"])
def test_assignee_selects_list_only_visible_agents(world, url):
    page = world["client"].get(url).content.decode()
    assert f'value="agent:{world["agents"]["seen-gw"].pk}"' in page
    assert f'value="agent:{world["direct"].pk}"' in page
    assert f'value="agent:{world["agents"]["hidden-gw"].pk}"' not in page


def test_a_task_cannot_be_given_to_an_agent_the_user_cannot_see(world):
    hidden = world["agents"]["hidden-gw"]
    response = world["client"].post(
        "/tasks/new/",
        {"title": "x", "status": "inbox", "priority": 2, "assignee": f"agent:{hidden.pk}"},
    )
    assert response.status_code == 422
    assert not Task.objects.filter(title="x").exists()


def test_costs_chips_do_not_name_a_gateway_the_user_cannot_see(world):
    client = world["client"]
    page = client.get(f"/costs/?gateway={world['hidden'].pk}").content.decode()
    assert "hidden-gw" not in page
    assert f"#{world['hidden'].pk}" in page
    page = client.get(f"/costs/?gateway={world['seen'].pk}").content.decode()
    assert "seen-gw" in page
    # An agent of the hidden gateway by name filters to nothing (the seen one's to itself).
    for name, expected in (("hidden-gw", -1), ("seen-gw", world["agents"]["seen-gw"].pk)):
        page = client.get(f"/costs/?agent={world['agents'][name].name}")
        assert page.context["q"].filters.agent_id == expected, name
