"""Scale-out profile: the gateway connections live in `run_workers`; a message sent through a
`serve --no-workers` process travels over Redis to it, reaches the gateway, and the gateway's
answer (or refusal) comes back to the page."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from agents.models import Agent
from gateways.models import Gateway
from tests.gateways.factories import make_gateway
from tests.gateways.fake import TOKEN, FakeGateway
from tests.gateways.waiting import wait_for
from tests.live import SCALE_OUT_ONLY, ServerProcess, WorkersProcess, login
from tests.missioncontrol.factories import UserFactory

pytestmark = [
    pytest.mark.slow,
    SCALE_OUT_ONLY,
]


@pytest.fixture
def threaded_fake() -> Iterator[FakeGateway]:
    """The fake gateway on a loop of its own thread (the test itself is synchronous)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    fake = asyncio.run_coroutine_threadsafe(FakeGateway().start(), loop).result(10)
    yield fake
    asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def test_a_message_through_a_web_process_reaches_the_gateway_held_by_the_worker(
    test_db_path, static_built, transactional_db, threaded_fake
):
    env = {"MC_LIVE_GRACE_MS": "300"}
    web = ServerProcess(test_db_path, extra_env=env, workers=False)
    workers = WorkersProcess(test_db_path, extra_env=env)
    try:
        web.start()
        workers.start()
        UserFactory.create(username="olga", role="operator")
        gateway = make_gateway(url=threaded_fake.url, token=TOKEN)
        wait_for(lambda: Gateway.objects.get(pk=gateway.pk).state == "connected")
        agent = wait_for(lambda: Agent.objects.filter(gateway=gateway, external_id="main").first())
        client = login(web.url, "olga")
        page = client.get(f"/agents/{agent.name}/")
        assert page.status_code == 200
        sent = client.post(
            f"/agents/{agent.name}/message/",
            data={
                "message": "hello over redis",
                "nonce": "n-42",
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
            },
            follow_redirects=True,
        )
        assert sent.status_code == 200
        assert "Sent." in sent.text, sent.text[-2000:]
        assert (
            "chat.send",
            {
                "sessionKey": "agent:main:main",
                "message": "hello over redis",
                "idempotencyKey": "n-42",
            },
        ) in threaded_fake.requests
        # The web process holds no connection itself: only the worker connected.
        assert threaded_fake.connects == 1
    finally:
        web.stop()
        workers.stop()
