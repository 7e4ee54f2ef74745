"""Per-gateway grants: a granted user sees and acts only on the gateways granted, on every page,
action and live event; without a grant the role decides."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from agents import actions as agent_actions
from agents import sessions as agent_sessions
from agents.models import Agent, AgentSession
from gateways import access, commands, frames
from gateways import actions as gateway_actions
from missioncontrol import live, subscriptions
from missioncontrol.audit import Actor
from missioncontrol.models import AuditEvent, LiveEvent
from tests.gateways import fake
from tests.gateways.factories import make_gateway
from tests.gateways.test_sessions import session_row
from tests.missioncontrol.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def two() -> dict[str, Any]:
    prod = make_gateway(name="prod")
    lab = make_gateway(name="lab", url="ws://127.0.0.1:10/")
    for gateway, key in ((prod, "agent:main:prod-session"), (lab, "agent:main:lab-session")):
        agent_actions.sync_gateway_agents(gateway.pk, frames.agents([{"id": "main"}]))
        agent_sessions.sync_gateway_sessions(gateway.pk, frames.sessions([session_row(key)]))
    return {"prod": prod, "lab": lab}


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    def call(gateway_id: int, method: str, params: Any = None, **kwargs: Any) -> Any:
        calls.append(method)
        return {"messages": []} if method == "chat.history" else {"runId": "r"}

    monkeypatch.setattr(commands, "call", fake.checked(call))
    return calls


def client_for(username: str, role: str | None) -> tuple[Any, Client]:
    user = UserFactory.create(username=username, role=role)
    client = Client()
    client.force_login(user)
    return user, client


def test_without_grants_the_role_decides(two):
    user, _client = client_for("vera", "viewer")
    assert access.visible_ids(user) is None
    assert not access.can_operate(user, two["prod"].pk)
    operator, _ = client_for("otto", "operator")
    assert access.can_operate(operator, two["lab"].pk)


def test_a_granted_operator_sees_and_acts_only_on_the_gateway_granted(two, sent):
    otto, client = client_for("otto", "operator")
    gateway_actions.set_grant(Actor.system("test"), two["prod"], otto, "operate")
    prod_session = AgentSession.objects.get(gateway=two["prod"])
    lab_session = AgentSession.objects.get(gateway=two["lab"])
    lab_agent = Agent.objects.get(gateway=two["lab"])
    assert "prod" in client.get(reverse("gateways:list")).content.decode()
    assert ">lab<" not in client.get(reverse("gateways:list")).content.decode()
    assert client.get(reverse("gateways:detail", args=[two["lab"].pk])).status_code == 404
    sessions = client.get(reverse("agents:sessions")).content.decode()
    assert "prod-session" in sessions
    assert "lab-session" not in sessions
    assert client.get(reverse("agents:session", args=[lab_session.pk])).status_code == 404
    agents = client.get(reverse("agents:list")).content.decode()
    assert "main@prod" in agents
    assert "main@lab" not in agents
    assert client.get(reverse("agents:detail", args=[lab_agent.name])).status_code == 404
    ok = client.post(reverse("agents:session-send", args=[prod_session.pk]), {"message": "hi"})
    assert ok.status_code == 302
    assert sent == ["chat.send"]
    refused = client.post(reverse("agents:session-send", args=[lab_session.pk]), {"message": "hi"})
    assert refused.status_code == 404


def test_a_view_grant_lets_an_operator_see_but_not_act(two, sent):
    otto, client = client_for("otto", "operator")
    gateway_actions.set_grant(Actor.system("test"), two["prod"], otto, "view")
    session = AgentSession.objects.get(gateway=two["prod"])
    page = client.get(reverse("agents:session", args=[session.pk])).content.decode()
    assert "Send a message" not in page
    response = client.post(reverse("agents:session-send", args=[session.pk]), {"message": "hi"})
    assert response.status_code == 403
    assert "chat.send" not in sent


def test_an_operate_grant_lets_a_viewer_act_on_that_gateway(two, sent):
    vera, client = client_for("vera", "viewer")
    gateway_actions.set_grant(Actor.system("test"), two["lab"], vera, "operate")
    agent = Agent.objects.get(gateway=two["lab"])
    response = client.post(reverse("agents:message", args=[agent.name]), {"message": "hello"})
    assert response.status_code == 302
    assert sent[0] == "chat.send"


def test_live_events_of_other_gateways_never_reach_a_narrowed_user(two):
    otto, _client = client_for("otto", "operator")
    gateway_actions.set_grant(Actor.system("test"), two["prod"], otto, "view")
    scope = subscriptions.gateway_scope(otto)
    assert scope == frozenset({two["prod"].pk})
    sub = subscriptions.Subscription(["sessions"], "operator", gateways=scope)
    sub.last_seq, sub.topic_last = 0, {"sessions": 0}
    shown = []
    for event in LiveEvent.objects.filter(topic="sessions").order_by("seq"):
        message = live.layer_message(event)
        shown += [(event.gateway_id, bool(sub.accept_nowait(message)))]
    assert {gid for gid, ok in shown if ok} == {two["prod"].pk}
    assert any(gid == two["lab"].pk and not ok for gid, ok in shown)


def test_admin_grants_from_the_gateway_page_audited(admin, two):
    UserFactory.create(username="otto", role="operator")
    url = reverse("gateways:access", args=[two["prod"].pk])
    response = admin.post(url, {"username": "otto", "level": "operate"}, follow=True)
    assert "otto: operate on prod." in response.content.decode()
    assert AuditEvent.objects.get(verb="gateway.grant_changed").changes["after"] == {
        "user": "otto",
        "level": "operate",
    }
    page = admin.get(reverse("gateways:detail", args=[two["prod"].pk])).content.decode()
    assert '<strong>otto</strong> <span class="badge">operate</span>' in page
    admin.post(url, {"username": "otto", "level": "none"})
    from django.contrib.auth import get_user_model

    assert access.grants(get_user_model().objects.get(username="otto")) is None
    bad = admin.post(url, {"username": "nobody", "level": "view"}, follow=True)
    assert "No user named" in bad.content.decode()


@pytest.mark.parametrize("who", ["viewer", "operator"])
def test_only_admins_change_grants(who, request, two):
    client = request.getfixturevalue(who)
    url = reverse("gateways:access", args=[two["prod"].pk])
    assert client.post(url, {"username": "alice", "level": "view"}).status_code == 403


class TestGatewaySwitch:
    def test_choosing_one_gateway_filters_sessions_and_agents_and_persists(self, two):
        _user, client = client_for("vera", "viewer")
        response = client.post(
            reverse("gateways:view"), {"gateway": two["lab"].pk, "next": "/sessions/"}
        )
        assert response.status_code == 302
        assert response["Location"] == "/sessions/"
        sessions = client.get(reverse("agents:sessions")).content.decode()
        assert "lab-session" in sessions
        assert "prod-session" not in sessions
        assert "Showing" in sessions
        assert (
            'title="From gateway lab">lab</a>\n only' in sessions
            or ">lab</a>" in sessions.split("Showing", 1)[1][:400]
        )
        agents = client.get(reverse("agents:list")).content.decode()
        assert "main@lab" in agents
        assert "main@prod" not in agents
        # Another sign-in (a new client) finds the same choice.
        again = Client()
        again.force_login(_user)
        assert "prod-session" not in again.get(reverse("agents:sessions")).content.decode()
        client.post(reverse("gateways:view"), {"gateway": ""})
        assert "prod-session" in client.get(reverse("agents:sessions")).content.decode()

    def test_a_gateway_the_user_cannot_see_cannot_be_chosen(self, two):
        otto, client = client_for("otto", "operator")
        gateway_actions.set_grant(Actor.system("test"), two["prod"], otto, "view")
        client.post(reverse("gateways:view"), {"gateway": two["lab"].pk})
        page = client.get(reverse("agents:sessions")).content.decode()
        assert "lab-session" not in page
        assert "prod-session" in page
        html = client.get(reverse("gateways:list")).content.decode()
        assert f'<option value="{two["lab"].pk}"' not in html

    def test_next_never_leaves_the_site(self, two):
        _user, client = client_for("vera", "viewer")
        response = client.post(
            reverse("gateways:view"), {"gateway": "", "next": "https://evil.example/"}
        )
        assert response["Location"] == "/"

    def test_anonymous_and_outsiders_cannot_switch(self, client, outsider, two):
        assert client.post(reverse("gateways:view"), {"gateway": ""}).status_code == 302
        assert outsider.post(reverse("gateways:view"), {"gateway": ""}).status_code == 403
        assert client.get(reverse("gateways:view")).status_code == 405


def test_the_activity_feed_never_shows_a_narrowed_user_another_gateways_changes(two):
    """Audit rows of a gateway's data carry its id: the home page's feed and its live events
    leave out the gateways a narrowed user may not see."""
    otto, client = client_for("otto", "operator")
    gateway_actions.set_grant(Actor.system("test"), two["prod"], otto, "view")
    agent_actions.gateway_agents_offline(two["lab"].pk, "its gateway is unreachable")
    agent_actions.gateway_agents_offline(two["prod"].pk, "its gateway is unreachable")
    lab_rows = AuditEvent.objects.filter(gateway_id=two["lab"].pk, verb="agent.status_changed")
    assert lab_rows.exists()
    home = client.get(reverse("home")).content.decode()
    assert "main@prod" in home
    assert "main@lab" not in home
    _viewer, everyone = client_for("vera", "viewer")
    assert "main@lab" in everyone.get(reverse("home")).content.decode()
    sub = subscriptions.Subscription(
        ["activity"], "operator", gateways=subscriptions.gateway_scope(otto)
    )
    sub.last_seq, sub.topic_last = 0, {"activity": 0}
    shown = {
        event.gateway_id
        for event in LiveEvent.objects.filter(topic="activity").order_by("seq")
        if sub.accept_nowait(live.layer_message(event))
    }
    assert two["lab"].pk not in shown
    assert two["prod"].pk in shown


def test_a_viewer_without_a_grant_may_not_message_an_agent(two, sent):
    _vera, client = client_for("vera", "viewer")
    agent = Agent.objects.get(gateway=two["prod"])
    response = client.post(reverse("agents:message", args=[agent.name]), {"message": "hi"})
    assert response.status_code == 403
    assert sent == []
    assert client.get(reverse("agents:message", args=[agent.name])).status_code == 405


def test_a_bad_grant_level_is_a_message_and_changes_nothing(admin, two):
    UserFactory.create(username="otto", role="operator")
    url = reverse("gateways:access", args=[two["prod"].pk])
    response = admin.post(url, {"username": "otto", "level": "owner"}, follow=True)
    assert "Choose view, operate or none." in response.content.decode()
    assert not AuditEvent.objects.filter(verb="gateway.grant_changed").exists()
