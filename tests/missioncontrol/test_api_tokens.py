"""People's API tokens and the first operator routes (#27, "Operator API"): a token made on the
account page or with `create_api_token` acts as its person — their role, checked on every
request — through the real ASGI application; shown once, stored hashed, revocable, expiring."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.utils import timezone

from agents.models import Agent, AgentKey
from missioncontrol import tokens
from missioncontrol.audit import Actor
from missioncontrol.models import ApiToken, AuditEvent
from missioncontrol.roles import set_role
from tasks.models import Task
from tests.agents.conftest import issue

pytestmark = pytest.mark.django_db(transaction=True)


def api(token: str) -> httpx.AsyncClient:
    from missioncontrol.asgi import application

    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application),  # type: ignore[arg-type]
        base_url="http://localhost",
        headers={"Authorization": f"Bearer {token}"},
    )


def token_for(user: Any, **kwargs: Any) -> str:
    return tokens.issue(Actor.system("test"), user, **kwargs)[1]


def test_the_account_page_makes_a_token_shown_once_and_revokes_it(operator, bob_operator):
    response = operator.post("/account/tokens/", {"name": "CI", "days": "30"})
    assert response.status_code == 200
    found = re.search(r'id="new-token">(mct_[^<]+)</pre>', response.content.decode())
    assert found is not None
    full = found.group(1)
    row = ApiToken.objects.get(user=bob_operator)
    assert full.startswith(f"mct_{row.prefix}_")
    assert full.split("_", 2)[2] not in row.secret_hash  # only its hash is kept
    assert row.expires_at is not None
    assert "new-token" not in operator.get("/account/tokens/").content.decode()  # once
    assert tokens.authenticate(f"Bearer {full}") == bob_operator
    operator.post(f"/account/tokens/{row.pk}/revoke/")
    with pytest.raises(tokens.Unauthenticated):
        tokens.authenticate(f"Bearer {full}")
    verbs = list(AuditEvent.objects.order_by("pk").values_list("verb", flat=True))
    assert verbs[-2:] == ["api_token.issued", "api_token.revoked"]


def test_people_revoke_only_their_own(operator, alice_viewer):
    theirs = tokens.issue(Actor.system("t"), alice_viewer)[0]
    operator.post(f"/account/tokens/{theirs.pk}/revoke/")
    assert ApiToken.objects.get(pk=theirs.pk).revoked_at is None


def test_create_api_token_prints_it_alone(bob_operator):
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_token", "bob", "--expires", "7", stdout=out, stderr=err)
    full = out.getvalue().strip()
    assert tokens.authenticate(f"Bearer {full}") == bob_operator
    assert "Shown once" in err.getvalue()


async def test_a_token_acts_with_its_persons_role(bob_operator, alice_viewer):
    op, viewer = (
        await sync_to_async(token_for)(bob_operator),
        await sync_to_async(token_for)(alice_viewer),
    )
    async with api(op) as http:
        me = await http.get("/api/v1/me")
        made = await http.post(
            "/api/v1/tasks",
            json={"title": "From a script", "priority": "high", "labels": ["ci"], "status": "todo"},
        )
    assert me.json() == {"kind": "person", "username": "bob", "role": "operator"}
    assert made.status_code == 201, made.text
    task = made.json()["task"]
    assert (task["title"], task["priority"], task["status"]) == ("From a script", "high", "todo")
    stored = await Task.objects.aget(pk=task["id"])
    assert stored.label_list == ["ci"]
    audit = await AuditEvent.objects.filter(verb="task.created").aget()
    assert (audit.actor_label, audit.actor_user_id) == ("bob", bob_operator.pk)
    async with api(viewer) as http:
        refused = await http.post("/api/v1/tasks", json={"title": "Not mine to make"})
        listed = await http.get("/api/v1/tasks")
        read = await http.get(f"/api/v1/tasks/{task['id']}")
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert [t["title"] for t in listed.json()["tasks"]] == ["From a script"]
    assert read.json()["task"]["labels"] == ["ci"]
    # A role taken away is so for the token at once.
    await sync_to_async(set_role)(bob_operator, "viewer")
    async with api(op) as http:
        assert (await http.post("/api/v1/tasks", json={"title": "x"})).status_code == 403


async def test_assignee_by_name_and_bad_input_in_words(bob_operator):
    op = await sync_to_async(token_for)(bob_operator)
    await Agent.objects.acreate(name="codex-1")
    async with api(op) as http:
        to_agent = await http.post("/api/v1/tasks", json={"title": "Fix CI", "assignee": "codex-1"})
        to_bob = await http.post("/api/v1/tasks", json={"title": "Review", "assignee": "bob"})
        nobody = await http.post("/api/v1/tasks", json={"title": "x", "assignee": "ghost"})
        empty = await http.post("/api/v1/tasks", json={"title": ""})
        column = await http.post("/api/v1/tasks", json={"title": "x", "status": "limbo"})
        mine = await http.get("/api/v1/tasks", params={"assignee": "me"})
    assert to_agent.json()["task"]["assignee"] == "codex-1"
    assert to_bob.json()["task"]["assignee"] == "bob"
    assert nobody.status_code == 400
    assert "ghost" in nobody.json()["detail"]["assignee"][0]
    assert "title" in empty.json()["detail"]
    assert "status" in column.json()["detail"]
    assert [t["title"] for t in mine.json()["tasks"]] == ["Review"]


async def test_expired_revoked_deactivated_and_agent_keys_are_told_apart(bob_operator):
    expired, revoked = (
        await sync_to_async(token_for)(bob_operator),
        await sync_to_async(token_for)(bob_operator),
    )
    await ApiToken.objects.filter(prefix=expired.split("_")[1]).aupdate(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    await ApiToken.objects.filter(prefix=revoked.split("_")[1]).aupdate(revoked_at=timezone.now())
    agent = await Agent.objects.acreate(name="ada")
    agent_key = (await sync_to_async(issue)(AgentKey.Kind.AGENT, agent))[1]
    for bad in (expired, revoked, "mct_nope", ""):
        async with api(bad) as http:
            r = await http.get("/api/v1/me")
        assert r.status_code == 401, (bad, r.text)
        assert r.json()["error"] == "unauthenticated"
    # An agent's key is not a person's token: it may not create tasks for people.
    async with api(agent_key) as http:
        assert (await http.get("/api/v1/me")).json()["kind"] == "agent"
        assert (await http.post("/api/v1/tasks", json={"title": "x"})).status_code == 401
        assert (await http.get("/api/v1/tasks")).status_code == 200  # its own tasks
    # A person's token is not an agent's key: no agent routes.
    good = await sync_to_async(token_for)(bob_operator)
    async with api(good) as http:
        assert (await http.post("/api/v1/tasks/1/claim")).status_code == 401
    bob_operator.is_active = False
    await bob_operator.asave()
    async with api(good) as http:
        assert (await http.get("/api/v1/me")).status_code == 401
