"""Webhooks across a crash: kill -9 the real server while deliveries are pending and in flight;
after a restart every one is delivered (at least once, each with its stable id)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from missioncontrol.audit import Actor
from tests.conftest import LIVE_SERVER_ENV
from tests.live import ServerProcess
from tests.tasks.factories import make_task
from tests.webhooks.receiver import Receiver
from webhooks import actions
from webhooks.models import Delivery, Endpoint

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ENV = {
    **LIVE_SERVER_ENV,
    "MC_WEBHOOK_DISPATCHER": "1",
    "MC_WEBHOOK_ALLOW_PRIVATE": "1",
    "MC_WEBHOOK_CLAIM_S": "3",  # a dead sender's claims lapse quickly here
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(delay_s=0.3).start()
    yield r
    r.stop()


def test_kill_9_with_deliveries_pending_then_restart_delivers_them_all(
    test_db_path, static_built, receiver
):
    hook = actions.save_endpoint(
        Actor.system("tests"), Endpoint(url=receiver.url, event_types=["task.*"])
    )
    receiver.secrets = [hook.secret]
    for i in range(40):
        make_task(f"Owed {i}")
    assert Delivery.objects.count() == 40
    server = ServerProcess(test_db_path, extra_env=ENV).start()
    try:
        deadline = time.monotonic() + 20
        while len(receiver.got) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(receiver.got) >= 4, server.output()
        server.stop(sig=9)  # mid-send: some claimed, some in flight, most not sent
        sent_before = len(receiver.got)
        assert sent_before < 40
        server = ServerProcess(test_db_path, extra_env=ENV).start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if Delivery.objects.exclude(status=Delivery.Status.DELIVERED).count() == 0:
                break
            time.sleep(0.1)
        assert Delivery.objects.filter(status=Delivery.Status.DELIVERED).count() == 40
    finally:
        server.stop()
    ids = {r.headers["webhook-id"] for r in receiver.got}
    assert ids == {f"msg_{pk}" for pk in Delivery.objects.values_list("pk", flat=True)}
    # A request the kill cut off mid-body is no delivery (its signature cannot verify); the
    # delivery is sent again whole after the restart. Every whole one verifies.
    whole = [r for r in receiver.got if r.complete]
    assert all(r.verified for r in whole), [(r.error, len(r.body)) for r in whole if not r.verified]
    titles = {r.verified["data"]["task"]["title"] for r in whole}
    assert titles == {f"Owed {i}" for i in range(40)}
