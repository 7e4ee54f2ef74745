"""The fast routes' checks are code the tests exercise (issue #26 §3): every `Check` a route names
in missioncontrol/asgi.py's FAST_ROUTES is probed here through the real ASGI application, a check
no probe knows fails the suite, and each route's benchmark exists. (Who may call each route is
the permission matrix's: tests/missioncontrol/test_permission_matrix.py.)"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import Client

from agents.models import Agent, AgentKey
from gateways.actions import set_grant
from missioncontrol import ratelimit, tokens
from missioncontrol.asgi import FAST_ROUTES, application
from missioncontrol.audit import Actor
from missioncontrol.fastpath import Check, Route
from tests.agents.conftest import issue
from tests.gateways.factories import make_gateway
from tests.missioncontrol.factories import UserFactory
from tests.tasks.factories import make_task

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
CSRF = "a" * 32


class Caller:
    """The route's rightful caller (an agent's key, an operator's browser session, or an
    operator's API token), its path, a valid body, and ways to spoil one part of the request."""

    def __init__(self, route: Route, fixtures: dict[str, Any]) -> None:
        self.route = route
        self.person = "runs" in route.pattern
        self.browser = "move" in route.pattern
        self.body: dict[str, Any]
        self.headers: dict[str, str]
        self.cookies: dict[str, str]
        if self.person:
            self.path = f"/api/v1/tasks/{fixtures['assigned'].pk}/runs"
            self.body = {"instructions": "Probe it"}
            self.headers = {"Authorization": f"Bearer {fixtures['operator_token']}"}
            self.cookies = {}
        elif self.browser:
            self.path = f"/tasks/{fixtures['task'].pk}/move/"
            self.body = {"status": "review"}
            self.headers = {"X-CSRFToken": CSRF}
            self.cookies = {"csrftoken": CSRF, "sessionid": fixtures["operator_session"]}
        else:
            self.path = (
                "/api/v1/agents/probe-agent/heartbeat"
                if "heartbeat" in route.pattern
                else "/api/v1/usage"
            )
            self.body = {"status": "idle"} if "heartbeat" in route.pattern else {"records": []}
            self.headers = {"Authorization": f"Bearer {fixtures['agent_key']}"}
            self.cookies = {}

    async def send(
        self,
        *,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
        path: str | None = None,
    ) -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application),  # type: ignore[arg-type]
            base_url="http://localhost",
            cookies=self.cookies if cookies is None else cookies,
            headers={**self.headers, **(headers or {})},
        ) as http:
            data = self.body if body is None else body
            if raw is not None:
                return await http.post(path or self.path, content=raw)
            if self.browser:
                return await http.post(path or self.path, data=data)
            return await http.post(path or self.path, json=data)


async def probe_host(c: Caller, f: dict[str, Any]) -> None:
    r = await c.send(headers={"Host": "evil.example"})
    assert r.status_code == 400, r.text


async def probe_body_limit(c: Caller, f: dict[str, Any]) -> None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE if c.browser else settings.MC_API_MAX_BODY
    r = await c.send(raw=b"x" * (limit + 1))
    assert r.status_code == 413, r.text
    assert r.json()["error"] == "payload_too_large"


async def probe_csrf(c: Caller, f: dict[str, Any]) -> None:
    r = await c.send(headers={"X-CSRFToken": ""})
    assert r.status_code == 403, r.text
    r = await c.send(headers={"Origin": "https://evil.example"})
    assert r.status_code == 403, r.text


async def probe_session(c: Caller, f: dict[str, Any]) -> None:
    r = await c.send(cookies={"csrftoken": CSRF})
    assert r.status_code == 302
    assert "/login/" in r.headers["location"]


async def probe_operator(c: Caller, f: dict[str, Any]) -> None:
    if c.person:
        r = await c.send(headers={"Authorization": f"Bearer {f['viewer_token']}"})
    else:
        r = await c.send(cookies={"csrftoken": CSRF, "sessionid": f["viewer_session"]})
    assert r.status_code == 403, r.text


async def probe_person_token(c: Caller, f: dict[str, Any]) -> None:
    for refused in ("", "Bearer mct_000000000000_" + "x" * 43, f"Bearer {f['agent_key']}"):
        r = await c.send(headers={"Authorization": refused})
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "unauthenticated"
        assert r.headers["www-authenticate"] == "Bearer"
    # A browser's session is no credential here.
    r = await c.send(
        headers={"Authorization": "", "X-CSRFToken": CSRF},
        cookies={"csrftoken": CSRF, "sessionid": f["operator_session"]},
    )
    assert r.status_code == 401, r.text


async def probe_gateway_grant(c: Caller, f: dict[str, Any]) -> None:
    # An operator granted one gateway only may not dispatch to a direct agent.
    r = await c.send(headers={"Authorization": f"Bearer {f['granted_token']}"})
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "forbidden"


async def probe_agent_key(c: Caller, f: dict[str, Any]) -> None:
    r = await c.send(headers={"Authorization": ""})
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"
    r = await c.send(headers={"Authorization": "Bearer mc_000000000000_" + "x" * 43})
    assert r.status_code == 401, r.text
    r = await c.send(headers={"Authorization": f"Bearer {f['enrollment_key']}"})
    assert r.status_code == 403, r.text


async def probe_own_agent(c: Caller, f: dict[str, Any]) -> None:
    r = await c.send(path="/api/v1/agents/someone-else/heartbeat")
    assert r.status_code == 403, r.text


async def probe_rate_limit(c: Caller, f: dict[str, Any]) -> None:
    # Twice the burst at once (sent one after another, a slow machine's requests could let the
    # bucket refill as fast as they drain it): the ones past the burst are refused.
    import asyncio

    ratelimit.reset()
    if c.person:
        # A token's requests are counted once it is read (a task that does not exist: 404).
        answers = await asyncio.gather(
            *(c.send(path="/api/v1/tasks/999999/runs") for _ in range(120))
        )
        answered = {404, 429}
    else:
        answers = await asyncio.gather(*(c.send(raw=b"{not json") for _ in range(120)))
        answered = {400, 429}
    refused = [r for r in answers if r.status_code == 429]
    assert refused, sorted({r.status_code for r in answers})
    assert {r.status_code for r in answers} <= answered
    assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
    assert refused[0].json()["error"] == "rate_limited"
    ratelimit.reset()


async def probe_validation(c: Caller, f: dict[str, Any]) -> None:
    if c.person:
        bad: dict[str, Any] = {"land_in": "limbo", "instructions": 7}
    elif c.browser or "heartbeat" in c.path:
        bad = {"status": "limbo"}
    else:
        bad = {"records": "no"}
    r = await c.send(body=bad)
    assert r.status_code == 400, r.text
    answer = r.json()
    assert answer["error"] == "validation_error"
    assert isinstance(answer["detail"], dict)
    assert answer["detail"], answer


PROBES: dict[Check, Callable[[Caller, dict[str, Any]], Awaitable[None]]] = {
    Check.HOST: probe_host,
    Check.BODY_LIMIT: probe_body_limit,
    Check.CSRF: probe_csrf,
    Check.SESSION: probe_session,
    Check.OPERATOR: probe_operator,
    Check.PERSON_TOKEN: probe_person_token,
    Check.GATEWAY_GRANT: probe_gateway_grant,
    Check.AGENT_KEY: probe_agent_key,
    Check.OWN_AGENT: probe_own_agent,
    Check.RATE_LIMIT: probe_rate_limit,
    Check.VALIDATION: probe_validation,
}


def test_every_check_has_a_probe_and_every_route_a_benchmark():
    assert set(PROBES) == set(Check)
    for route in FAST_ROUTES:
        assert route.checks, route.pattern
        assert (ROOT / route.bench).is_file(), route.bench


@pytest.fixture
def fixtures(bob_operator: Any, alice_viewer: Any) -> dict[str, Any]:
    def session(user: Any) -> str:
        client = Client()
        client.force_login(user)
        return client.cookies["sessionid"].value

    agent = Agent.objects.create(name="probe-agent")
    granted = UserFactory.create(username="gina", role="operator")
    set_grant(Actor.system("test"), make_gateway(name="elsewhere"), granted, "operate")
    return {
        "task": make_task("Probe"),
        "assigned": make_task("Probe a run", assignee=f"agent:{agent.pk}"),
        "operator_token": tokens.issue(Actor.system("test"), bob_operator)[1],
        "viewer_token": tokens.issue(Actor.system("test"), alice_viewer)[1],
        "granted_token": tokens.issue(Actor.system("test"), granted)[1],
        "operator_session": session(bob_operator),
        "viewer_session": session(alice_viewer),
        "agent_key": issue(AgentKey.Kind.AGENT, agent)[1],
        "enrollment_key": issue(AgentKey.Kind.ENROLLMENT)[1],
    }


@pytest.mark.parametrize("route", FAST_ROUTES, ids=lambda r: r.pattern)
async def test_every_check_a_route_names_refuses_what_it_should(route, fixtures):
    caller = Caller(route, fixtures)
    # The rightful request passes every check (so each probe's refusal is its check's).
    ok = await caller.send()
    assert ok.status_code == (202 if caller.person else 200), ok.text
    for check in route.checks:
        await PROBES[check](caller, fixtures)
    await sync_to_async(ratelimit.reset)()
