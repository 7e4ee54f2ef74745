"""The notification sender (an edge): the messages outbox as a queue of the webhooks'
dispatcher (the same claims, bounds, retries and batching), sent to each channel in its
service's format — chat services by POST through the webhooks' SSRF guard, e-mail through
Django's e-mail backend (MC_EMAIL_URL) on a worker thread."""

from __future__ import annotations

import asyncio
import logging
import smtplib
from datetime import timedelta
from typing import TYPE_CHECKING

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from missioncontrol.supervisor import register_loop
from notifications import actions, formats, push
from notifications.models import Channel, Message
from webhooks import dispatcher
from webhooks.actions import Outcome

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger(__name__)
db = database_sync_to_async
USER_AGENT = "MissionControl-Notifications/1"


def send_email(message: Message) -> Outcome:
    """One e-mail, synchronously (a worker thread): sent, or why not."""
    from django.core.mail import EmailMultiAlternatives

    started = timezone.now()
    subject, text, html = formats.email(message.body)
    to = [a.strip() for a in message.channel.target.split(",") if a.strip()]
    mail = EmailMultiAlternatives(
        subject,
        text,
        settings.DEFAULT_FROM_EMAIL,
        to,
        headers={
            "Auto-Submitted": "auto-generated",
            "X-Mission-Control-Message": f"msg_{message.pk}",
        },
    )
    mail.attach_alternative(html, "text/html")

    def took() -> int:
        return int((timezone.now() - started).total_seconds() * 1000)

    try:
        mail.send(using="default")
    except (smtplib.SMTPException, OSError) as failed:
        return Outcome(
            at=started, duration_ms=took(), error=f"{type(failed).__name__}: {failed}"[:500]
        )
    return Outcome(at=started, duration_ms=took(), sent=True)


class Messages:
    """The notification messages as a Dispatcher's queue."""

    name = "notifications"

    def claim(self, room: int, per_target: int, busy: set[int]) -> list[Message]:
        return actions.claim_due(room, per_target, busy)

    def target(self, row: Message) -> int:
        return row.channel_id

    def key(self, row: Message) -> int:
        return row.pk

    async def send(self, client: httpx.AsyncClient, row: Message) -> Outcome:
        channel = row.channel
        if channel.kind == Channel.Kind.EMAIL:
            return await asyncio.to_thread(send_email, row)
        if channel.kind == Channel.Kind.WEBPUSH:
            try:
                url, encrypted, push_headers = await db(push.request)(channel.target, row.body)
            except Exception as failed:  # a stored subscription that no longer encrypts
                logger.exception("notifications: message %s not encrypted", row.pk)
                return Outcome(
                    at=timezone.now(),
                    duration_ms=0,
                    error=f"{type(failed).__name__}: {failed}"[:500],
                )
            push_headers = {
                **push_headers,
                "user-agent": USER_AGENT,
                "x-mission-control-message": f"msg_{row.pk}",
            }
            return await dispatcher.post(
                client, url, encrypted, push_headers, f"notifications: message {row.pk}"
            )
        body, headers = formats.http(channel.kind, row.body)
        headers = {
            **headers,
            "user-agent": USER_AGENT,
            "x-mission-control-message": f"msg_{row.pk}",
        }
        return await dispatcher.post(
            client, channel.target, body, headers, f"notifications: message {row.pk}"
        )

    def record(self, results: list[tuple[int, Outcome]]) -> object:
        return actions.record_attempts(results)

    def prune(self) -> object:
        keep = timedelta(days=settings.MC_WEBHOOK_RETENTION_DAYS)
        return actions.prune(timezone.now() - keep)


async def sender_loop() -> None:
    # The VAPID key pair exists from the first start (browsers subscribe with its public half).
    await db(push.keys)()
    await dispatcher.run(dispatcher.Dispatcher(Messages()), actions.woken)


def register() -> None:
    register_loop("notification-sender", sender_loop, restart="always")
