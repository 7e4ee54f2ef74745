"""The connector against the fake gateway, with the real database: states, re-sync, agents,
reconnects (the real OpenClaw gateway: test_real_gateway.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from channels.db import database_sync_to_async

from agents.models import Agent
from gateways import connector
from gateways.models import Gateway, GatewayStateChange
from missioncontrol.secretbox import PREFIX
from missioncontrol.supervisor import RowHandle
from tests.gateways.factories import make_gateway
from tests.gateways.fake import TOKEN, FakeGateway
from tests.gateways.waiting import until

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

db = database_sync_to_async


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    gateway = await FakeGateway().start()
    yield gateway
    await gateway.stop()


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connector, "backoff", lambda attempt, since: 0.05)


def state(gateway_id: int) -> str:
    return Gateway.objects.get(pk=gateway_id).state


async def run(gateway: Gateway) -> asyncio.Task[None]:
    return asyncio.ensure_future(connector.run_gateway(RowHandle(gateway.pk, gateway.fingerprint)))


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_connects_syncs_agents_and_health(fake):
    gateway = await db(make_gateway)(url=fake.url, token=TOKEN)
    task = await run(gateway)
    await until(lambda: state(gateway.pk) == "connected")
    agents = await until(lambda: list(Agent.objects.of_gateway(gateway.pk).order_by("external_id")))
    assert [(a.name, a.external_id, a.model, a.status) for a in agents] == [
        ("helper@prod", "helper", "fakellm/fake-2", "idle"),
        ("main@prod", "main", "fakellm/fake-1", "idle"),
    ]
    assert agents[1].framework == "openclaw/pi"
    row = await until(lambda: (g := Gateway.objects.get(pk=gateway.pk)).health.get("rss_mb") and g)
    assert row.server_version == "2026.9.6"
    assert row.health["sessions"] == 2
    assert row.health["loop_delay_p99_ms"] == 3.5
    assert row.health["rss_mb"] == 812
    # Host paths from the gateway (workspace, configPath) are stored nowhere.
    assert "/secret" not in str(row.health)
    assert "/secret" not in str([a.metadata for a in agents])
    await stop(task)
    # Stopped: its agents are no longer live.
    await until(lambda: not Agent.objects.of_gateway(gateway.pk).filter(status="idle").exists())


async def test_a_resync_after_reconnect_adds_no_second_agent(fake):
    gateway = await db(make_gateway)(url=fake.url, token=TOKEN)
    task = await run(gateway)
    await until(lambda: Agent.objects.of_gateway(gateway.pk).count() == 2)
    await fake.drop_all()
    await until(lambda: fake.connects >= 2 and state(gateway.pk) == "connected")
    await until(lambda: fake.requests.count(("agents.list", {})) >= 2)
    assert await db(lambda: Agent.objects.of_gateway(gateway.pk).count())() == 2
    await stop(task)


async def test_a_lost_gateway_is_unreachable_then_reconnects(fake):
    gateway = await db(make_gateway)(url=fake.url, token=TOKEN)
    task = await run(gateway)
    await until(lambda: state(gateway.pk) == "connected")
    port = int(fake.url.rsplit(":", 1)[1].strip("/"))
    await fake.stop()
    await until(lambda: state(gateway.pk) == "unreachable")
    await until(lambda: not Agent.objects.of_gateway(gateway.pk).filter(status="idle").exists())
    again = await FakeGateway().start(port=port)
    try:
        await until(lambda: state(gateway.pk) == "connected")
        await until(lambda: Agent.objects.of_gateway(gateway.pk).filter(status="idle").count() == 2)
        states = await db(
            lambda: list(
                GatewayStateChange.objects.filter(gateway=gateway)
                .order_by("at", "id")
                .values_list("state", flat=True)
            )
        )()
        assert states == ["connecting", "connected", "unreachable", "connected"]
    finally:
        await stop(task)
        await again.stop()


async def test_a_wrong_token_is_auth_failed_with_its_remedy(fake):
    gateway = await db(make_gateway)(url=fake.url, token="wrong")
    task = await run(gateway)
    row = await until(
        lambda: (g := Gateway.objects.get(pk=gateway.pk)).state == "auth_failed" and g
    )
    assert "token mismatch" in row.last_error
    assert "update it here" in row.remedy
    await stop(task)


async def test_pairing_required_keeps_the_request_id_then_connects_once_approved(fake):
    fake.refuse = {
        "code": "NOT_PAIRED",
        "message": "pairing required",
        "details": {"code": "PAIRING_REQUIRED", "requestId": "req-77"},
    }
    gateway = await db(make_gateway)(url=fake.url, token=TOKEN)
    task = await run(gateway)
    row = await until(
        lambda: (g := Gateway.objects.get(pk=gateway.pk)).state == "pairing_required" and g
    )
    assert row.pairing_request_id == "req-77"
    assert "openclaw devices approve req-77" in row.remedy
    fake.refuse = None  # approved on the gateway host
    await until(lambda: state(gateway.pk) == "connected")
    row = await db(Gateway.objects.get)(pk=gateway.pk)
    assert row.pairing_request_id == ""
    assert row.remedy == ""
    await stop(task)


async def test_the_token_is_sealed_at_rest(fake):
    gateway = await db(make_gateway)(url=fake.url, token=TOKEN)

    def raw_token() -> str:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT token FROM gateways_gateway WHERE id = %s", [gateway.pk])
            return cursor.fetchone()[0]

    stored = await db(raw_token)()
    assert stored.startswith(PREFIX)
    assert TOKEN not in stored
    assert (await db(Gateway.objects.get)(pk=gateway.pk)).token == TOKEN


async def test_the_supervisor_follows_gateways_added_disabled_and_changed(fake):
    from gateways import actions
    from missioncontrol.audit import Actor
    from missioncontrol.supervisor import Supervisor, registered_rows

    supervisor = Supervisor([], rows=[s for s in registered_rows() if s.name == "gateways"])
    supervisor.start()
    try:
        gateway = await db(make_gateway)(url=fake.url, token=TOKEN)
        # No restart: the action wakes this process's supervisor.
        await until(lambda: state(gateway.pk) == "connected", timeout=3)
        admin = Actor.system("test")
        await db(actions.update_gateway)(admin, gateway.pk, {"enabled": False})
        await until(lambda: state(gateway.pk) == "disabled")
        await until(lambda: not fake.connections)
        await until(lambda: not Agent.objects.of_gateway(gateway.pk).filter(status="idle").exists())
        other = await FakeGateway(token="second-token").start()
        try:
            await db(actions.update_gateway)(
                admin, gateway.pk, {"enabled": True, "url": other.url, "token": "second-token"}
            )
            await until(lambda: state(gateway.pk) == "connected" and other.connects == 1)
            assert supervisor.states("gateways")[gateway.pk].state == "connected"
        finally:
            await supervisor.stop()
            await other.stop()
    finally:
        await supervisor.stop()


async def test_a_slow_command_does_not_hold_up_the_ones_after_it(running):
    """Commands to one gateway run side by side: a chat.send (or a dispatch) behind an
    agent.wait that takes seconds is answered at once, not when the wait ends."""
    from gateways import commands

    slow_fake = await FakeGateway(
        methods={"agent.wait": {"status": "ok"}}, delays={"agent.wait": 4}
    ).start()
    try:
        gateway = await db(make_gateway)(url=slow_fake.url, token=TOKEN)
        await until(lambda: state(gateway.pk) == "connected")
        waiting = asyncio.ensure_future(
            commands.acall(gateway.pk, "agent.wait", {"runId": "run-1", "timeoutMs": 4000})
        )
        await until(lambda: any(m == "agent.wait" for m, _p in slow_fake.requests))
        loop = asyncio.get_running_loop()
        asked = loop.time()
        health = await commands.acall(gateway.pk, "health", timeout=10)
        assert health["ok"] is True
        assert loop.time() - asked < 2, "the quick command waited for the slow one"
        assert not waiting.done()
        assert (await waiting) == {"status": "ok"}
    finally:
        await slow_fake.stop()


async def test_a_command_in_flight_when_the_connection_drops_is_answered_at_once(running):
    """The connection ends while a command waits for its answer: its caller hears that the
    gateway did not answer then, not at the end of its own timeout."""
    from gateways import commands

    slow_fake = await FakeGateway(
        methods={"agent.wait": {"status": "ok"}}, delays={"agent.wait": 30}
    ).start()
    try:
        gateway = await db(make_gateway)(url=slow_fake.url, token=TOKEN)
        await until(lambda: state(gateway.pk) == "connected")
        loop = asyncio.get_running_loop()
        asked = loop.time()
        waiting = asyncio.ensure_future(
            commands.acall(
                gateway.pk, "agent.wait", {"runId": "run-1", "timeoutMs": 30000}, timeout=40
            )
        )
        await until(lambda: any(m == "agent.wait" for m, _p in slow_fake.requests))
        await slow_fake.drop_all()
        with pytest.raises(commands.Unavailable, match="did not answer"):
            await waiting
        assert loop.time() - asked < 10
    finally:
        await slow_fake.stop()
