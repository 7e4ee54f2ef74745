"""Web Push end to end below the browser: a person's browser subscription is stored, a failed
run reaches a local push service encrypted for that browser only (decrypted here with the
subscription's keys: the content is checked, not just that a request came) and signed with the
installation's VAPID key; an ended subscription turns the channel off; bad subscriptions are
refused with a clear error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from django.utils import timezone

from agents.models import Agent
from missioncontrol.audit import Actor
from notifications import actions, push
from notifications.models import Channel, Message, PushKey
from runs import actions as runs
from tests.notifications.conftest import send_all
from tests.notifications.helpers import step
from tests.notifications.pushing import Browser, vapid_claims
from tests.tasks.factories import make_task
from tests.webhooks.receiver import Receiver

db = database_sync_to_async


def asynchronous(test: Any) -> Any:
    return pytest.mark.asyncio(pytest.mark.django_db(transaction=True)(test))


@pytest.fixture
def push_service() -> Iterator[Receiver]:
    r = Receiver(answers=[]).start()
    yield r
    r.stop()


def fail_a_run(person: Any) -> int:
    """A CLI agent's run that fails: its task is blocked with the agent's words."""
    ada = Agent.objects.create(
        name="ada", framework="claude-code", status=Agent.Status.IDLE, last_seen_at=timezone.now()
    )
    task = make_task("Write the changelog", assignee=f"agent:{ada.pk}")
    run, _ = runs.dispatch(Actor.user(person), runs.Dispatch(task.pk))
    runs.claim(ada.pk, run.pk)
    runs.finish(ada.pk, run.pk, "failed", error="The repository is read-only.")
    return task.pk


def subscribe(person: Any, browser: Browser) -> Channel:
    return actions.save_push_channel(
        Actor.user(person), person.pk, "Chrome on Linux", push.subscription(browser.subscription())
    )


@asynchronous
async def test_a_failed_run_is_pushed_encrypted_for_the_browser_and_signed(
    allow_private, push_service, messenger
):
    from tests.missioncontrol.factories import UserFactory

    person = await db(UserFactory.create)(username="pia", role="operator")
    browser = Browser(push_service.url)
    await db(subscribe)(person, browser)
    task = await db(fail_a_run)(person)
    (message,) = await db(step)()
    await send_all(messenger)
    (got,) = push_service.got
    assert got.headers["content-encoding"] == "aes128gcm"
    assert int(got.headers["ttl"]) == push.TTL_S
    assert b"read-only" not in got.body  # encrypted: only the browser reads it
    shown = browser.decrypt(got.body)
    assert shown["title"] == f"Blocked: #{task} Write the changelog"
    assert "failed: The repository is read-only." in shown["body"]
    assert shown["url"].endswith(f"/tasks/{task}/")
    key = await db(push.keys)()
    claims = vapid_claims(got.headers["authorization"], key.public_key)
    assert claims["aud"] == push_service.url.rsplit("/", 1)[0]
    assert claims["sub"].startswith(("mailto:", "https:"))
    assert (await db(Message.objects.get)(pk=message.pk)).status == Message.Status.DELIVERED
    # Another browser's keys cannot read it.
    with pytest.raises(Exception):  # noqa: B017 - http_ece's own error types vary
        Browser(push_service.url).decrypt(got.body)


@asynchronous
async def test_an_ended_subscription_turns_the_channel_off_at_once(
    allow_private, push_service, messenger
):
    from tests.missioncontrol.factories import UserFactory

    person = await db(UserFactory.create)(username="ned", role="operator")
    channel = await db(subscribe)(person, Browser(push_service.url))
    push_service.answers = [410]
    await db(fail_a_run)(person)
    await db(step)()
    await send_all(messenger)
    message = await db(Message.objects.get)()
    assert message.status == Message.Status.FAILED  # no retry reaches an ended subscription
    channel = await db(Channel.objects.get)(pk=channel.pk)
    assert not channel.enabled
    assert "subscription ended (HTTP 410)" in channel.disabled_reason


@pytest.mark.django_db
def test_the_vapid_key_is_made_once_and_sealed(settings: Any) -> None:
    first = push.keys()
    assert push.keys().pk == first.pk
    assert PushKey.objects.count() == 1
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT private_pem FROM notifications_pushkey")
        stored = cursor.fetchone()[0]
    assert "PRIVATE KEY" not in stored  # sealed at rest
    assert "PRIVATE KEY" in first.private_pem


@pytest.mark.django_db
def test_a_browser_subscribes_from_the_account_page(viewer: Client, alice_viewer: Any) -> None:
    page = viewer.get("/account/notifications/").content.decode()
    assert f'data-push-key="{push.keys().public_key}"' in page
    browser = Browser("https://fcm.googleapis.com/fcm/send/abc123")
    body = {"subscription": browser.subscription(), "name": "Chrome on Android"}
    response = viewer.post(
        "/account/notifications/push/", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 201
    channel = Channel.objects.get()
    assert channel.owner == alice_viewer
    assert channel.kind == "webpush"
    assert channel.hint == "push via fcm.googleapis.com"
    # The same browser again (it re-subscribed with new keys): the same channel.
    again = {"subscription": Browser(browser.endpoint).subscription(), "name": "Chrome on Android"}
    viewer.post("/account/notifications/push/", json.dumps(again), content_type="application/json")
    assert Channel.objects.count() == 1
    assert "abc123" not in viewer.get("/account/notifications/").content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ("not json", "The body is not JSON."),
        ([], "Send the subscription as a JSON object."),
        (
            {"subscription": {"endpoint": "http://x.example/p"}},
            "A push endpoint is an https:// URL.",
        ),
        ({"subscription": {"endpoint": "https://x.example/p"}}, "The subscription has no keys."),
        (
            {
                "subscription": {
                    "endpoint": "https://x.example/p",
                    "keys": {"p256dh": "AAAA", "auth": "x"},
                }
            },
            "keys.p256dh has 3 bytes, not 65.",
        ),
    ],
)
def test_a_bad_subscription_is_a_clear_400(viewer: Client, body: Any, detail: str) -> None:
    raw = body if isinstance(body, str) else json.dumps(body)
    response = viewer.post("/account/notifications/push/", raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"error": "validation_error", "detail": detail}
    assert not Channel.objects.exists()
