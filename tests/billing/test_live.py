"""Usage moves the cost pages: one coalesced `usage.recorded` event a second, after commit."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import transaction

from billing import announcer
from billing.actions import UsageItem, record_usage
from missioncontrol.models import LiveEvent
from tests.agents.factories import AgentFactory

AT = datetime(2026, 11, 20, 12, tzinfo=UTC)


def test_committed_usage_is_announced_once_a_second(broadcasts):
    agent = AgentFactory.create(name="ada")
    with transaction.atomic():
        record_usage([UsageItem(agent.pk, "gpt-4o", 1000, 500, AT, provider="openai")])
        record_usage([UsageItem(agent.pk, "gpt-4o", 1000, 500, AT, provider="openai")])
    assert announcer.announce_usage() is True
    (event,) = LiveEvent.objects.filter(type="usage.recorded")
    assert event.topic == "costs"
    assert event.payload == {"type": "usage.recorded", "records": 2, "cost_usd": "0.015000000"}
    # Nothing new: nothing announced; new usage within the second waits for the next one.
    assert announcer.announce_usage() is False
    with transaction.atomic():
        record_usage([UsageItem(agent.pk, "gpt-4o", 10, 10, AT, provider="openai")])
    assert announcer.announce_usage() is False
    announcer._announced[0] -= 2  # as if a second and more had passed
    assert announcer.announce_usage() is True
    assert LiveEvent.objects.filter(type="usage.recorded").count() == 2


def test_rolled_back_usage_moves_nothing(transactional_db):
    agent = AgentFactory.create(name="ada")
    try:
        with transaction.atomic():
            record_usage([UsageItem(agent.pk, "gpt-4o", 1000, 500, AT, provider="openai")])
            raise RuntimeError("the batch failed")
    except RuntimeError:
        pass
    assert announcer.announce_usage() is False
    assert not LiveEvent.objects.filter(type="usage.recorded").exists()
