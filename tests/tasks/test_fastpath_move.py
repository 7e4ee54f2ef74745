"""The board's move endpoint, served only at the ASGI layer (tasks/fastpath.py): Django's own checks
(host, CSRF, sign-in, operator role, MoveForm) done explicitly, through the group-commit writer
(tasks.actions.move_tasks)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from missioncontrol.asgi import application
from missioncontrol.models import AuditEvent
from missioncontrol.roles import set_role
from tasks.models import Task
from tests.tasks.factories import make_task

pytestmark = pytest.mark.django_db(transaction=True)

CSRF = "a" * 32  # a CSRF secret as Django's cookie holds it; the header may carry it unmasked


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def board(client: Client | None = None, **headers: str) -> httpx.AsyncClient:
    """A client of the real ASGI application with the session (if any) and the CSRF cookie."""
    cookies = {"csrftoken": CSRF}
    if client is not None:
        cookies["sessionid"] = client.cookies["sessionid"].value
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application),  # type: ignore[arg-type]
        base_url="http://localhost",
        cookies=cookies,
        headers={"X-CSRFToken": CSRF, **headers},
    )


async def move(http: httpx.AsyncClient, pk: int, **data: Any) -> httpx.Response:
    return await http.post(f"/tasks/{pk}/move/", data=data)


async def test_an_operator_moves_a_card(bob_operator, broadcasts):
    task = await sync_to_async(make_task)("Ship it")
    async with board(await sync_to_async(signed_in)(bob_operator)) as http:
        r = await move(http, task.pk, status="review", version=task.version)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "ok": True,
        "task": {"id": task.pk, "status": "review", "version": task.version + 1},
    }
    stored = await Task.objects.aget(pk=task.pk)
    assert (stored.status, stored.version) == ("review", task.version + 1)
    audit = await AuditEvent.objects.filter(verb="task.moved", object_id=str(task.pk)).aget()
    assert (audit.actor_label, audit.actor_user_id) == ("bob", bob_operator.pk)
    card = next(m for m in broadcasts if '"event":"task.moved"' in m["text"])
    assert f'data-version=\\"{task.version + 1}\\"' in card["text"]
    assert 'data-status=\\"review\\"' in card["text"]


async def test_csrf_is_checked(bob_operator):
    task = await sync_to_async(make_task)()
    client = await sync_to_async(signed_in)(bob_operator)
    async with board(client) as http:
        http.headers.pop("X-CSRFToken")
        no_token = await move(http, task.pk, status="review")
    async with board(client, Origin="https://evil.example") as http:
        bad_origin = await move(http, task.pk, status="review")
    assert no_token.status_code == bad_origin.status_code == 403
    assert no_token.json()["error"] == "forbidden"
    assert (await Task.objects.aget(pk=task.pk)).status == task.status


async def test_sign_in_and_the_operator_role_are_required(alice_viewer, oscar_outsider):
    task = await sync_to_async(make_task)()
    async with board() as http:
        anonymous = await move(http, task.pk, status="review")
    assert anonymous.status_code == 302
    assert anonymous.headers["location"].startswith("/login/?next=/tasks/")
    for user in (alice_viewer, oscar_outsider):
        async with board(await sync_to_async(signed_in)(user)) as http:
            refused = await move(http, task.pk, status="review")
        assert refused.status_code == 403
    assert (await Task.objects.aget(pk=task.pk)).status == task.status


async def test_signing_out_or_losing_the_role_ends_access_at_once(bob_operator):
    task = await sync_to_async(make_task)()
    client = await sync_to_async(signed_in)(bob_operator)
    async with board(client) as http:
        assert (await move(http, task.pk, status="review")).status_code == 200
        await sync_to_async(set_role)(bob_operator, "viewer")
        assert (await move(http, task.pk, status="todo")).status_code == 403
        await sync_to_async(set_role)(bob_operator, "operator")
        assert (await move(http, task.pk, status="todo")).status_code == 200
        await sync_to_async(client.logout)()
        assert (await move(http, task.pk, status="done")).status_code == 302
    assert (await Task.objects.aget(pk=task.pk)).status == "todo"


async def test_bad_input_stale_and_unknown_answer_like_the_view(bob_operator):
    task = await sync_to_async(make_task)()
    async with board(await sync_to_async(signed_in)(bob_operator)) as http:
        bad = await move(http, task.pk, status="limbo")
        huge = await move(http, task.pk, status="todo", before="9" * 19)
        unknown = await move(http, 999999, status="todo")
        first = await move(http, task.pk, status="review", version=task.version)
        stale = await move(http, task.pk, status="done", version=task.version)
    assert bad.status_code == 400
    assert bad.json()["error"] == "validation_error"
    assert "status" in bad.json()["detail"]
    assert huge.status_code == 400
    assert "before" in huge.json()["detail"]
    assert unknown.status_code == 404
    assert first.status_code == 200
    assert stale.status_code == 409
    assert stale.json()["task"] == {"id": task.pk, "status": "review", "version": task.version + 1}


async def test_unknown_host_is_refused(bob_operator):
    task = await sync_to_async(make_task)()
    async with board(await sync_to_async(signed_in)(bob_operator), Host="evil.example") as http:
        r = await move(http, task.pk, status="review")
    assert r.status_code == 400


async def test_many_moves_at_once_keep_one_order(bob_operator):
    """30 concurrent moves into one column (batched by the writer): all stored, positions
    distinct."""
    tasks = [await sync_to_async(make_task)(f"T{i}", status="backlog") for i in range(30)]
    async with board(await sync_to_async(signed_in)(bob_operator)) as http:
        answers = await asyncio.gather(*(move(http, t.pk, status="review") for t in tasks))
    assert [r.status_code for r in answers] == [200] * 30
    positions = [
        p async for p in Task.objects.filter(status="review").values_list("position", flat=True)
    ]
    assert len(positions) == 30
    assert len(set(positions)) == 30
