"""Each channel's message reaches a real receiver on loopback in that service's documented
shape — Slack blocks, Discord embeds, a Teams Adaptive Card, ntfy's headers — and e-mail reaches
a real SMTP server (aiosmtpd) with its subject, text and HTML parts and the link back; failures
are retried, shown on the channel, and a channel that keeps failing is disabled."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socket
from collections.abc import Iterator
from datetime import timedelta
from email.header import decode_header, make_header
from typing import Any

import pytest
import time_machine
from aiosmtpd.controller import Controller
from channels.db import database_sync_to_async
from django.utils import timezone

from missioncontrol import overview
from missioncontrol.models import AuditEvent
from notifications import actions
from notifications.models import Channel, Message
from tests.notifications.conftest import send_all
from tests.notifications.helpers import ADMIN, down, failing_agents, step, team_channel
from webhooks import actions as outbox_actions

db = database_sync_to_async


def asynchronous(test: Any) -> Any:
    return pytest.mark.asyncio(pytest.mark.django_db(transaction=True)(test))


class Inbox:
    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp(settings: Any) -> Iterator[Inbox]:
    inbox = Inbox()
    with socket.socket() as probe:  # a free port (the controller's readiness check needs one)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": port, "timeout": 5},
        }
    }
    settings.MC_EMAIL_URL = f"smtp://127.0.0.1:{port}"
    settings.DEFAULT_FROM_EMAIL = "Mission Control <mc@example.com>"
    yield inbox
    controller.stop()


async def one_gateway_down(kind: str, url: str) -> Channel:
    channel = await db(team_channel)(kind, url)
    await db(down)("prod")
    assert len(await db(step)()) == 1
    return channel


@asynchronous
async def test_slack_gets_blocks_with_a_link_back(allow_private, receiver, messenger):
    await one_gateway_down("slack", receiver.url)
    await send_all(messenger)
    (got,) = receiver.got
    body = json.loads(got.body)
    assert got.headers["content-type"] == "application/json"
    assert body["text"] == "Gateway: prod is connecting"
    types = [block["type"] for block in body["blocks"]]
    assert types[0] == "header"
    assert types[-1] == "actions"
    assert "section" in types
    section = next(b for b in body["blocks"] if b["type"] == "section")
    assert section["text"]["type"] == "mrkdwn"
    assert "/gateways/" in section["text"]["text"]
    button = body["blocks"][-1]["elements"][0]
    assert button["type"] == "button"
    assert button["url"].startswith("http://localhost:")
    message = await db(Message.objects.get)()
    assert message.status == Message.Status.DELIVERED


@asynchronous
async def test_discord_gets_embeds_and_pings_nobody(allow_private, receiver, messenger):
    await db(team_channel)("discord", receiver.url)
    await db(failing_agents)(3)
    await db(step)()
    await send_all(messenger)
    body = json.loads(receiver.got[0].body)
    assert body["content"] == "Agent error: 3 items"
    assert body["allowed_mentions"] == {"parse": []}
    assert len(body["embeds"]) == 3
    embed = body["embeds"][0]
    assert embed["title"].startswith("Agent error: worker-")
    assert embed["description"] == "crashed"
    assert embed["url"].startswith("http://localhost:")
    assert "/agents/" in embed["url"]
    assert isinstance(embed["color"], int)


@asynchronous
async def test_teams_gets_an_adaptive_card(allow_private, receiver, messenger):
    await one_gateway_down("teams", receiver.url)
    await send_all(messenger)
    body = json.loads(receiver.got[0].body)
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    assert card["body"][0]["text"] == "Gateway: prod is connecting"
    assert card["actions"][0]["type"] == "Action.OpenUrl"
    assert "/gateways/" in card["actions"][0]["url"]


@asynchronous
async def test_ntfy_gets_text_and_headers_even_for_words_outside_ascii(
    allow_private, receiver, messenger
):
    await db(team_channel)("ntfy", receiver.url)
    zurich = overview.Attention(
        key="gateway.unreachable:9:100",
        kind="Gateway",
        severity=overview.CRITICAL,
        title="Zürich – prod is connecting",
        detail="",
        url="/gateways/9/",
        action="Open gateway",
    )
    await db(actions.evaluate)([overview.Standing(zurich, "gateway", "gateways.down")])
    await db(actions.flush)()
    await send_all(messenger)
    (got,) = receiver.got
    title = str(make_header(decode_header(got.headers["title"])))
    assert title == "Gateway: Zürich – prod is connecting"
    assert got.headers["priority"] == "5"  # a gateway down is urgent
    assert got.headers["tags"] == "rotating_light"
    assert "/gateways/" in got.headers["click"]
    text = got.body.decode()
    assert "Zürich – prod is connecting" in text
    assert "Open gateway: http://localhost:" in text


@asynchronous
async def test_email_reaches_a_real_smtp_server_with_text_html_and_the_link(smtp, messenger):
    await one_gateway_down("email", "ops@example.com, oncall@example.com")
    await send_all(messenger)
    (mail_from, to, raw) = smtp.mails[0]
    assert mail_from == "mc@example.com"
    assert sorted(to) == ["oncall@example.com", "ops@example.com"]
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert mail["subject"] == "Gateway: prod is connecting"
    assert mail["auto-submitted"] == "auto-generated"
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "prod is connecting" in text
    assert "Open gateway: http://localhost:" in text
    assert '<a href="http://localhost:' in html
    assert "Open gateway</a>" in html
    assert (await db(Message.objects.get)()).status == Message.Status.DELIVERED


@asynchronous
async def test_a_failing_channel_is_retried_shown_and_then_disabled(
    allow_private, receiver, messenger
):
    channel = await one_gateway_down("slack", receiver.url)
    receiver.answers = [500]
    await send_all(messenger)
    message = await db(Message.objects.get)()
    assert message.status == Message.Status.RETRYING
    assert message.last_error.startswith("HTTP 500")
    channel = await db(Channel.objects.get)(pk=channel.pk)
    assert channel.consecutive_failures == 1
    assert channel.last_error.startswith("HTTP 500")

    # It keeps failing: disabled, audited, and shown (its error) on the overview.
    def fail_many() -> Channel:
        now = timezone.now()
        outcomes = [(message.pk, outbox_actions.Outcome(at=now, duration_ms=1, status_code=502))]
        for _ in range(outbox_actions.DISABLE_AFTER_FAILURES):
            Message.objects.filter(pk=message.pk).update(status="retrying")
            actions.record_attempts(outcomes)
        return Channel.objects.get(pk=channel.pk)

    channel = await db(fail_many)()
    assert not channel.enabled
    assert channel.disabled_reason.startswith("Disabled automatically after")
    assert await db(AuditEvent.objects.filter(verb="notification.channel_disabled").exists)()


@asynchronous
async def test_an_internal_address_is_refused_unless_allowed(receiver, messenger):
    await one_gateway_down("slack", receiver.url)
    await send_all(messenger)
    assert receiver.got == []
    message = await db(Message.objects.get)()
    assert "internal address" in message.last_error


@asynchronous
async def test_the_retry_schedule_runs_out_into_failed(allow_private, receiver, messenger):
    await one_gateway_down("slack", receiver.url)
    receiver.answers = [503] * 10
    with time_machine.travel(timezone.now(), tick=True) as clock:
        for _ in range(len(actions.SCHEDULE) + 1):
            await send_all(messenger)
            clock.shift(timedelta(hours=2))
    message = await db(Message.objects.get)()
    assert message.status == Message.Status.FAILED
    assert message.attempts == len(actions.SCHEDULE) + 1
    assert len(receiver.got) == len(actions.SCHEDULE) + 1


@asynchronous
async def test_a_test_message_reaches_one_channel(allow_private, receiver, messenger):
    channel = await db(team_channel)("slack", receiver.url)
    await db(actions.send_test)(ADMIN, channel.pk)
    await send_all(messenger)
    body = json.loads(receiver.got[0].body)
    assert body["text"] == "Mission Control: a test message"
    assert "This channel works" in json.dumps(body)
    await asyncio.sleep(0)
