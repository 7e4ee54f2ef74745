"""Runs of gateway agents (#27), against the fake gateway (it refuses the params the real one
refuses): the sender hands a dispatched run to the connector, which starts it with the `agent`
method on a session of its own per task and our durable run id as the idempotency key; the
run's final `chat` event ends it with the agent's reply; an error ends it with the gateway's
words; a gateway that cannot be reached gets it again later, with the same key."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from agents.models import Agent
from gateways.models import Gateway
from missioncontrol.audit import Actor
from runs import actions, loops
from runs.models import Run
from tasks.models import Comment, Task
from tests.gateways.factories import make_gateway
from tests.gateways.fake import TOKEN, FakeGateway
from tests.gateways.waiting import until
from tests.tasks.factories import make_task

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]
db = database_sync_to_async


@pytest.fixture
async def fake():
    gateway = await FakeGateway().start()
    gateway.methods["agent"] = {"runId": "ignored-by-us", "acceptedAt": 1795460840000}
    yield gateway
    await gateway.stop()


async def dispatched(fake: FakeGateway, running) -> tuple[Run, Task]:
    gateway = await db(make_gateway)(url=fake.url, token=TOKEN)
    agent = await until(lambda: Agent.objects.filter(gateway=gateway, external_id="main").first())
    await until(lambda: Gateway.objects.get(pk=gateway.pk).state == "connected")
    task = await db(make_task)("Summarise the incident", assignee=f"agent:{agent.pk}")
    run, _ = await db(actions.dispatch)(Actor.system("test"), actions.Dispatch(task.pk))
    return run, task


async def send_all() -> list[actions.GatewaySend]:
    orders = await db(actions.take_gateway_runs)()
    for order in orders:
        await loops.send(order)
    return orders


async def test_a_gateway_run_starts_with_agent_and_ends_with_the_reply(fake, running):
    fake.methods["agent"] = {"runId": "gw-1", "acceptedAt": 1795460840000}
    run, task = await dispatched(fake, running)
    [order] = await send_all()
    assert order.session_key == f"agent:main:mc-task-{task.pk}"
    [(_m, params)] = [(m, p) for m, p in fake.requests if m == "agent"]
    assert params == {
        "message": run.prompt,
        "agentId": "main",
        "sessionKey": f"agent:main:mc-task-{task.pk}",
        "deliver": False,
        "idempotencyKey": f"mc-run-{run.pk}",
    }
    row = await Run.objects.aget(pk=run.pk)
    assert (row.state, row.external_run_id) == ("running", "gw-1")
    assert (await Task.objects.aget(pk=task.pk)).status == "in_progress"
    # A second look finds nothing to send: each run once.
    assert await send_all() == []
    await fake.send_event(
        "chat",
        {
            "runId": "gw-1",
            "sessionKey": f"agent:main:mc-task-{task.pk}",
            "state": "final",
            "message": {"role": "assistant", "content": [{"type": "text", "text": "All fine."}]},
        },
    )
    ended = await until(lambda: Run.objects.filter(pk=run.pk, state="succeeded").first())
    assert ended.reply == "All fine."
    comment = await Comment.objects.aget(task=task)
    assert comment.body == "All fine."
    assert comment.author_agent_id == run.agent_id
    row_task = await Task.objects.aget(pk=task.pk)
    assert (row_task.status, row_task.run_state) == ("review", "succeeded")
    # The same end again (a replay after a reconnect) changes nothing.
    await fake.send_event(
        "chat",
        {"runId": "gw-1", "sessionKey": order.session_key, "state": "error", "errorMessage": "x"},
    )
    await until(lambda: True)
    assert (await Run.objects.aget(pk=run.pk)).state == "succeeded"


async def test_the_gateways_error_blocks_the_task_in_its_words(fake, running):
    run, task = await dispatched(fake, running)
    [order] = await send_all()
    await fake.send_event(
        "chat",
        {
            "runId": order.idempotency_key,  # the gateway names the run by our key
            "sessionKey": order.session_key,
            "state": "error",
            "errorKind": "provider_error",
            "errorMessage": "No API key for provider fakellm",
        },
    )
    ended = await until(lambda: Run.objects.filter(pk=run.pk, state="failed").first())
    assert ended.error_kind == "provider_error"
    row = await Task.objects.aget(pk=task.pk)
    assert row.blocked
    assert row.blocked_reason == "Run 1 failed: No API key for provider fakellm"


async def test_a_refused_start_fails_the_run_and_an_unreachable_gateway_keeps_it(fake, running):
    run, task = await dispatched(fake, running)
    del fake.methods["agent"]  # the fake answers FORBIDDEN, as a gateway without the scope
    await send_all()
    failed = await Run.objects.aget(pk=run.pk)
    assert failed.state == "failed"
    assert "missing scope" in failed.error
    # A gateway that cannot be reached: the run waits, queued, for the next try.
    again, _ = await db(actions.dispatch)(Actor.system("test"), actions.Dispatch(task.pk))
    await fake.stop()
    await until(lambda: not Gateway.objects.filter(state="connected").exists())
    assert await db(actions.take_gateway_runs)() == []  # not sent to a gateway that is gone
    assert (await Run.objects.aget(pk=again.pk)).state == "queued"


async def test_a_gateway_runs_streamed_words_show_as_its_progress(fake, running):
    run, task = await dispatched(fake, running)
    [order] = await send_all()
    for text in ("Reading", "Reading the incident log"):
        await fake.send_event(
            "chat",
            {
                "runId": order.idempotency_key,
                "sessionKey": order.session_key,
                "state": "delta",
                "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
            },
        )
    shown = await until(
        lambda: Task.objects.filter(pk=task.pk, run_progress="Reading the incident log").first()
    )
    assert shown.run_state == "running"
    assert (await Run.objects.aget(pk=run.pk)).progress == "Reading the incident log"


async def test_the_sender_sends_a_dispatch_at_once_not_at_its_next_poll(fake, running, monkeypatch):
    """A dispatch's run event wakes the sender loop (this process's commit or another's: the
    channel layer carries both; the poll only catches what no event said): with the poll set
    to a minute, the gateway gets the `agent` request long before it (here in milliseconds;
    the bound is for a loaded machine)."""
    import asyncio

    monkeypatch.setattr(loops, "SEND_POLL_S", 60.0)
    gateway = await db(make_gateway)(url=fake.url, token=TOKEN)
    agent = await until(lambda: Agent.objects.filter(gateway=gateway, external_id="main").first())
    await until(lambda: Gateway.objects.get(pk=gateway.pk).state == "connected")
    task = await db(make_task)("Answer fast", assignee=f"agent:{agent.pk}")
    sender = asyncio.ensure_future(loops.gateway_sender_loop())
    try:
        await asyncio.sleep(0.5)  # its first pass done: now it waits (a minute, unless woken)
        await db(actions.dispatch)(Actor.system("test"), actions.Dispatch(task.pk))
        await until(lambda: any(m == "agent" for m, _p in fake.requests), timeout=15)
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    from missioncontrol import subscriptions

    hub = await subscriptions.get_hub()
    # The loop stopped listening when it ended.
    assert not any(isinstance(member, loops.RunChanges) for member in hub.listeners["board"])
