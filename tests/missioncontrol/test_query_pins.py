"""Exact query pins on the list pages (#26 §6): each page makes the same number of queries with 2
rows as with 6 (no query per row), and that number is pinned here, so a change that adds one is
seen (raise the pin on purpose, with the reason in the commit)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents import sessions as agent_sessions
from agents.models import Agent
from gateways import frames
from missioncontrol.audit import Actor
from tests.billing.factories import spend
from tests.crons.factories import make_check
from tests.gateways.factories import make_gateway
from tests.tasks.factories import make_task
from tests.webhooks.factories import make_endpoint

pytestmark = pytest.mark.django_db
ADMIN = Actor.system("pins")


def _session_row(key: str, agent: str) -> dict[str, Any]:
    return {
        "key": key,
        "sessionId": key,
        "agentId": agent,
        "kind": "direct",
        "status": "idle",
        "model": "fake-1",
        "inputTokens": 10,
        "outputTokens": 2,
        "totalTokens": 12,
        "updatedAt": 1764000000000,
    }


def grow_gateways(start: int, n: int) -> None:
    for i in range(start, start + n):
        make_gateway(f"gw-{i}", url=f"ws://127.0.0.1:{9000 + i}/")


def grow_sessions(start: int, n: int) -> None:
    gateway = make_gateway("sessions-gw") if start == 0 else None
    from gateways.models import Gateway

    gateway = gateway or Gateway.objects.get(name="sessions-gw")
    rows = [_session_row(f"agent:a{i}:main", f"a{i}") for i in range(start, start + n)]
    from agents import actions as agent_actions

    agent_actions.sync_gateway_agents(
        gateway.pk, frames.agents([{"id": f"a{i}"} for i in range(start + n)])
    )
    agent_sessions.sync_gateway_sessions(gateway.pk, frames.sessions(rows))


def grow_usage(start: int, n: int) -> None:
    for i in range(start, start + n):
        spend(Agent.objects.create(name=f"spender-{i}").pk, model=f"model-{i}")


def grow_audit(start: int, n: int) -> None:
    for i in range(start, start + n):
        make_task(f"Audited {i}")


def grow_crons(start: int, n: int) -> None:
    for i in range(start, start + n):
        make_check(f"check {i}")


def grow_webhooks(start: int, n: int) -> None:
    for i in range(start, start + n):
        make_endpoint(f"https://example.com/hook-{i}", ["task.*"])


def grow_agents(start: int, n: int) -> None:
    # Each at work on a task: its row names it (one query for every row's task title).
    for i in range(start, start + n):
        task = make_task(f"Work {i}")
        Agent.objects.create(name=f"agent-{i}", framework="claude-code", current_task_id=task.pk)


def grow_tasks(start: int, n: int) -> None:
    for i in range(start, start + n):
        make_task(f"Task {i}")


def grow_people(start: int, n: int) -> None:
    from tests.missioncontrol.factories import UserFactory

    for i in range(start, start + n):
        UserFactory.create(username=f"person-{i}", role=("viewer", "operator")[i % 2])


PAGES: dict[str, tuple[Callable[[int, int], None], int]] = {
    # path: (how to add n rows from `start`, the pinned number of queries)
    "/gateways/": (grow_gateways, 12),
    "/sessions/": (grow_sessions, 13),
    "/costs/": (grow_usage, 16),
    "/audit/": (grow_audit, 12),
    "/crons/": (grow_crons, 13),
    "/webhooks/": (grow_webhooks, 12),
    "/agents/": (grow_agents, 15),
    "/tasks/": (grow_tasks, 14),
    "/settings/people/": (grow_people, 15),
}


def _queries(client: Any, path: str) -> int:
    client.get(path)  # warm: the session, the per-process caches
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return len(queries)


@pytest.mark.parametrize("path", list(PAGES))
def test_a_list_page_makes_a_pinned_number_of_queries_whatever_its_rows(path, admin, caches_hold):
    grow, pinned = PAGES[path]
    grow(0, 2)
    few = _queries(admin, path)
    grow(2, 4)
    many = _queries(admin, path)
    assert many == few, f"{path}: {few} queries with 2 rows, {many} with 6"
    assert few == pinned, f"{path}: {few} queries (pinned: {pinned})"
