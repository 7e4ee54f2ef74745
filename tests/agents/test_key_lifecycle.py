"""A key dies the moment it should, whichever way it is changed: the app, the Django admin,
the shell, another process (within keys.CHANGE_CHECK_S), or its agent deleted."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.utils import timezone

from agents import keys
from agents.models import Agent, AgentKey
from tests.tasks.factories import make_task

pytestmark = pytest.mark.django_db(transaction=True)

ROUTES: list[tuple[str, str, dict | None]] = [
    ("POST", "/api/v1/agents/ada/heartbeat", {}),
    ("POST", "/api/v1/usage", {"records": []}),
    ("GET", "/api/v1/tasks", None),
    ("POST", "/api/v1/agents/register", {"name": "ada"}),
]


async def _codes(api, key: str, task_id: int | None = None) -> list[int]:
    routes = list(ROUTES)
    if task_id is not None:
        routes += [
            ("POST", f"/api/v1/tasks/{task_id}/claim", None),
            ("POST", f"/api/v1/tasks/{task_id}/comments", {"body": "hi"}),
        ]
    out = []
    async with api(key) as c:
        for method, path, body in routes:
            kwargs = {"content": json.dumps(body)} if body is not None else {}
            r = await c.request(
                method, path, headers={"Content-Type": "application/json"}, **kwargs
            )
            out.append(r.status_code)
    return out


def _elsewhere(fn) -> None:
    """Run `fn` on another thread and connection, as another process or the shell would."""

    def run() -> None:
        fn()
        close_old_connections()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


async def test_admin_edits_reach_the_cache_at_once_in_this_process(api, ada, ada_key, admin):
    assert (await _codes(api, ada_key))[:3] == [200, 200, 200]  # cached now
    key = await AgentKey.objects.aget(agent=ada)
    # The Django admin's change form: expiry moved into the past.
    past = timezone.now() - timedelta(minutes=1)
    form = {
        "name": key.name,
        "max_uses": "",
        "expires_at_0": past.strftime("%Y-%m-%d"),
        "expires_at_1": past.strftime("%H:%M:%S"),
        "revoked_at_0": "",
        "revoked_at_1": "",
    }
    r = await sync_to_async(admin.post)(f"/admin/agents/agentkey/{key.pk}/change/", form)
    assert r.status_code == 302, r.content[:2000]
    assert set(await _codes(api, ada_key)) == {401}


async def test_a_key_deleted_in_the_admin_is_refused(api, ada, ada_key, admin):
    assert (await _codes(api, ada_key))[0] == 200
    key = await AgentKey.objects.aget(agent=ada)
    r = await sync_to_async(admin.post)(f"/admin/agents/agentkey/{key.pk}/delete/", {"post": "yes"})
    assert r.status_code == 302
    assert set(await _codes(api, ada_key)) == {401}


async def test_changes_made_elsewhere_are_honoured_within_the_check_interval(
    api, ada, ada_key, monkeypatch
):
    assert (await _codes(api, ada_key))[0] == 200
    # Another process (here: another thread and connection, without this process's signals)
    # expires the key with a plain UPDATE.
    await sync_to_async(_elsewhere)(
        lambda: AgentKey.objects.filter(agent__name="ada").update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
    )
    monkeypatch.setattr(keys, "_checked_at", 0.0)  # CHANGE_CHECK_S has passed
    assert set(await _codes(api, ada_key)) == {401}


async def test_a_key_whose_agent_was_deleted_is_401_everywhere(api, ada, ada_key):
    task = await sync_to_async(make_task)("Free task")
    assert (await _codes(api, ada_key))[0] == 200
    await sync_to_async(_elsewhere)(lambda: Agent.objects.filter(name="ada").delete())
    # Even before the periodic check: the writer finds no agent and answers 401, and the
    # DRF routes find no key row.
    keys._checked_at = 0.0
    assert set(await _codes(api, ada_key, task.pk)) == {401}


async def test_expiry_is_checked_on_every_use(api, ada, ada_key):
    assert (await _codes(api, ada_key))[0] == 200
    prefix = ada_key.split("_")[1]
    hit, cached = keys.cached(prefix)
    assert hit
    assert cached is not None
    # The key's time runs out while it sits in the cache: the next use is refused.
    keys.remember(prefix, replace(cached, expires_at=timezone.now() - timedelta(milliseconds=1)))
    keys._checked_at = time.monotonic()  # no periodic check in between
    assert (await _codes(api, ada_key))[:3] == [401, 401, 401]
