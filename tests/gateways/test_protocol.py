"""The gateway protocol client against a small fake gateway (tests/gateways/fake.py)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateways import protocol
from tests.gateways.fake import TOKEN, FakeGateway

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    gateway = await FakeGateway().start()
    yield gateway
    await gateway.stop()


@pytest.fixture
def identity() -> protocol.Identity:
    return protocol.Identity.generate()


async def _connect(
    fake: FakeGateway, identity: protocol.Identity, **kwargs: Any
) -> protocol.Connection:
    events: list[tuple[str, Any]] = kwargs.pop("events", [])

    async def on_event(name: str, payload: Any) -> None:
        events.append((name, payload))

    return await protocol.open_connection(
        fake.url,
        token=kwargs.pop("token", TOKEN),
        device_token="",
        identity=identity,
        on_event=on_event,
        **kwargs,
    )


class TestHandshake:
    async def test_connects_with_a_device_signature_the_gateway_verifies(self, fake, identity):
        connection = await _connect(fake, identity)
        assert fake.signatures_ok == 1
        assert connection.hello.version == "2026.9.6"
        assert set(connection.hello.scopes) == set(protocol.SCOPES)
        assert connection.hello.tick_s == 30
        assert "agents.list" in connection.hello.methods
        await connection.close()

    async def test_identity_survives_being_stored(self, identity):
        again = protocol.Identity.from_private(identity.private_b64u())
        assert again.device_id == identity.device_id
        assert again.public_key == identity.public_key

    async def test_a_wrong_token_is_auth_failed_with_the_remedy(self, fake, identity):
        with pytest.raises(protocol.Refused) as refused:
            await _connect(fake, identity, token="wrong")
        assert refused.value.state == protocol.AUTH_FAILED
        assert "token" in refused.value.remedy
        assert "update it here" in refused.value.remedy

    async def test_pairing_required_names_the_request_to_approve(self, fake, identity):
        fake.refuse = {
            "code": "NOT_PAIRED",
            "message": "pairing required: device is not approved yet",
            "details": {"code": "PAIRING_REQUIRED", "requestId": "3f2a-req"},
        }
        with pytest.raises(protocol.Refused) as refused:
            await _connect(fake, identity)
        assert refused.value.state == protocol.PAIRING_REQUIRED
        assert refused.value.pairing_request_id == "3f2a-req"
        assert "openclaw devices approve 3f2a-req" in refused.value.remedy

    async def test_no_read_scope_is_a_state_not_success(self, fake, identity):
        fake.scopes = []
        with pytest.raises(protocol.Refused) as refused:
            await _connect(fake, identity)
        assert refused.value.state == protocol.PAIRING_REQUIRED
        assert "no read scope" in refused.value.detail

    async def test_missing_write_scope_turns_off_the_features_that_need_it(self, fake, identity):
        fake.scopes = ["operator.read"]
        connection = await _connect(fake, identity)
        missing = connection.hello.missing_features()
        assert missing["send message"] == "the gateway did not grant operator.write"
        assert "reset session" in missing
        assert "agents" not in missing
        await connection.close()

    async def test_another_protocol_version_is_protocol_mismatch(self, fake, identity):
        fake.protocol = 5
        with pytest.raises(protocol.Refused) as refused:
            await _connect(fake, identity)
        assert refused.value.state == protocol.PROTOCOL_MISMATCH
        assert "upgrade" in refused.value.remedy

    async def test_nothing_listening_is_unreachable(self, identity):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with pytest.raises(protocol.Refused) as refused:
            await protocol.open_connection(
                f"ws://127.0.0.1:{port}/",
                token=TOKEN,
                device_token="",
                identity=identity,
                on_event=lambda n, p: asyncio.sleep(0),
            )
        assert refused.value.state == protocol.UNREACHABLE
        assert f"ws://127.0.0.1:{port}/" in refused.value.remedy


class TestConnection:
    async def test_answers_out_of_order_reach_their_requests(self, fake, identity):
        fake.methods["slow"] = {"which": "slow"}
        fake.methods["fast"] = {"which": "fast"}
        fake.delays["slow"] = 0.3
        connection = await _connect(fake, identity)
        reader = asyncio.ensure_future(connection.run())
        slow = asyncio.ensure_future(connection.request("slow"))
        await asyncio.sleep(0.05)
        fast = await connection.request("fast")
        assert fast == {"which": "fast"}
        assert not slow.done()
        assert await slow == {"which": "slow"}
        reader.cancel()
        await connection.close()

    async def test_a_refused_method_raises_the_gateways_error(self, fake, identity):
        connection = await _connect(fake, identity)
        reader = asyncio.ensure_future(connection.run())
        with pytest.raises(protocol.GatewayError) as error:
            await connection.request("cron.add")
        assert error.value.code == "FORBIDDEN"
        reader.cancel()
        await connection.close()

    async def test_malformed_frames_are_logged_and_survived(self, fake, identity, caplog):
        events: list[tuple[str, Any]] = []
        connection = await _connect(fake, identity, events=events)
        reader = asyncio.ensure_future(connection.run())
        for ws in fake.connections:
            await ws.send("{not json")
            await ws.send(json.dumps({"no": "type"}))
            await ws.send(json.dumps({"type": "event", "event": 42}))
        await fake.send_event("health", {"ok": True})
        assert await connection.request("status")
        assert connection.malformed == 3
        assert ("health", {"ok": True}) in events
        assert not reader.done()
        reader.cancel()
        await connection.close()

    async def test_silence_for_two_ticks_is_dead(self, fake, identity):
        fake.tick_ms = 1000  # no tick is ever sent: 2 s of silence
        connection = await _connect(fake, identity)
        with pytest.raises(protocol.Dead, match="2× the tick"):
            await asyncio.wait_for(connection.run(), 5)
        await connection.close()

    async def test_a_closed_socket_is_dead_and_fails_waiting_requests(self, fake, identity):
        fake.methods["never"] = {}
        fake.delays["never"] = 30
        connection = await _connect(fake, identity)
        reader = asyncio.ensure_future(connection.run())
        waiting = asyncio.ensure_future(connection.request("never"))
        await asyncio.sleep(0.05)
        await fake.drop_all()
        with pytest.raises(protocol.Dead):
            await reader
        with pytest.raises(protocol.Dead):
            await waiting


async def test_an_event_handler_may_make_requests_of_its_own(fake, identity):
    """The real gateway sends `health` right after connect; a handler asking `status` then
    must not wait on the reader that is busy running it (it did, until the request timed out)."""
    answers: list[Any] = []
    holder: list[protocol.Connection] = []

    async def on_event(name: str, payload: Any) -> None:
        answers.append(await holder[0].request("status", timeout=2))

    connection = await protocol.open_connection(
        fake.url, token=TOKEN, device_token="", identity=identity, on_event=on_event
    )
    holder.append(connection)
    reader = asyncio.ensure_future(connection.run())
    await fake.send_event("health", {"ok": True})
    for _ in range(100):
        if answers:
            break
        await asyncio.sleep(0.02)
    assert answers
    assert answers[0]["runtimeVersion"] == "2026.9.6"
    reader.cancel()
    await connection.close()
