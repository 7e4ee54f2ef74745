"""The connector mirrors a gateway's cron jobs (the fake gateway, real database): listed on
connect with their recent runs, followed through `cron` events, re-synced after a reconnect;
and the supervisor's lateness loop marks a job late with no browser open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from crons.models import Job, Run
from gateways import connector
from missioncontrol.models import LiveEvent
from missioncontrol.supervisor import RowHandle, Supervisor, registered_loops
from tests.crons.test_schedules import recorded
from tests.gateways.factories import make_gateway
from tests.gateways.fake import TOKEN, FakeGateway
from tests.gateways.waiting import until

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]
db = database_sync_to_async


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    gateway = FakeGateway()
    gateway.methods["cron.list"] = lambda params: {
        "jobs": recorded("cron.list")[params.get("offset", 0) :][: params.get("limit", 200)],
        "total": 3,
        "hasMore": False,
    }
    gateway.methods["cron.runs"] = {"entries": recorded("cron.runs"), "total": 3, "hasMore": False}
    await gateway.start()
    yield gateway
    await gateway.stop()


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connector, "backoff", lambda attempt, since: 0.05)


async def test_jobs_and_runs_on_connect_then_events_then_a_resync(fake):
    gateway = await db(make_gateway)(url=fake.url, token=TOKEN)
    task = asyncio.ensure_future(connector.run_gateway(RowHandle(gateway.pk, gateway.fingerprint)))
    try:
        await until(lambda: Job.objects.filter(gateway=gateway).count() == 3)
        await until(lambda: Run.objects.filter(job__gateway=gateway).count() == 1)
        assert ("cron.list", {"includeDisabled": True, "limit": 200, "offset": 0}) in fake.requests
        # A job added and run now on the gateway arrives through its events, live.
        for payload in recorded("cron events")[:-1]:
            await fake.send_event("cron", payload)
        probe = await until(lambda: Job.objects.filter(name="probe-echo", last_status="ok").first())
        run = await db(lambda: probe.runs.get())()
        assert (run.status, run.duration_ms) == ("ok", 24)
        assert (
            await db(
                lambda: LiveEvent.objects.filter(
                    type="cron.run_finished", gateway_id=gateway.pk, payload__job__name="probe-echo"
                ).count()
            )()
            == 1
        )
        # Reconnect: the list no longer has the probe (removed while we were away).
        await fake.drop_all()
        await until(
            lambda: Job.objects.filter(name="probe-echo", removed_at__isnull=False).exists()
        )
        assert await db(lambda: Job.objects.listed().filter(gateway=gateway).count())() == 3
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_gateway_without_cron_methods_has_no_jobs_and_still_connects(monkeypatch):
    plain = await FakeGateway().start()
    try:
        gateway = await db(make_gateway)(url=plain.url, token=TOKEN)
        task = asyncio.ensure_future(
            connector.run_gateway(RowHandle(gateway.pk, gateway.fingerprint))
        )
        await until(lambda: type(gateway).objects.get(pk=gateway.pk).state == "connected")
        assert not any(method.startswith("cron.") for method, _ in plain.requests)
        assert not await db(lambda: Job.objects.exists())()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await plain.stop()


async def test_the_supervisors_loop_marks_a_job_late_with_no_browser_open(settings):
    settings.MC_CRON_CHECK_S = 1
    from crons import actions

    def a_direct_check_long_silent() -> Job:
        job = actions.create_check(
            actions.Actor.system("t"),
            {"name": "export", "kind": "every", "every_s": 60, "grace_s": 0},
        )
        long_ago = timezone.now() - timedelta(minutes=5)
        Job.objects.filter(pk=job.pk).update(created_at=long_ago, deadline=long_ago)
        return job

    job = await db(a_direct_check_long_silent)()
    loops = [spec for spec in registered_loops() if spec.name == "cron-lateness"]
    assert loops, "the lateness loop is registered with the supervisor"
    supervisor = Supervisor(loops)
    supervisor.start()
    try:
        await until(lambda: Job.objects.get(pk=job.pk).health == "late", timeout=5)
        assert await db(lambda: LiveEvent.objects.filter(type="cron.late").count())() == 1
    finally:
        await supervisor.stop()
