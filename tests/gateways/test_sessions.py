"""Gateway sessions: ingest (re-sync and events, coalesced), live transcript events, commands
to the connector and back, and the Sessions pages with their role checks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import ThreadSensitiveContext
from channels.db import database_sync_to_async
from django.urls import reverse

from agents import actions as agent_actions
from agents import sessions as agent_sessions
from agents.models import Agent, AgentSession
from gateways import commands, frames
from gateways.protocol import GatewayError
from missioncontrol.models import AuditEvent, LiveEvent
from tests.gateways.factories import make_gateway
from tests.gateways.fake import TOKEN, FakeGateway, checked
from tests.gateways.waiting import until

db = database_sync_to_async


def session_row(key: str = "agent:main:main", **extra: Any) -> dict[str, Any]:
    return {
        "key": key,
        "sessionId": "sid-1",
        "agentId": "main",
        "label": None,
        "kind": "direct",
        "status": "idle",
        "model": "fake-1",
        "modelProvider": "fakellm",
        "inputTokens": 13242,
        "outputTokens": 7,
        "totalTokens": 13249,
        "estimatedCostUsd": 0.039831,
        "hasActiveRun": False,
        "activeRunIds": [],
        "lastMessagePreview": "Hello from the fake model.",
        "updatedAt": 1795460842274,
        **extra,
    }


@pytest.mark.django_db
class TestIngest:
    def test_a_resync_upserts_marks_unlisted_gone_and_is_idempotent(self):
        gateway = make_gateway()
        agent_actions.sync_gateway_agents(gateway.pk, frames.agents([{"id": "main"}]))
        changed = agent_sessions.sync_gateway_sessions(
            gateway.pk,
            frames.sessions([session_row(), session_row("agent:main:other")]),
            complete=True,
        )
        assert len(changed) == 2
        main = AgentSession.objects.get(key="agent:main:main")
        assert main.agent is not None
        assert main.agent.name == "main@prod"
        assert str(main.cost_usd) == "0.039831"
        assert main.total_tokens == 13249
        events_before = LiveEvent.objects.filter(topic="sessions").count()
        # The same list again: nothing changes, nothing is published.
        assert (
            agent_sessions.sync_gateway_sessions(
                gateway.pk,
                frames.sessions([session_row(), session_row("agent:main:other")]),
                complete=True,
            )
            == []
        )
        assert LiveEvent.objects.filter(topic="sessions").count() == events_before
        agent_sessions.sync_gateway_sessions(
            gateway.pk, frames.sessions([session_row()]), complete=True
        )
        assert AgentSession.objects.get(key="agent:main:other").gone
        assert AgentSession.objects.count() == 2

    def test_an_active_run_makes_its_agent_busy_and_its_end_idle_again(self):
        gateway = make_gateway()
        agent_actions.sync_gateway_agents(gateway.pk, frames.agents([{"id": "main"}]))
        agent_sessions.sync_gateway_sessions(
            gateway.pk, frames.sessions([session_row(hasActiveRun=True)])
        )
        assert Agent.objects.get(name="main@prod").status == "busy"
        agent_sessions.sync_gateway_sessions(
            gateway.pk, frames.sessions([session_row(hasActiveRun=False)])
        )
        assert Agent.objects.get(name="main@prod").status == "idle"

    def test_bad_values_from_a_gateway_are_stored_safely(self):
        gateway = make_gateway()
        agent_sessions.sync_gateway_sessions(
            gateway.pk,
            frames.sessions(
                [
                    session_row(estimatedCostUsd="lots", inputTokens=-5, totalTokens="x", label=7),
                    {"key": None},
                    "not a row",
                ]
            ),
        )
        session = AgentSession.objects.get()
        assert session.cost_usd is None
        assert session.input_tokens == 0
        assert session.total_tokens == 0
        assert session.label == "7"

    def test_a_transcript_line_is_published_for_its_session_only(self):
        gateway = make_gateway()
        agent_sessions.sync_gateway_sessions(gateway.pk, frames.sessions([session_row()]))
        message = {
            "role": "assistant",
            "content": [{"type": "text", "text": "Hi"}],
            "timestamp": 1795460842274,
        }
        assert agent_sessions.publish_session_message(
            gateway.pk, "agent:main:main", frames.TranscriptMessage.read(message), message_id="m1"
        )
        assert not agent_sessions.publish_session_message(
            gateway.pk, "agent:nope", frames.TranscriptMessage.read(message)
        )
        event = LiveEvent.objects.filter(type="session.message").get()
        assert event.payload["text"] == "Hi"
        assert event.payload["message_id"] == "m1"
        assert event.gateway_id == gateway.pk


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    gateway = await FakeGateway().start()
    gateway.methods["sessions.list"] = {"count": 1, "hasMore": False, "sessions": [session_row()]}
    gateway.methods["sessions.subscribe"] = {"subscribed": True}
    gateway.methods["chat.history"] = {
        "messages": [{"role": "user", "content": "hi", "timestamp": 1795460980830}]
    }
    yield gateway
    await gateway.stop()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
class TestConnectorSessions:
    async def test_sessions_are_listed_subscribed_and_follow_events_coalesced(self, fake, running):
        gateway = await db(make_gateway)(url=fake.url, token=TOKEN)
        await until(lambda: AgentSession.objects.filter(gateway=gateway).exists())
        assert ("sessions.subscribe", {"limit": 1}) in fake.requests
        before = await db(lambda: LiveEvent.objects.filter(type="session.changed").count())()
        # A burst of 20 changes to one session: one or two writes, the last state exact.
        for n in range(20):
            await fake.send_event(
                "sessions.changed",
                {
                    "sessionKey": "agent:main:main",
                    "session": session_row(totalTokens=20000 + n, hasActiveRun=True),
                },
            )
        await until(lambda: AgentSession.objects.get(gateway=gateway).total_tokens == 20019)
        await asyncio.sleep(0.4)
        after = await db(lambda: LiveEvent.objects.filter(type="session.changed").count())()
        assert 1 <= after - before <= 3
        await until(lambda: Agent.objects.get(name="main@prod").status == "busy")

    async def test_messages_stream_and_end_as_live_events(self, fake, running):
        gateway = await db(make_gateway)(url=fake.url, token=TOKEN)
        await until(lambda: AgentSession.objects.filter(gateway=gateway).exists())
        await fake.send_event(
            "session.message",
            {
                "sessionKey": "agent:main:main",
                "messageId": "u1",
                "message": {"role": "user", "content": "Say hello"},
            },
        )
        for text in ("He", "Hell", "Hello"):
            await fake.send_event(
                "chat",
                {
                    "runId": "r1",
                    "sessionKey": "agent:main:main",
                    "state": "delta",
                    "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
                },
            )
        await fake.send_event(
            "chat",
            {
                "runId": "r1",
                "sessionKey": "agent:main:main",
                "state": "error",
                "errorMessage": "No route",
            },
        )
        ended = await until(lambda: LiveEvent.objects.filter(type="session.run_ended").first())
        assert ended.payload["text"] == "No route"
        assert ended.payload["role"] == "error"
        user = await db(
            lambda: LiveEvent.objects.get(type="session.message", payload__message_id="u1")
        )()
        assert user.payload["text"] == "Say hello"
        assert not user.payload["streaming"]

    async def test_the_echo_of_a_message_is_kept_when_it_beats_the_send_answer(
        self, fake, running, operator
    ):
        """Messaging an agent whose main session is not known yet: the gateway's echo of the
        line (a `session.message` without the session row) can reach the connector before
        chat.send's answer reaches the view. The row is made first, so the line is kept."""
        gateway = await db(make_gateway)(url=fake.url, token=TOKEN)
        agent = await until(
            lambda: Agent.objects.filter(gateway=gateway, external_id="helper").first()
        )
        fake.delays["chat.send"] = 1.0

        async def post() -> Any:
            async with ThreadSensitiveContext():  # a thread of its own, as daphne runs a view
                return await db(operator.post)(
                    f"/agents/{agent.name}/message/", {"message": "Say hello", "nonce": "n-1"}
                )

        sending = asyncio.ensure_future(post())
        await until(lambda: any(m == "chat.send" for m, _p in fake.requests))
        await fake.send_event(
            "session.message",
            {
                "sessionKey": "agent:helper:main",
                "messageId": "echo-1",
                "message": {"role": "user", "content": "Say hello"},
            },
        )
        assert (await sending).status_code == 302
        line = await until(
            lambda: LiveEvent.objects.filter(
                type="session.message", payload__message_id="echo-1"
            ).first()
        )
        assert line.payload["text"] == "Say hello"

    async def test_a_command_reaches_the_gateway_and_returns_its_answer(self, fake, running):
        gateway = await db(make_gateway)(url=fake.url, token=TOKEN)
        await until(
            lambda: (
                running.states("gateways").get(gateway.pk) is not None
                and running.states("gateways")[gateway.pk].state == "connected"
            )
        )
        answer = await commands.acall(
            gateway.pk,
            "chat.send",
            {"sessionKey": "agent:main:main", "message": "hi", "idempotencyKey": "k1"},
        )
        assert answer == {"status": "started", "runId": "run-1"}
        assert (
            "chat.send",
            {"sessionKey": "agent:main:main", "message": "hi", "idempotencyKey": "k1"},
        ) in fake.requests
        with pytest.raises(GatewayError) as refused:
            await commands.acall(gateway.pk, "cron.add", {})
        assert refused.value.code == "FORBIDDEN"

    async def test_a_command_to_a_gateway_not_connected_is_refused_at_once(self, running):
        gateway = await db(make_gateway)(url="ws://127.0.0.1:9/", token=TOKEN)
        await until(lambda: running.states("gateways").get(gateway.pk) is not None)
        started = asyncio.get_running_loop().time()
        with pytest.raises(
            commands.Unavailable, match=r"not connected now \((connecting|unreachable)\)"
        ):
            await commands.acall(gateway.pk, "chat.send", {}, timeout=5)
        assert asyncio.get_running_loop().time() - started < 2


@pytest.mark.django_db
class TestSessionPages:
    @pytest.fixture
    def session(self) -> AgentSession:
        gateway = make_gateway(token="tok")
        agent_actions.sync_gateway_agents(gateway.pk, frames.agents([{"id": "main"}]))
        agent_sessions.sync_gateway_sessions(gateway.pk, frames.sessions([session_row()]))
        return AgentSession.objects.get()

    @pytest.fixture
    def gateway_says(self, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
        calls: list[tuple[str, dict[str, Any]]] = []

        def call(
            gateway_id: int, method: str, params: dict[str, Any] | None = None, **kw: Any
        ) -> Any:
            calls.append((method, params or {}))
            if method == "chat.history":
                return {
                    "messages": [
                        {
                            "role": "user",
                            "content": "hi there",
                            "timestamp": 1795460980830,
                            "__openclaw": {"id": "m-1"},
                        }
                    ]
                }
            if method == "sessions.reset":
                raise GatewayError(
                    {"code": "FORBIDDEN", "message": "missing scope: operator.admin"}
                )
            return {"status": "started", "runId": "run-9"}

        monkeypatch.setattr(commands, "call", checked(call))
        return calls

    def test_viewer_sees_sessions_with_the_gateway_badge_and_no_actions(
        self, viewer, session, gateway_says
    ):
        html = viewer.get(reverse("agents:sessions")).content.decode()
        assert "agent:main:main" in html
        assert 'class="gw-badge gw-blue"' in html
        assert "$0.0398" in html
        page = viewer.get(reverse("agents:session", args=[session.pk])).content.decode()
        assert "hi there" in page
        assert 'id="msg-m-1"' in page
        assert reverse("agents:session-send", args=[session.pk]) not in page

    def test_the_list_filters_by_gateway(self, viewer, session):
        other = make_gateway(name="staging", url="ws://127.0.0.1:10/")
        agent_sessions.sync_gateway_sessions(
            other.pk, frames.sessions([session_row("agent:main:staging-only")])
        )
        html = viewer.get(reverse("agents:sessions"), {"gateway": other.pk}).content.decode()
        assert "staging-only" in html
        assert "agent:main:main<" not in html

    def test_an_unreachable_gateway_is_said_plainly_on_the_transcript(
        self, viewer, session, monkeypatch
    ):
        def unavailable(*args: Any, **kwargs: Any) -> Any:
            raise commands.Unavailable("The gateway is unreachable.")

        monkeypatch.setattr(commands, "call", unavailable)
        page = viewer.get(reverse("agents:session", args=[session.pk])).content.decode()
        assert "cannot be asked now: The gateway is unreachable." in page

    @pytest.mark.parametrize(
        ("who", "view", "allowed"),
        [
            ("viewer", "agents:session-send", False),
            ("viewer", "agents:session-abort", False),
            ("operator", "agents:session-send", True),
            ("operator", "agents:session-abort", True),
            ("operator", "agents:session-reset", False),
            ("admin", "agents:session-reset", True),
        ],
    )
    def test_who_may_act_on_a_session(self, who, view, allowed, request, session, gateway_says):
        client = request.getfixturevalue(who)
        response = client.post(
            reverse(view, args=[session.pk]), {"message": "hello", "nonce": "n1"}
        )
        assert (response.status_code == 302) is allowed
        assert bool(gateway_says) is allowed
        assert client.get(reverse(view, args=[session.pk])).status_code in (403, 405)

    def test_an_operator_sends_a_message_audited_once_with_its_idempotency_key(
        self, operator, session, gateway_says
    ):
        response = operator.post(
            reverse("agents:session-send", args=[session.pk]),
            {"message": "Say hello", "nonce": "n1"},
            follow=True,
        )
        assert "Sent." in response.content.decode()
        assert gateway_says == [
            (
                "chat.send",
                {"sessionKey": "agent:main:main", "message": "Say hello", "idempotencyKey": "n1"},
            ),
            ("chat.history", {"sessionKey": "agent:main:main", "limit": 200}),
        ]
        audit = AuditEvent.objects.get(verb="session.message_sent")
        assert audit.actor_label == "bob"
        assert audit.changes["after"] == {
            "message": "Say hello",
            "run_id": "run-9",
        }

    def test_an_abort_that_stopped_nothing_says_so_and_is_not_audited(
        self, operator, session, monkeypatch
    ):
        """The gateway answers `{aborted: false}` when no run was going: "Abort sent." and an
        audit row said otherwise (#31.6)."""
        monkeypatch.setattr(
            commands,
            "call",
            checked(lambda *a, **k: {"ok": True, "aborted": False, "runIds": []}),
        )
        response = operator.post(reverse("agents:session-abort", args=[session.pk]), follow=True)
        page = response.content.decode()
        assert "Nothing to abort: no run of this session was going." in page
        assert "Abort sent." not in page
        assert not AuditEvent.objects.filter(verb="session.aborted").exists()

    def test_an_empty_or_huge_message_is_refused_before_the_gateway(
        self, operator, session, gateway_says
    ):
        for text in ("   ", "x" * 20001):
            response = operator.post(
                reverse("agents:session-send", args=[session.pk]), {"message": text}, follow=True
            )
            assert response.status_code == 200
        assert [m for m, _p in gateway_says if m == "chat.send"] == []

    def test_the_gateways_refusal_is_shown_and_nothing_is_audited(
        self, admin, session, gateway_says
    ):
        response = admin.post(reverse("agents:session-reset", args=[session.pk]), follow=True)
        assert (
            "The gateway refused it: missing scope: operator.admin (FORBIDDEN)"
            in response.content.decode()
        )
        assert not AuditEvent.objects.filter(verb="session.reset").exists()


@pytest.mark.django_db
def test_a_gateway_agents_last_seen_is_its_sessions_last_activity():
    """(#31.6) Not the time the dashboard synced the list: when a session was last active."""
    from datetime import UTC, datetime

    gateway = make_gateway()
    agent_actions.sync_gateway_agents(gateway.pk, frames.agents([{"id": "main"}]))
    assert Agent.objects.get(name="main@prod").last_seen_at is None  # listed, never active
    agent_sessions.sync_gateway_sessions(gateway.pk, frames.sessions([session_row()]))
    active = datetime.fromtimestamp(1795460842.274, tz=UTC)
    assert Agent.objects.get(name="main@prod").last_seen_at == active
    seen = LiveEvent.objects.filter(type="agent.seen").latest("seq")
    assert seen.gateway_id == gateway.pk
    # A re-sync of its list does not make it "seen now".
    agent_actions.sync_gateway_agents(gateway.pk, frames.agents([{"id": "main"}]))
    assert Agent.objects.get(name="main@prod").last_seen_at == active


@pytest.mark.django_db
def test_a_deleted_session_is_gone_at_once_and_stays_gone():
    """(#31.6) `sessions.changed` {reason: "delete"} marks it gone, with its event."""
    gateway = make_gateway()
    agent_actions.sync_gateway_agents(gateway.pk, frames.agents([{"id": "main"}]))
    agent_sessions.sync_gateway_sessions(
        gateway.pk, frames.sessions([session_row(), session_row("agent:main:other")])
    )
    assert frames.deleted_session({"reason": "delete", "sessionKey": "agent:main:other"}) == (
        "agent:main:other"
    )
    assert frames.deleted_session({"reason": "delete"}) is None
    assert frames.deleted_session({"reason": "participants", "sessionKey": "x"}) is None
    (gone,) = agent_sessions.session_deleted(gateway.pk, "agent:main:other")
    assert gone.gone
    assert not AgentSession.objects.get(key="agent:main:main").gone
    event = LiveEvent.objects.filter(type="session.changed").latest("seq")
    assert event.payload["session"]["gone"] is True
    assert agent_sessions.session_deleted(gateway.pk, "agent:main:other") == []  # once


def test_a_line_has_one_id_whichever_way_it_came():
    """The event's `messageId`, else the message's `id`, else the `__openclaw.id` the gateway's
    transcript names it by: a user's line echoed without a messageId and read again from
    chat.history is one line on the page, not two."""
    message = {"role": "user", "content": "Say hello", "__openclaw": {"id": "9af2"}}
    assert frames.TranscriptMessage.read(message).message_id == "9af2"
    assert frames.TranscriptMessage.read(message, message_id="").message_id == "9af2"
    assert frames.TranscriptMessage.read(message, message_id="ev-1").message_id == "ev-1"
    assert frames.TranscriptMessage.read({**message, "id": "own"}).message_id == "own"
    [line] = frames.transcript([message])
    assert line.message_id == "9af2"
