"""Row locks never deadlock with the publish lock (PostgreSQL).

An action that publishes holds the publish lock (live.PUBLISH_LOCK, an advisory lock) until it
commits, and its commit checks its foreign keys then (Django's are DEFERRABLE INITIALLY
DEFERRED): `SELECT … FOR KEY SHARE` of every row it points at. A plain FOR UPDATE on such a row
(an agent, a task, a gateway) conflicts with that check, so a writer that locked the row and
then published waited for the publisher while the publisher's commit waited for it: "deadlock
detected", seen in CI between a usage record and the status sweep. Every row lock here is FOR
NO KEY UPDATE, which serialises writers of the row just as well and never blocks a foreign key.
"""

from __future__ import annotations

import ast
import re
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from agents import actions as agent_actions
from agents.models import Agent
from billing.actions import UsageItem, record_usage
from missioncontrol import live
from tests.agents.factories import AgentFactory

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    p
    for p in ROOT.rglob("*.py")
    if not {".venv", "tests", "node_modules", "migrations", "bench"}
    & set(p.relative_to(ROOT).parts)
]
RAW_LOCK = re.compile(r"\bFOR +UPDATE\b")


def test_every_row_lock_in_the_product_is_no_key():
    """The class, walked: every select_for_update() passes no_key=True, and raw SQL locks with
    FOR NO KEY UPDATE."""
    assert len(SOURCES) > 50
    found = []
    for path in SOURCES:
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "select_for_update"
                and not any(
                    k.arg == "no_key" and isinstance(k.value, ast.Constant) and k.value.value
                    for k in node.keywords
                )
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and RAW_LOCK.search(node.value)  # FOR NO KEY UPDATE does not match
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} (raw SQL)")
    assert found == [], "row locks that block foreign-key checks: " + ", ".join(found)


@pytest.mark.django_db(transaction=True)
def test_a_publisher_pointing_at_a_row_commits_while_its_writer_waits_to_publish():
    """Real PostgreSQL, the interleaving CI hit: a usage record (points at the agent) is
    published and not yet committed; the status sweep locks the agent and waits to publish its
    change; the usage commits — its foreign-key check does not wait for the sweep — and the
    sweep then goes on. Both land; neither is a deadlock victim."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks and advisory locks: PostgreSQL only (SQLite has one writer)")
    long_ago = timezone.now() - timedelta(hours=2)
    agent = AgentFactory.create(name="locked", status=Agent.Status.IDLE)
    Agent.objects.filter(pk=agent.pk).update(last_seen_at=long_ago, stale_at=long_ago)
    published, may_commit = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def publisher() -> None:
        try:
            with transaction.atomic():
                record_usage([UsageItem(agent.pk, "gpt-4o", 100, 50, timezone.now())])
                live.publish("fleet", {"type": "test.usage", "agent": agent.pk})
                published.set()
                assert may_commit.wait(20)
        except BaseException as failed:
            errors.append(failed)
        finally:
            published.set()
            close_old_connections()

    def sweeper() -> None:
        try:
            assert published.wait(20)
            agent_actions.sweep_statuses()
        except BaseException as failed:
            errors.append(failed)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=publisher), threading.Thread(target=sweeper)]
    for thread in threads:
        thread.start()
    # The sweep has locked the agent and waits for the publish lock.
    deadline = time.monotonic() + 20
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
            )
            if cursor.fetchone()[0]:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the sweep never waited for the publish lock")
    may_commit.set()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert Agent.objects.get(pk=agent.pk).status == Agent.Status.OFFLINE
    assert agent.usage.count() == 1
