"""Status from heartbeat age with a frozen clock: fresh → stale → offline → back online."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone

from agents import actions
from agents.models import Agent, AgentStatusChange
from missioncontrol.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)


def beat(agent: Agent, status: str | None = "busy") -> None:
    with transaction.atomic():
        actions.apply_heartbeats(
            [
                actions.Heartbeat(
                    agent_id=agent.pk, key_id=0, status=status, received_at=timezone.now()
                )
            ]
        )


def status_of(agent: Agent) -> str:
    return Agent.objects.get(pk=agent.pk).status


def test_fresh_stale_offline_and_back(broadcasts, settings):
    settings.MC_AGENT_OFFLINE_AFTER_S = 600
    agent = Agent.objects.create(name="eve", heartbeat_interval_s=30)
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        beat(agent, "busy")
        assert status_of(agent) == "busy"
        clock.shift(59)
        assert actions.sweep_statuses() == 0
        assert status_of(agent) == "busy"  # within 2 × interval
        clock.shift(2)
        assert actions.sweep_statuses() == 1
        assert status_of(agent) == "stale"
        clock.shift(600)
        assert actions.sweep_statuses() == 1
        assert status_of(agent) == "offline"
        assert actions.sweep_statuses() == 0  # nothing more to do
        beat(agent, None)
        assert status_of(agent) == "idle"  # back online; no status reported means idle
    history = list(
        AgentStatusChange.objects.filter(agent=agent).order_by("id").values_list("old", "new")
    )
    assert history == [
        ("offline", "busy"),
        ("busy", "stale"),
        ("stale", "offline"),
        ("offline", "idle"),
    ]
    assert (
        AuditEvent.objects.filter(verb="agent.status_changed", object_id=str(agent.pk)).count() == 4
    )
    fleet = [m for m in broadcasts if m["topic"] == "fleet"]
    changed = [
        json.loads(m["data"])["data"] for m in fleet if '"agent.status_changed"' in m["data"]
    ]
    assert [(c["before"], c["after"], c["reason"]) for c in changed][1] == (
        "busy",
        "stale",
        "missed heartbeats",
    )
    assert changed[1]["agent"]["name"] == agent.name
    assert f'id=\\"agent-{agent.pk}\\"' in next(
        m["text"] for m in fleet if '"agent.status_changed"' in m["text"]
    )


def test_steady_heartbeats_change_nothing(broadcasts):
    agent = Agent.objects.create(name="steady")
    beat(agent, "idle")
    broadcasts.clear()
    for _ in range(5):
        beat(agent, "idle")
    assert AgentStatusChange.objects.filter(agent=agent).count() == 1
    assert [m for m in broadcasts if '"agent.status_changed"' in m["text"]] == []


def test_seen_events_are_coalesced(broadcasts):
    a = Agent.objects.create(name="a1")
    b = Agent.objects.create(name="b1")
    now = timezone.now()
    actions.publish_seen({a.pk: now, b.pk: now - timedelta(seconds=1)})
    # This test's agents only: the ingest writer may still flush an earlier test's pending
    # "seen" batch (its own agents) while this one runs.
    [event] = [
        m for m in broadcasts if '"agent.seen"' in m["text"] and f"agent-{a.pk}" in m["text"]
    ]
    assert f"agent-{a.pk}" in event["text"]
    assert f"agent-{b.pk}" in event["text"]
    # Their own pages' heads too (a fragment of its own id).
    assert f"agent-head-{a.pk}" in event["text"]


def test_error_status_is_kept_while_fresh():
    agent = Agent.objects.create(name="err")
    beat(agent, "error")
    beat(agent, None)
    assert status_of(agent) == "error"


def test_heartbeat_times_are_stored_as_the_orm_stores_them():
    """Raw batch SQL must write datetimes the ORM can compare with (the sweep's range query)."""
    from django.db import connection

    agent = Agent.objects.create(name="fmt", heartbeat_interval_s=30)
    beat(agent, "busy")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT last_seen_at || '', stale_at || '' FROM agents_agent WHERE id = %s", [agent.pk]
        )
        seen, stale = cursor.fetchone()
    fresh = Agent.objects.create(name="orm", last_seen_at=timezone.now())
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_seen_at || '' FROM agents_agent WHERE id = %s", [fresh.pk])
        (orm_written,) = cursor.fetchone()
    # Same text form as the ORM's (no "+00:00" suffix that would break string comparison).
    assert ("+" in seen) == ("+" in orm_written)
    assert ("+" in stale) == ("+" in orm_written)
    assert Agent.objects.stale(timezone.now() + timedelta(seconds=61)).filter(pk=agent.pk).exists()
    assert (
        not Agent.objects.stale(timezone.now() + timedelta(seconds=30)).filter(pk=agent.pk).exists()
    )
