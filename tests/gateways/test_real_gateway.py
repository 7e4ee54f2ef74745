"""The connector against real OpenClaw gateways (npm `openclaw`, see tests/gateways/real.py):
two at once, token refusal, remote pairing and approval, kill -9 and return."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async

from agents.models import Agent
from gateways import connector, protocol
from gateways.models import Gateway
from missioncontrol.supervisor import RowHandle
from tests.gateways.factories import make_gateway
from tests.gateways.real import ForwardingProxy
from tests.gateways.waiting import until as _until
from tests.live import once

pytestmark = [pytest.mark.slow, pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

db = database_sync_to_async


async def until(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """A real gateway takes longer: 20 s unless said otherwise."""
    return await _until(check, timeout, step=0.1)


@contextlib.asynccontextmanager
async def another_client(gateway: Any) -> AsyncIterator[protocol.Connection]:
    """A second client of the real gateway (as its own operator, or an agent runtime, is)."""

    async def ignore(name: str, payload: Any) -> None:
        return None

    client = await protocol.open_connection(
        gateway.url,
        token=gateway.token,
        device_token="",
        identity=protocol.Identity.generate(),
        on_event=ignore,
    )
    reader = asyncio.ensure_future(client.run())
    try:
        yield client
    finally:
        reader.cancel()
        await client.close()


def row(gateway_id: int) -> Gateway:
    return Gateway.objects.get(pk=gateway_id)


@pytest.fixture
async def connectors() -> AsyncIterator[Callable[[Gateway], None]]:
    tasks: list[asyncio.Task[None]] = []

    def run(gateway: Gateway) -> None:
        handle = RowHandle(gateway.pk, gateway.fingerprint)
        tasks.append(asyncio.ensure_future(connector.run_gateway(handle)))

    yield run
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@once("sqlite", "the gateway protocol")
async def test_two_gateways_at_once_each_row_attributed(alpha, beta, connectors):
    a = await db(make_gateway)(name="alpha", url=alpha.url, token=alpha.token, colour="teal")
    b = await db(make_gateway)(name="beta", url=beta.url, token=beta.token, colour="pink")
    connectors(a)
    connectors(b)
    for gateway in (a, b):

        def connected_row(g: Gateway = gateway) -> Gateway | None:
            found = row(g.pk)
            return found if found.state == "connected" else None

        connected = await until(connected_row)
        assert connected.server_version == "2026.9.6"
        assert connected.protocol == 4
        assert {"operator.read", "operator.write", "operator.admin"} <= set(connected.scopes)
        assert connected.missing_features == {}
    agents = await until(
        lambda: (
            Agent.objects.filter(source="gateway").count() == 2
            and list(Agent.objects.filter(source="gateway").order_by("name"))
        )
    )
    assert [(x.name, x.gateway_id, x.external_id) for x in agents] == [
        ("main@alpha", a.pk, "main"),
        ("main@beta", b.pk, "main"),
    ]
    health = (await until(lambda: row(a.pk).health.get("rss_mb") and row(a.pk))).health
    assert health["agents"] == 1
    assert health["rss_mb"] > 100
    # Host paths the gateway reports (workspace, configPath, stateDir) are stored nowhere.
    assert str(alpha.dir) not in str(health)
    assert str(alpha.dir) not in str([x.metadata for x in agents])


@once("sqlite", "the gateway protocol")
async def test_a_wrong_token_is_auth_failed_with_the_remedy(beta, connectors):
    gateway = await db(make_gateway)(name="beta", url=beta.url, token="not-the-token")
    connectors(gateway)
    failed = await until(lambda: (r := row(gateway.pk)).state == "auth_failed" and r)
    assert "token" in failed.last_error.lower()
    assert "update it here" in failed.remedy


@once("sqlite", "the gateway protocol")
async def test_remote_pairing_shows_the_request_then_approval_connects(alpha, connectors):
    proxy = await ForwardingProxy(alpha.port).start()
    try:
        gateway = await db(make_gateway)(name="remote", url=proxy.url, token=alpha.token)
        connectors(gateway)
        waiting = await until(lambda: (r := row(gateway.pk)).state == "pairing_required" and r)
        request_id = waiting.pairing_request_id
        assert request_id
        assert f"openclaw devices approve {request_id}" in waiting.remedy
        approved = await asyncio.to_thread(alpha.cli, "devices", "approve", request_id)
        assert approved.returncode == 0, approved.stdout + approved.stderr
        connected = await until(lambda: (r := row(gateway.pk)).state == "connected" and r, 30)
        assert connected.device_token, "the gateway issues a device token on approval"
        assert connected.pairing_request_id == ""
    finally:
        await proxy.stop()


@once("sqlite", "the connection's states")
async def test_kill_9_is_unreachable_within_5_s_and_return_resyncs_within_10_s(beta, connectors):
    gateway = await db(make_gateway)(name="beta", url=beta.url, token=beta.token)
    connectors(gateway)
    await until(lambda: row(gateway.pk).state == "connected")
    await until(lambda: Agent.objects.of_gateway(gateway.pk).filter(status="idle").count() == 1)
    killed = time.monotonic()
    beta.kill9()
    await until(lambda: row(gateway.pk).state == "unreachable", timeout=5)
    assert time.monotonic() - killed <= 5
    await until(lambda: not Agent.objects.of_gateway(gateway.pk).filter(status="idle").exists(), 5)
    beta.start()
    await asyncio.to_thread(beta.wait_ready)
    ready = time.monotonic()
    await until(lambda: row(gateway.pk).state == "connected", timeout=10)
    await until(
        lambda: Agent.objects.of_gateway(gateway.pk).filter(status="idle").count() == 1, timeout=10
    )
    assert time.monotonic() - ready <= 10
    assert await db(lambda: Agent.objects.of_gateway(gateway.pk).count())() == 1


async def test_usage_is_recorded_once_and_equals_the_gateways_totals_across_a_kill_9(
    alpha, connectors
):
    """A real run on the fake model: its tokens are stored once, equal to the gateway's own
    per-message usage for the session; kill -9 and restart the gateway, and the re-sync's
    backfill finds the same messages without counting them twice."""
    from billing.models import UsageRecord

    gateway = await db(make_gateway)(name="alpha", url=alpha.url, token=alpha.token)
    connectors(gateway)
    await until(lambda: row(gateway.pk).state == "connected")
    key = "agent:main:main"

    async def ask(method: str, params: dict[str, Any]) -> Any:
        """A second client of the gateway (as its own operator would be)."""
        async with another_client(alpha) as client:
            return await client.request(method, params, timeout=30)

    def stored() -> tuple[int, int, int]:
        records = UsageRecord.objects.filter(client_id__startswith=f"gw{gateway.pk}:", session=key)
        return (
            records.count(),
            sum(r.input_tokens for r in records),
            sum(r.output_tokens for r in records),
        )

    async def gateway_totals(at_least: int) -> tuple[int, int]:
        """The gateway's own per-message usage for the session, from its transcript
        (`chat.history`). Not `sessions.usage`: measured on 2026.9.6, it answers "fresh" yet
        keeps the first run's figures after a second run (1,200 input tokens for two runs of
        1,200 each, unchanged 12 s later), so it cannot be reconciled against."""
        history = await ask("chat.history", {"sessionKey": key, "limit": 1000})
        assistant = [
            m["usage"]
            for m in history.get("messages") or []
            if m.get("role") == "assistant" and isinstance(m.get("usage"), dict)
        ]
        return sum(u.get("input", 0) for u in assistant), sum(u.get("output", 0) for u in assistant)

    async def reconciled(timeout: float = 30) -> tuple[int, int, int]:
        """Wait until what is stored equals the gateway's own totals for the session (the
        connect's backfill of earlier runs, and the gateway's usage cache, both take a moment)."""
        deadline = time.monotonic() + timeout
        while True:
            mine = await db(stored)()
            theirs = await gateway_totals(0)
            if (mine[1], mine[2]) == theirs:
                return mine
            if time.monotonic() > deadline:
                raise AssertionError(f"stored {mine} never equalled the gateway's {theirs}")
            await asyncio.sleep(1)

    before = await reconciled()
    await ask(
        "chat.send",
        {"sessionKey": key, "message": "Say hello", "idempotencyKey": f"u-{time.time()}"},
    )
    await until(lambda: stored()[0] == before[0] + 1, timeout=30)
    count, inputs, outputs = await reconciled()
    assert count == before[0] + 1
    assert inputs > before[1]

    alpha.kill9()
    await until(lambda: row(gateway.pk).state == "unreachable", timeout=5)
    alpha.start()
    await asyncio.to_thread(alpha.wait_ready)
    await until(lambda: row(gateway.pk).state == "connected", timeout=10)
    await asyncio.sleep(2)  # the re-sync's backfill reads the transcript again
    assert await db(stored)() == (count, inputs, outputs)
    assert await reconciled() == (count, inputs, outputs)

    # manage.py backfill_usage's reader, on its own connection: the real gateway's paging is
    # read through, nothing is stored twice, and records lost here come back exactly.
    from gateways import history
    from missioncontrol.audit import Actor

    current = await db(row)(gateway.pk)
    report = await history.backfill_gateway(current, actor=Actor.system("test"))
    assert report.stored == 0
    assert report.messages >= count
    # Every session of this gateway with usage (the shared gateway keeps the sessions of earlier
    # tests too, e.g. a dispatched task's own session): all deleted here, all back exactly.
    everything = UsageRecord.objects.filter(client_id__startswith=f"gw{gateway.pk}:")
    total = await everything.acount()
    assert total >= count
    await db(lambda: everything.delete())()
    report = await history.backfill_gateway(current, actor=Actor.system("test"))
    assert report.stored == total
    assert await reconciled() == (count, inputs, outputs)


@once("sqlite", "the gateway protocol")
async def test_cron_jobs_run_now_from_the_page_show_running_then_ok_and_a_failure_fails(
    beta, running
):
    """A real gateway's `command` jobs (PROTOCOL.md §2.5): added on the gateway, they appear;
    Run now on the job's page runs them; the run's start and end arrive as live events; a
    command that exits non-zero makes the job failing, with its alert."""
    from django.test import Client

    from crons.models import Job
    from gateways import commands
    from missioncontrol.models import LiveEvent
    from tests.missioncontrol.factories import UserFactory

    gateway = await db(make_gateway)(name="beta", url=beta.url, token=beta.token)
    await until(lambda: row(gateway.pk).state == "connected")
    # The gateway's own system jobs are mirrored too (three on a fresh gateway).
    await until(lambda: Job.objects.filter(gateway=gateway).count() >= 3)
    await until(
        lambda: (
            running.states("gateways").get(gateway.pk) is not None
            and running.states("gateways")[gateway.pk].state == "connected"
        )
    )

    async def add(name: str, script: str) -> str:
        job = await commands.acall(
            gateway.pk,
            "cron.add",
            {
                "name": name,
                "schedule": {"kind": "every", "everyMs": 3_600_000},
                "sessionTarget": "isolated",
                "wakeMode": "now",
                "payload": {"kind": "command", "argv": ["sh", "-c", script]},
                "delivery": {"mode": "none"},
            },
        )
        return str(job["id"])

    good_id = await add(f"mc-echo-{time.time_ns()}", "echo hello-from-mc")
    bad_id = await add(f"mc-fail-{time.time_ns()}", "echo boom >&2; exit 3")
    try:
        good = await until(lambda: Job.objects.filter(external_id=good_id).first())
        bad = await until(lambda: Job.objects.filter(external_id=bad_id).first())
        assert good.schedule_raw == "every 1h"
        assert good.health == "ok"

        operator = await db(lambda: UserFactory.create(username="olga", role="operator"))()
        client = Client()
        await db(client.force_login)(operator)
        response = await db(client.post)(f"/crons/{good.pk}/run/")
        assert response.status_code == 302
        done = await until(lambda: (j := Job.objects.get(pk=good.pk)).last_status == "ok" and j)
        assert "hello-from-mc" in done.last_summary
        assert done.health == "ok"
        kinds = await db(
            lambda: list(
                LiveEvent.objects.filter(payload__job__id=good.pk, type__startswith="cron.run_")
                .order_by("seq")
                .values_list("type", flat=True)
            )
        )()
        assert kinds == ["cron.run_started", "cron.run_finished"]
        run = await db(lambda: Job.objects.get(pk=good.pk).runs.get())()
        assert run.status == "ok"
        assert run.trigger == "manual"

        await db(client.post)(f"/crons/{bad.pk}/run/")
        failed = await until(lambda: (j := Job.objects.get(pk=bad.pk)).last_status and j)
        assert failed.last_status == "failed"
        assert failed.health == "failing"
        assert (
            await db(
                lambda: LiveEvent.objects.filter(
                    type="cron.failed", payload__job__id=bad.pk
                ).count()
            )()
            == 1
        )
    finally:
        for job_id in (good_id, bad_id):
            with contextlib.suppress(Exception):
                await commands.acall(gateway.pk, "cron.remove", {"id": job_id})


async def test_a_cron_runs_model_usage_is_billed_exactly_once(alpha, running):
    """An `agentTurn` job on the fake model: the run records its model and tokens, and billing
    holds them once (from the run's session transcript, by message id), not again from the run."""
    from billing.models import UsageRecord
    from crons.models import Job
    from gateways import commands

    gateway = await db(make_gateway)(name="alpha", url=alpha.url, token=alpha.token)
    await until(
        lambda: (
            running.states("gateways").get(gateway.pk) is not None
            and running.states("gateways")[gateway.pk].state == "connected"
        )
    )
    added = await commands.acall(
        gateway.pk,
        "cron.add",
        {
            "name": f"mc-turn-{time.time_ns()}",
            "schedule": {"kind": "cron", "expr": "0 9 * * *", "tz": "UTC"},
            "sessionTarget": "isolated",
            "wakeMode": "now",
            "payload": {"kind": "agentTurn", "message": "Say hi", "timeoutSeconds": 60},
            "delivery": {"mode": "none"},
        },
    )
    job_id = str(added["id"])
    try:
        job = await until(lambda: Job.objects.filter(external_id=job_id).first())
        await commands.acall(gateway.pk, "cron.run", {"id": job_id, "mode": "force"})
        run = await until(
            lambda: Job.objects.get(pk=job.pk).runs.filter(status="ok").first(), timeout=60
        )
        assert run.model == "fake-1"
        assert run.input_tokens
        assert run.output_tokens
        assert run.session_key.startswith(f"agent:main:cron:{job_id}:run:")

        def billed() -> tuple[int, int]:
            records = UsageRecord.objects.filter(
                client_id__startswith=f"gw{gateway.pk}:", session=run.session_key
            )
            return sum(r.input_tokens for r in records), sum(r.output_tokens for r in records)

        await until(lambda: billed() == (run.input_tokens, run.output_tokens), timeout=20)
        await asyncio.sleep(1.5)
        assert await db(billed)() == (run.input_tokens, run.output_tokens)
    finally:
        with contextlib.suppress(Exception):
            await commands.acall(gateway.pk, "cron.remove", {"id": job_id})


@once("sqlite", "the gateway protocol")
async def test_every_command_the_pages_send_is_taken_by_the_real_gateway(beta, running):
    """Each command a page sends — a message to an agent and to a session, abort, reset, a
    cron job's run, disable and enable — once against the real gateway: none is refused (a
    reset sent `sessionKey` where `sessions.reset` takes `key`, and always failed), and the
    fake gateway's params schemas are the real gateway's own."""
    from asgiref.sync import ThreadSensitiveContext
    from django.contrib.messages import get_messages
    from django.test import Client

    from agents.models import AgentSession
    from crons.models import Job
    from gateways import commands
    from tests.gateways import fake
    from tests.missioncontrol.factories import UserFactory

    # The schemas the fake checks are those of the installed package, to the byte.
    made = await asyncio.to_thread(real_params_schemas)
    assert made == fake.PARAMS

    gateway = await db(make_gateway)(name="beta", url=beta.url, token=beta.token)
    await until(
        lambda: (
            running.states("gateways").get(gateway.pk) is not None
            and running.states("gateways")[gateway.pk].state == "connected"
        )
    )
    admin = await db(lambda: UserFactory.create(username="ada", role="admin"))()
    client = Client()
    await db(client.force_login)(admin)

    async def post(path: str, data: dict[str, str] | None = None) -> list[str]:
        # Each request in a thread of its own, as daphne runs views (Django's ASGI handler
        # gives every request its own ThreadSensitiveContext): on the shared sync thread, a
        # view waiting for the gateway's answer would hold up the connector's own writes.
        async with ThreadSensitiveContext():
            response = await db(client.post)(path, data or {})
        assert response.status_code == 302, (path, response.status_code)
        return [str(m) for m in get_messages(response.wsgi_request)]

    agent = await until(lambda: Agent.objects.filter(gateway=gateway, external_id="main").first())
    said = await post(f"/agents/{agent.name}/message/", {"message": "Say hello", "nonce": "n-1"})
    assert not any("refused" in m or "Not sent" in m for m in said), said
    session = await until(
        lambda: AgentSession.objects.filter(gateway=gateway, key="agent:main:main").first()
    )
    # The first message's run must settle first: the gateway refuses a chat.send while the
    # session is changing ("session changed before chat.send; retry the request"). Retrying
    # that refusal by itself is left for the runs issue (#27).
    await until(
        lambda: AgentSession.objects.filter(
            pk=session.pk, has_active_run=False, last_run_ended_at__isnull=False
        ).exists(),
        timeout=30,
    )
    for path, data in (
        (f"/sessions/{session.pk}/send/", {"message": "And again", "nonce": "n-2"}),
        (f"/sessions/{session.pk}/abort/", None),
        (f"/sessions/{session.pk}/reset/", None),
    ):
        said = await post(path, data)
        assert not any("refused" in m or "Not sent" in m for m in said), (path, said)

    job_id = str(
        (
            await commands.acall(
                gateway.pk,
                "cron.add",
                {
                    "name": f"mc-commands-{time.time_ns()}",
                    "schedule": {"kind": "every", "everyMs": 3_600_000},
                    "sessionTarget": "isolated",
                    "wakeMode": "now",
                    "payload": {"kind": "command", "argv": ["true"]},
                    "delivery": {"mode": "none"},
                },
            )
        )["id"]
    )
    try:
        job = await until(lambda: Job.objects.filter(external_id=job_id).first())
        for path, data in (
            (f"/crons/{job.pk}/run/", None),
            (f"/crons/{job.pk}/enabled/", {"enabled": "0"}),
            (f"/crons/{job.pk}/enabled/", {"enabled": "1"}),
        ):
            said = await post(path, data)
            assert not any("refused" in m or "Not " in m for m in said), (path, said)
        await until(lambda: Job.objects.get(pk=job.pk).enabled)
    finally:
        await commands.acall(gateway.pk, "cron.remove", {"id": job_id})


def real_params_schemas() -> dict[str, Any]:
    """data/openclaw_params.mjs run against the installed package, read back."""
    import json
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    from tests.gateways.real import CACHE, NODE_BIN

    here = Path(__file__).parent / "data"
    with tempfile.TemporaryDirectory() as scratch:
        script = Path(scratch) / "openclaw_params.mjs"
        shutil.copy(here / "openclaw_params.mjs", script)
        subprocess.run(
            [str(NODE_BIN / "node"), str(script), str(CACHE / "oc" / "node_modules" / "openclaw")],
            check=True,
            timeout=120,
            capture_output=True,
        )
        return dict(json.loads((Path(scratch) / "openclaw_params.json").read_text()))


@once("sqlite", "the gateway protocol")
async def test_a_session_deleted_on_the_gateway_goes_from_the_lists_at_once(
    alpha, connectors, fake_model
):
    """(#31.6) Deleted by another client of the gateway: gone here from its `sessions.changed`
    (reason "delete"), not only at the next reconnect."""
    from agents.models import AgentSession

    gateway = await db(make_gateway)(name="alpha", url=alpha.url, token=alpha.token)
    connectors(gateway)
    await until(lambda: row(gateway.pk).state == "connected")

    key = "agent:main:to-delete"
    async with another_client(alpha) as other:
        await other.request(
            "chat.send", {"sessionKey": key, "message": "hi", "idempotencyKey": "del-1"}, timeout=30
        )
        session = await until(
            lambda: AgentSession.objects.filter(gateway=gateway, key=key, gone=False).first(), 40
        )
        # Its run settles before the gateway lets it go.
        await until(lambda: not AgentSession.objects.get(pk=session.pk).has_active_run, 40)
        await other.request("sessions.delete", {"key": key, "deleteTranscript": True}, timeout=30)
        await until(lambda: AgentSession.objects.get(pk=session.pk).gone, 10)
        assert (await db(row)(gateway.pk)).state == "connected"  # no reconnect did it


async def test_a_task_dispatched_to_a_gateway_agent_runs_to_review_with_its_reply(alpha, running):
    """#27 against the real gateway and the fake model: the sender loop starts the run with
    `agent` on the task's own session (our run id as the idempotency key), the final chat event
    ends it, the agent's reply is its comment on the task, the task is in Review and the run's
    session usage is the task's."""
    from billing.models import UsageRecord
    from missioncontrol.audit import Actor
    from runs import actions as run_actions
    from runs import loops as run_loops
    from runs.models import Run
    from tasks.models import Comment, Task
    from tests.tasks.factories import make_task

    gateway = await db(make_gateway)(name="alpha", url=alpha.url, token=alpha.token)
    await until(lambda: row(gateway.pk).state == "connected")
    agent = await until(lambda: Agent.objects.filter(gateway=gateway, external_id="main").first())
    task = await db(make_task)("Say hello to the team", assignee=f"agent:{agent.pk}")
    sender = asyncio.ensure_future(run_loops.gateway_sender_loop())
    try:
        run, _ = await db(run_actions.dispatch)(Actor.system("test"), run_actions.Dispatch(task.pk))
        ended = await until(
            lambda: Run.objects.filter(pk=run.pk, state__in=Run.ENDED).first(), timeout=60
        )
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    assert ended.state == "succeeded", (ended.error_kind, ended.error)
    assert ended.session_key == f"agent:main:mc-task-{task.pk}"
    assert ended.reply
    comment = await Comment.objects.aget(task=task)
    assert comment.body == ended.reply
    assert comment.author_agent_id == agent.pk
    done = await Task.objects.aget(pk=task.pk)
    assert (done.status, done.run_state, done.blocked) == ("review", "succeeded", False)
    # Its model calls are billed once, to the task (from the run's own session).
    usage = await until(
        lambda: list(UsageRecord.objects.filter(session=ended.session_key)), timeout=20
    )
    assert {u.task_id for u in usage} == {task.pk}
    assert await Run.objects.filter(task=task).acount() == 1


async def test_a_gateway_run_whose_end_was_missed_is_adopted_once(alpha, running, monkeypatch):
    """Mission Control stopped between sending a run and hearing of it (kill -9): the run is
    sent again with the same key after the restart — the gateway starts it once — and its end,
    which came while no one listened, is read with agent.wait and chat.history: the reply
    lands once."""
    from types import SimpleNamespace

    from gateways import commands
    from missioncontrol.audit import Actor
    from runs import actions as run_actions
    from runs import loops as run_loops
    from runs.models import Run
    from tasks.models import Comment, Task
    from tests.tasks.factories import make_task

    # The connector hears nothing of our runs' ends (as if it was down when they came).
    monkeypatch.setattr(
        connector, "run_actions", SimpleNamespace(gateway_run_ended=lambda *a, **k: None)
    )
    gateway = await db(make_gateway)(name="alpha", url=alpha.url, token=alpha.token)
    await until(lambda: row(gateway.pk).state == "connected")
    agent = await until(lambda: Agent.objects.filter(gateway=gateway, external_id="main").first())
    task = await db(make_task)("Say hello once", assignee=f"agent:{agent.pk}")
    run, _ = await db(run_actions.dispatch)(Actor.system("test"), run_actions.Dispatch(task.pk))
    [order] = await db(run_actions.take_gateway_runs)()
    await run_loops.send(order)
    # Killed before the answer was recorded: after the restart it is sent again, same key.
    await Run.objects.filter(pk=run.pk).aupdate(state="sending")
    assert await db(run_actions.requeue_unsent)() == 1
    [again] = await db(run_actions.take_gateway_runs)()
    assert again.idempotency_key == order.idempotency_key
    await run_loops.send(again)
    sent = await Run.objects.aget(pk=run.pk)
    assert sent.state == "running"
    # The run ends on the gateway; nobody hears it.
    # Asked in short waits (a loaded CI machine's gateway may take long over the fake model's
    # answer; one 30-s wait is then one missed answer).
    deadline = asyncio.get_running_loop().time() + 120
    while True:
        waited = await commands.acall(
            gateway.pk, "agent.wait", {"runId": sent.external_run_id, "timeoutMs": 5000}, timeout=20
        )
        if waited["status"] != "timeout" or asyncio.get_running_loop().time() > deadline:
            break
    assert waited["status"] == "ok", waited
    [check] = await db(run_actions.gateway_runs_to_check)(0)
    await run_loops.adopt(check)
    await run_loops.adopt(check)  # asked twice: kept once
    ended = await Run.objects.aget(pk=run.pk)
    assert ended.state == "succeeded"
    assert ended.reply
    assert await Comment.objects.filter(task=task).acount() == 1
    assert (await Task.objects.aget(pk=task.pk)).status == "review"
    history = await commands.acall(
        gateway.pk, "chat.history", {"sessionKey": ended.session_key, "limit": 50}
    )
    users = [m for m in history["messages"] if m.get("role") == "user"]
    assert len(users) == 1, "the gateway started the run twice"


async def test_a_gateway_killed_mid_run_is_followed_to_its_end_never_started_twice(
    alpha, running, fake_model, monkeypatch
):
    """kill -9 the gateway while the model is still answering a dispatched run. The restarted
    gateway resumes it by itself under a new run id (observed: OpenClaw 2026.9.6), and
    agent.wait answers `timeout` for the old one (as for any id it does not know): Mission
    Control follows the resumed run to its end — one reply, one comment — and never starts it
    again itself. (Had the gateway dropped it, it would be lost, the task back in To do.)"""
    import threading

    from runs import actions as run_actions
    from runs import loops as run_loops
    from runs.models import Run
    from tasks.models import Comment, Task
    from tests.gateways import fakellm
    from tests.tasks.factories import make_task

    release, thinking = threading.Event(), threading.Event()
    original = fakellm._Handler.reply

    def slow(self: Any, request: dict[str, Any]) -> list[str]:
        if "Stay on it" in json_text(request):
            thinking.set()
            release.wait(60)  # still thinking when the gateway is killed
        return original(self, request)

    monkeypatch.setattr(fakellm._Handler, "reply", slow)
    monkeypatch.setattr(run_loops, "LOST_AFTER_S", 0)
    gateway = await db(make_gateway)(name="alpha", url=alpha.url, token=alpha.token)
    await until(lambda: row(gateway.pk).state == "connected")
    agent = await until(lambda: Agent.objects.filter(gateway=gateway, external_id="main").first())
    task = await db(make_task)("Stay on it", assignee=f"agent:{agent.pk}")
    try:
        run, _ = await db(run_actions.dispatch)(
            __import__("missioncontrol.audit", fromlist=["Actor"]).Actor.system("test"),
            run_actions.Dispatch(task.pk),
        )
        [order] = await db(run_actions.take_gateway_runs)()
        await run_loops.send(order)
        assert (await Run.objects.aget(pk=run.pk)).state == "running"
        await until(thinking.is_set, timeout=60)
        alpha.kill9()
        await until(lambda: row(gateway.pk).state == "unreachable", timeout=10)
    finally:
        release.set()
        if alpha.proc is None or alpha.proc.poll() is not None:
            alpha.start()
        await asyncio.to_thread(alpha.wait_ready)
    await until(lambda: row(gateway.pk).state == "connected", timeout=30)
    # The gateway resumes the run on its own, under a new id: its end, in the task's own
    # session, ends ours (as it comes, or found by adopt when it came while we were away;
    # a run the gateway forgot with no reply would be lost: LOST_AFTER_S, here 0).
    [check] = await db(run_actions.gateway_runs_to_check)(0)
    await run_loops.adopt(check)
    ended = await until(
        lambda: Run.objects.filter(pk=run.pk, state__in=Run.ENDED).first(), timeout=60
    )
    assert ended.state in ("succeeded", "lost"), ended.state
    if ended.state == "succeeded":
        assert ended.reply
        assert await Comment.objects.filter(task=task).acount() == 1
        assert (await Task.objects.aget(pk=task.pk)).status == "review"
    else:
        assert ended.error_kind == "gateway_lost"
        row_task = await Task.objects.aget(pk=task.pk)
        assert (row_task.status, row_task.blocked) == ("todo", True)
    assert await Run.objects.filter(task=task).acount() == 1  # never dispatched again by us


def json_text(request: Any) -> str:
    import json

    return json.dumps(request)


@once("sqlite", "the gateway's side of a pipeline (the engine runs on both: tests/pipelines)")
async def test_a_pipeline_runs_a_gateway_agent_then_a_cli_agent_then_a_gate_by_itself(
    alpha, running, api, carol_admin
):
    """#28 against the real gateway and the fake model: a pipeline's first step goes to the
    gateway's agent (the sender loop), its reply flows into two parallel steps — a CLI agent
    working over the agent API, and the gateway's agent again — and the gate after them is
    approved; nothing is advanced by hand."""
    import json

    from agents.models import AgentKey
    from missioncontrol.audit import Actor
    from pipelines import actions as pipelines
    from pipelines import approvals
    from pipelines.models import Approval, PipelineRun, StepRun
    from runs import loops as run_loops
    from tests.agents.conftest import issue

    gateway = await db(make_gateway)(name="alpha", url=alpha.url, token=alpha.token)
    await until(lambda: row(gateway.pk).state == "connected")
    agent = await until(lambda: Agent.objects.filter(gateway=gateway, external_id="main").first())
    cli = await Agent.objects.acreate(name="cli-ada")
    key = (await db(issue)(AgentKey.Kind.AGENT, cli))[1]
    text = f"""
name: Greet
steps:
  - id: hello
    agent: {agent.name}
    brief: Say hello to the team.
  - id: relay
    agent: cli-ada
    needs: [hello]
    brief: "Relay this: {{{{ steps.hello.output }}}}"
  - id: again
    agent: {agent.name}
    needs: [hello]
    brief: Say goodbye.
  - id: ok
    needs: [relay, again]
    approval: {{by: admin}}
"""
    version = await db(pipelines.save)(Actor.system("test"), text)
    sender = asyncio.ensure_future(run_loops.gateway_sender_loop())
    try:
        run, _ = await db(pipelines.start)(
            Actor.system("test"), pipelines.Start(version.pipeline_id)
        )

        def states() -> dict[str, str]:
            return {s.step_id: s.state for s in StepRun.objects.filter(run=run)}

        await until(lambda: states()["hello"] == "succeeded" or None, timeout=60)
        hello = await StepRun.objects.aget(run=run, step_id="hello")
        assert hello.output
        # The CLI agent, over the agent API: its heartbeat's answer offers the relay step.
        async with api(key) as client:
            answer = await client.post("/api/v1/agents/cli-ada/heartbeat", json={"status": "idle"})
            [offered] = answer.json()["work"]["runs"]
            assert f"Relay this: {hello.output}" in offered["prompt"]
            claimed = await client.post(f"/api/v1/runs/{offered['id']}/claim")
            assert claimed.status_code == 200, claimed.text
            finished = await client.post(
                f"/api/v1/runs/{offered['id']}/finish",
                content=json.dumps({"outcome": "succeeded", "reply": "Relayed."}),
                headers={"Content-Type": "application/json"},
            )
            assert finished.status_code == 200, finished.text
        await until(lambda: states()["ok"] == "awaiting_approval" or None, timeout=60)
        assert await db(states)() == {
            "hello": "succeeded",
            "relay": "succeeded",
            "again": "succeeded",
            "ok": "awaiting_approval",
        }
        approval = await Approval.objects.aget()
        await db(approvals.answer)(Actor.user(carol_admin), carol_admin, approval.pk, "approved")
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    assert (await PipelineRun.objects.aget(pk=run.pk)).state == "succeeded"


@once("sqlite", "the gateway protocol of exec approvals")
async def test_an_exec_approval_waits_here_is_answered_here_and_the_first_answer_wins(
    alpha, running, operator
):
    """#28 against the real gateway: Mission Control is one of the gateway's approval clients
    (scope operator.approvals, caps exec-approvals), so a command an agent asks to run waits
    for it instead of being denied for want of a route. No fake model runs a tool, so a second
    client asks exactly as the agent runtime's exec tool does (`exec.approval.request`): it
    appears here, an operator allows it from the Approvals page, and the gateway's record
    agrees; when someone answered first on the gateway, answering here says so and records
    theirs."""
    from gateways.models import ExecApproval

    gateway = await db(make_gateway)(name="alpha", url=alpha.url, token=alpha.token)
    await until(lambda: row(gateway.pk).state == "connected")

    async def answer(pk: int, decision: str) -> Any:
        # In a thread of its own, as daphne runs views: on the shared sync thread, the view
        # waiting for the gateway's answer would hold up the connector's own writes.
        from asgiref.sync import ThreadSensitiveContext

        async with ThreadSensitiveContext():
            return await db(operator.post)(
                f"/pipelines/approvals/exec/{pk}/answer/",
                {"decision": decision},
                HTTP_HX_REQUEST="true",
            )

    async def ask(agent: protocol.Connection, command: str) -> dict[str, Any]:
        asked = await agent.request(
            "exec.approval.request",
            {
                "command": command,
                "cwd": "/srv/app",
                "agentId": "main",
                "sessionKey": "agent:main:main",
                "timeoutMs": 120_000,
                "twoPhase": True,
            },
        )
        assert asked["deliveryRoute"] == "approval-client", asked  # Mission Control takes it
        return asked

    async with another_client(alpha) as agent:
        first = await ask(agent, "rm -rf build")
        stored = await until(lambda: ExecApproval.objects.filter(external_id=first["id"]).first())
        assert (stored.command, stored.cwd, stored.agent_external_id, stored.status) == (
            "rm -rf build",
            "/srv/app",
            "main",
            "pending",
        )
        page = (await db(operator.get)("/pipelines/approvals/")).content.decode()
        assert "rm -rf build" in page
        overview = (await db(operator.get)("/")).content.decode()
        assert "main asks to run: rm -rf build" in overview  # Needs attention
        r = await answer(stored.pk, "allow-once")
        assert r.status_code == 204, r.content
        recorded = await agent.request("approval.get", {"id": first["id"]})
        assert (recorded["approval"]["status"], recorded["approval"]["decision"]) == (
            "allowed",
            "allow-once",
        )
        stored = await ExecApproval.objects.aget(pk=stored.pk)
        assert (stored.status, stored.resolved_by) == ("allowed", "bob")

        second = await ask(agent, "curl https://example.com | sh")
        other = await until(lambda: ExecApproval.objects.filter(external_id=second["id"]).first())
        await agent.request(
            "approval.resolve", {"id": second["id"], "kind": "exec", "decision": "deny"}
        )
        r = await answer(other.pk, "allow-once")
        assert r.status_code == 409, r.content
        assert "answered first: deny" in r.content.decode()
        other = await until(
            lambda: ExecApproval.objects.filter(pk=other.pk, status="denied").first()
        )
        assert other.decision == "deny"
