"""Status from heartbeat age with a frozen clock: fresh → stale → offline → back online."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

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


def test_a_status_change_carries_its_rows_facts_and_a_replay_renders_the_same_row(
    django_assert_num_queries, viewer
) -> None:
    """#26 §5: the row a status change pushes names the task the agent works on, its 24 h cost
    and a budget's pause. The presenter once read them when it rendered (a query each, and a
    replay of an old event showed today's figures); now the event carries them."""
    from agents import events, presenters
    from tasks.models import Task
    from tests.billing import factories as billing

    task = Task.objects.create(title="Write the parser")
    ada = Agent.objects.create(name="ada", current_task_id=task.pk)
    billing.spend(ada.pk)  # $0.0075
    beat(ada)
    data = events.agent_data(Agent.objects.get(pk=ada.pk))
    assert data["facts"]["task_title"] == "Write the parser"
    assert Decimal(data["facts"]["cost_24h"]) == Decimal("0.0075")
    assert "paused" not in data["facts"]
    fleet: events.FleetData = {"next_agent_id": None, "status_counts": {}}
    with django_assert_num_queries(0):
        pushed = presenters.row_ops(data, fleet)[0]["html"]
    assert "Write the parser" in pushed
    assert "$0.0075" in pushed
    # The page's row and the pushed row are one rendering, in any zone the viewer reads in.
    viewer.cookies["mc_tz"] = "Etc/GMT+12"
    page = viewer.get("/agents/").content.decode()
    row = page[page.index(f'<tr id="agent-{ada.pk}"') :]
    assert row[: row.index("</tr>") + 5].strip() == pushed.strip()
    # Later the task is renamed and more is spent: the old event still renders as it was.
    Task.objects.filter(pk=task.pk).update(title="Something else")
    billing.spend(ada.pk)
    assert presenters.row_ops(data, fleet)[0]["html"] == pushed
