"""Webhook delivery end to end against a real receiver on loopback: the outbox row written with
the event, signed requests any Standard Webhooks library verifies, filtering by type and
wildcard, retries on schedule with a stable id, slow endpoints, SSRF refusals, rotation and the
auto-disable rule."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from missioncontrol.audit import Actor
from missioncontrol.models import AuditEvent, LiveEvent
from tests.tasks.factories import make_task
from tests.webhooks.receiver import Receiver
from webhooks import actions, dispatcher, outbox, targets
from webhooks.models import Delivery, Endpoint

db = database_sync_to_async
ADMIN = Actor.system("tests")


@pytest.fixture
def allow_private(settings: Any) -> None:
    settings.MC_WEBHOOK_ALLOW_PRIVATE = True  # the receiver is on loopback


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def endpoint(url: str, types: list[str], **kwargs: Any) -> Endpoint:
    return actions.save_endpoint(ADMIN, Endpoint(url=url, event_types=types, **kwargs))


@pytest.fixture
async def sender() -> AsyncIterator[dispatcher.Dispatcher]:
    d: dispatcher.Dispatcher[Delivery] = dispatcher.Dispatcher()
    yield d
    await d.close()


async def deliver_all(d: dispatcher.Dispatcher) -> None:
    """Send whatever is due, until nothing is."""
    while await d.run_once() or d.tasks:
        await d.drain()


def asynchronous(test: Any) -> Any:
    return pytest.mark.asyncio(pytest.mark.django_db(transaction=True)(test))


@asynchronous
async def test_an_event_reaches_a_subscriber_signed_and_filtered(allow_private, receiver, sender):
    hook = await db(endpoint)(receiver.url, ["task.*"])
    receiver.secrets = [hook.secret]
    task = await db(make_task)("Ship the release")
    # Only events an endpoint wants are owed to it: the task's, not e.g. an agent's.
    from agents.models import Agent

    await db(Agent.objects.create)(name="not-a-task-event")
    assert await db(lambda: list(Delivery.objects.values_list("event_type", flat=True)))() == [
        "task.created"
    ]
    await deliver_all(sender)
    (got,) = receiver.got
    assert got.verified is not None, got.error  # Standard Webhooks' own verifier
    assert got.verified["type"] == "task.created"
    assert got.verified["data"]["task"]["title"] == "Ship the release"
    assert got.verified["data"]["task"]["id"] == task.pk
    assert "type" not in got.verified["data"]
    delivery = await db(Delivery.objects.get)()
    assert got.headers["webhook-id"] == f"msg_{delivery.pk}"
    assert delivery.status == Delivery.Status.DELIVERED
    attempt = await db(lambda: delivery.attempt_rows.get())()
    assert attempt.status_code == 200
    assert attempt.response_headers["x-receiver"] == "tests"
    assert '"seen": 1' in attempt.response_body
    hook = await db(Endpoint.objects.get)(pk=hook.pk)
    assert hook.last_success_at is not None
    assert hook.consecutive_failures == 0


@asynchronous
async def test_patterns_choose_the_events(allow_private, receiver, sender):
    everything = await db(endpoint)(receiver.url, ["*"])
    exact = await db(endpoint)(receiver.url, ["task.moved"])
    none_yet = await db(endpoint)(receiver.url, ["budget.*"])
    task = await db(make_task)("Review the docs")
    from tasks import actions as task_actions

    await db(task_actions.move_task)(ADMIN, task.pk, to_status="review")

    def owed(e: Endpoint) -> list[str]:
        return sorted(Delivery.objects.filter(endpoint=e).values_list("event_type", flat=True))

    # … and the configuration events of the three endpoints, its own included (#26: config
    # changes are typed events a subscriber can follow).
    assert await db(owed)(everything) == ["task.created", "task.moved"] + 3 * [
        "webhook.endpoint_saved"
    ]
    assert await db(owed)(exact) == ["task.moved"]
    assert await db(owed)(none_yet) == []


@pytest.mark.django_db
def test_no_endpoint_no_query_and_events_outside_the_catalogue_are_not_sent(caches_hold):
    from django.db import transaction

    from missioncontrol import live

    outbox._endpoints.get()  # loaded once (none enabled)
    event = LiveEvent(seq=1, type="task.created", payload={}, created_at=timezone.now())
    with CaptureQueriesContext(connection) as queries:
        outbox.enqueue([event])
    assert len(queries) == 0
    endpoint("https://example.com/hook", ["*"])
    with transaction.atomic():
        live.publish("fleet", {"type": "agent.seen", "agents": []})
    assert not Delivery.objects.filter(event_type="agent.seen").exists()


@asynchronous
async def test_a_failure_is_retried_on_schedule_with_the_same_id(allow_private, receiver, sender):
    hook = await db(endpoint)(receiver.url, ["task.*"])
    receiver.secrets = [hook.secret]
    receiver.answers = [500]
    await db(make_task)("Flaky receiver")
    start = timezone.now()
    await deliver_all(sender)
    delivery = await db(Delivery.objects.get)()
    assert delivery.status == Delivery.Status.RETRYING
    assert delivery.attempts == 1
    wait = (delivery.next_attempt_at - start).total_seconds()
    assert 4.5 - 1 <= wait <= 5.5 + 1  # SCHEDULE[0] = 5 s, ±10 %
    # Not due yet: nothing sent.
    await deliver_all(sender)
    assert len(receiver.got) == 1
    with time_machine.travel(timezone.now() + timedelta(seconds=6), tick=True):
        await deliver_all(sender)
    assert len(receiver.got) == 2
    assert receiver.got[0].headers["webhook-id"] == receiver.got[1].headers["webhook-id"]
    assert all(r.verified for r in receiver.got)
    delivery = await db(Delivery.objects.get)()
    assert (delivery.status, delivery.attempts) == (Delivery.Status.DELIVERED, 2)
    codes = await db(lambda: list(delivery.attempt_rows.values_list("status_code", flat=True)))()
    assert codes == [500, 200]


@asynchronous
async def test_the_schedule_runs_out_to_failed(allow_private, receiver, sender):
    hook = await db(endpoint)(receiver.url, ["task.*"])
    receiver.answers = [503] * 20
    await db(make_task)("Down for good")
    now = timezone.now()
    for _ in range(len(actions.SCHEDULE) + 1):
        with time_machine.travel(now, tick=True):
            await deliver_all(sender)
        now += timedelta(hours=11)  # past the longest wait
    delivery = await db(Delivery.objects.get)()
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.attempts == len(actions.SCHEDULE) + 1
    assert len(receiver.got) == len(actions.SCHEDULE) + 1
    hook = await db(Endpoint.objects.get)(pk=hook.pk)
    assert hook.consecutive_failures == len(actions.SCHEDULE) + 1


@asynchronous
async def test_a_slow_endpoint_does_not_hold_up_a_fast_one(allow_private, sender, monkeypatch):
    monkeypatch.setattr(dispatcher, "PER_ENDPOINT", 2)  # fewer than the events, to see the bound
    slow, fast = Receiver(delay_s=2.0).start(), Receiver().start()
    try:
        await db(endpoint)(slow.url, ["task.*"])
        await db(endpoint)(fast.url, ["task.*"])
        for i in range(6):
            await db(make_task)(f"Task {i}")
        started = time.monotonic()

        async def pump() -> None:  # what the supervisor's loop does
            while True:
                await sender.run_once()
                await asyncio.sleep(0.02)

        pumping = asyncio.ensure_future(pump())
        while len(fast.got) < 6 and time.monotonic() - started < 5:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        pumping.cancel()
        assert len(fast.got) == 6
        # Causal, not timed: all six reached the fast one while the slow one (2 s per answer)
        # still held its first PER_ENDPOINT, so the fast one never waited behind it.
        assert len(slow.got) <= dispatcher.PER_ENDPOINT
        await deliver_all(sender)
        assert len(slow.got) == 6
    finally:
        slow.stop()
        fast.stop()


@asynchronous
async def test_room_is_counted_by_slots_held_not_by_send_tasks_still_alive(
    allow_private, receiver, sender
):
    """A send's task outlives its slot (it waits for the whole write batch it joined). Counting
    those as busy left no room after a wake, and the loop slept a whole poll (bench/webhooks.py:
    a dead endpoint beside a live one cost the live one ~1 s)."""
    await db(endpoint)(receiver.url, ["task.*"])
    await db(make_task)("Owed")
    lingering = [asyncio.get_running_loop().create_future() for _ in range(dispatcher.OVERALL)]
    sender.tasks.update(lingering)
    try:
        assert await sender.run_once() == 1
    finally:
        sender.tasks.difference_update(lingering)
    await deliver_all(sender)
    assert len(receiver.got) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost:8080/hook",
        "http://[::1]/hook",
        "http://internal.example/hook",  # a name that resolves to a private address
    ],
)
@pytest.mark.django_db
def test_internal_targets_are_refused(url, monkeypatch, settings):
    settings.MC_WEBHOOK_ALLOW_PRIVATE = False
    real = socket.getaddrinfo

    def resolve(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "internal.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.9.8.7", 80))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(targets.Refused, match="internal address"):
        targets.check_url(url)


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::7f00:1",  # NAT64 → 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 → 169.254.169.254 (cloud metadata)
        "64:ff9b:1::a00:1",  # local-use NAT64 → 10.0.0.1
        "::127.0.0.1",  # IPv4-compatible
        "::ffff:0:7f00:1",  # SIIT IPv4-translated
        "::ffff:10.0.0.1",  # IPv4-mapped
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
        "224.0.0.1",  # multicast
        "ff02::1",  # multicast
        "192.88.99.1",  # 6to4 relay anycast
        "0.0.0.0",
    ],
)
def test_addresses_that_reach_inside_through_translation_are_refused(address, settings):
    settings.MC_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(targets.Refused, match="internal address"):
        targets.check_address(ipaddress.ip_address(address), "x.example")


def test_public_addresses_pass(settings):
    settings.MC_WEBHOOK_ALLOW_PRIVATE = False
    for address in ("8.8.8.8", "2606:4700::1111", "64:ff9b::808:808"):
        targets.check_address(ipaddress.ip_address(address), "x.example")


@pytest.mark.django_db
def test_only_http_urls(settings):
    settings.MC_WEBHOOK_ALLOW_PRIVATE = True
    for url in ["ftp://example.com/x", "file:///etc/passwd", "gopher://x/", "http:///nohost"]:
        with pytest.raises(targets.Refused):
            targets.check_url(url)


@asynchronous
async def test_a_target_that_turns_internal_is_refused_at_send_time(receiver, sender, settings):
    """Checked again when sent, on the address actually used (a name can change meanwhile)."""
    settings.MC_WEBHOOK_ALLOW_PRIVATE = True
    await db(endpoint)(receiver.url, ["task.*"])
    settings.MC_WEBHOOK_ALLOW_PRIVATE = False
    await db(make_task)("Sneaky")
    await deliver_all(sender)
    assert receiver.got == []
    attempt = await db(lambda: Delivery.objects.get().attempt_rows.get())()
    assert attempt.status_code is None
    assert "internal address" in attempt.error


@asynchronous
async def test_during_a_rotation_both_secrets_verify(allow_private, receiver, sender):
    hook = await db(endpoint)(receiver.url, ["task.*"])
    old = hook.secret
    rotated = await db(actions.rotate_secret)(ADMIN, hook.pk)
    assert rotated.secret != old
    for secret in (old, rotated.secret):
        receiver.secrets = [secret]
        await db(make_task)("Rotated")
        await deliver_all(sender)
        assert receiver.got[-1].verified is not None, receiver.got[-1].error
    assert len(receiver.got[-1].headers["webhook-signature"].split(" ")) == 2
    # After the grace only the new one signs.
    with time_machine.travel(timezone.now() + actions.ROTATION_GRACE + timedelta(minutes=1)):
        receiver.secrets = [old]
        await db(make_task)("Later")
        await deliver_all(sender)
    assert receiver.got[-1].verified is None
    assert len(receiver.got[-1].headers["webhook-signature"].split(" ")) == 1


@asynchronous
async def test_an_endpoint_that_keeps_failing_is_disabled_audited_and_announced(
    allow_private, receiver, sender
):
    hook = await db(endpoint)(receiver.url, ["task.*"])
    receiver.answers = [500] * 100
    for i in range(actions.DISABLE_AFTER_FAILURES):
        await db(make_task)(f"T{i}")
    await deliver_all(sender)
    hook = await db(Endpoint.objects.get)(pk=hook.pk)
    assert not hook.enabled
    assert "20 failed attempts in a row" in hook.disabled_reason
    assert await db(AuditEvent.objects.filter(verb="webhook.endpoint_disabled").count)() == 1
    assert await db(LiveEvent.objects.filter(type="webhook.endpoint_disabled").count)() == 1
    # Disabled: new events are owed nothing; re-enabled by hand, they are again.
    before = await db(Delivery.objects.count)()
    await db(make_task)("While disabled")
    assert await db(Delivery.objects.count)() == before
    hook.enabled = True
    await db(actions.save_endpoint)(ADMIN, hook)
    hook = await db(Endpoint.objects.get)(pk=hook.pk)
    assert (hook.consecutive_failures, hook.disabled_reason) == (0, "")
    await db(make_task)("After")
    assert await db(Delivery.objects.count)() == before + 1


@asynchronous
async def test_redeliver_and_cancel(allow_private, receiver, sender):
    await db(endpoint)(receiver.url, ["task.*"])
    receiver.answers = [500]
    await db(make_task)("Again")
    await deliver_all(sender)
    delivery = await db(Delivery.objects.get)()
    assert await db(actions.cancel)(ADMIN, [delivery.pk]) == 1
    await deliver_all(sender)
    assert len(receiver.got) == 1
    assert await db(actions.redeliver)(ADMIN, [delivery.pk]) == 1
    await deliver_all(sender)
    delivery = await db(Delivery.objects.get)()
    assert delivery.status == Delivery.Status.DELIVERED
    assert receiver.got[0].headers["webhook-id"] == receiver.got[1].headers["webhook-id"]


@asynchronous
async def test_a_test_event_goes_to_its_endpoint_only(allow_private, receiver, sender):
    one = await db(endpoint)(receiver.url, ["task.*"])
    await db(endpoint)(receiver.url, ["*"])
    receiver.secrets = [one.secret]
    await db(actions.send_test)(ADMIN, one.pk)
    await deliver_all(sender)
    # (The other endpoint's deliveries, signed with its own secret, do not verify here.)
    (got,) = [g for g in receiver.got if g.verified and g.verified["type"] == "webhook.test"]
    assert got.verified["data"]["endpoint_id"] == one.pk


@asynchronous
async def test_an_unexpected_error_is_a_failed_attempt_not_a_stuck_endpoint(
    allow_private, receiver, sender, monkeypatch
):
    await db(endpoint)(receiver.url, ["task.*"])
    await db(make_task)("Boom")

    async def broken(url: str) -> Any:
        raise ValueError("a bug")

    monkeypatch.setattr(dispatcher, "pinned", broken)
    await deliver_all(sender)
    delivery = await db(Delivery.objects.get)()
    assert delivery.status == Delivery.Status.RETRYING
    attempt = await db(lambda: delivery.attempt_rows.get())()
    assert attempt.error == "ValueError: a bug"
    assert sender.inflight == {}  # its slot came back
