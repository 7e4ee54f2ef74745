"""What billing adds to an agent's row (agents.events.register_row_facts): its cost over the
last 24 hours and the budget pause that holds it, if any."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from agents.events import RowFacts
from agents.models import Agent
from billing import budgets, reports


def agent_row_facts(agents: list[Agent]) -> dict[int, RowFacts]:
    # A window without a time zone: every viewer reads the same.
    now = timezone.now()
    costs = reports.cost_by_agent([a.pk for a in agents], now - timedelta(hours=24), now)
    pauses = budgets.paused({a.pk for a in agents}, {a.pk: a.gateway_id for a in agents})
    found: dict[int, RowFacts] = {}
    for agent in agents:
        facts: RowFacts = {}
        if agent.pk in costs:
            facts["cost_24h"] = str(costs[agent.pk])
        if agent.pk in pauses:
            facts["paused"] = pauses[agent.pk].reason
        if facts:
            found[agent.pk] = facts
    return found
