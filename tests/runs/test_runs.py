"""Runs (#27): dispatch a task to a CLI agent and follow it to its end, through the real ASGI
application — an operator's token dispatches (exactly once), the agent's heartbeat answer
offers the run, the agent claims it (a lease its heartbeats renew), reports progress and
finishes; its reply lands on the task as its comment and the task moves on. Abort, lease
expiry, concurrency and budget pauses are refused or ended with the reason."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import close_old_connections

from agents.models import Agent
from billing.models import UsageRecord
from missioncontrol import tokens
from missioncontrol.audit import Actor
from missioncontrol.errors import RunActive
from missioncontrol.models import AuditEvent, LiveEvent
from runs import actions
from runs.models import Run
from tasks.models import Comment, Task
from tests.billing import factories as billing_factories
from tests.missioncontrol.factories import UserFactory
from tests.tasks.factories import make_task

pytestmark = pytest.mark.django_db(transaction=True)

ADMIN = Actor.system("test")


def token_for(user: Any) -> str:
    return tokens.issue(ADMIN, user)[1]


@pytest.fixture
def task(ada) -> Task:
    return make_task("Write the changelog", description="For 1.4.", assignee=f"agent:{ada.pk}")


async def call(api, key: str, method: str, path: str, body: Any = None, **headers: str) -> Any:
    async with api(key, **headers) as c:
        return await c.request(
            method,
            path,
            content=json.dumps(body) if body is not None else None,
            headers={"Content-Type": "application/json"} if body is not None else {},
        )


async def beat(api, key: str, **body: Any) -> dict[str, Any]:
    r = await call(api, key, "POST", "/api/v1/agents/ada/heartbeat", {"status": "idle", **body})
    assert r.status_code == 200, r.text
    return r.json()


async def test_an_operator_dispatches_and_a_cli_agent_runs_it_to_review(
    api, bob_operator, ada, ada_key, task
):
    token = await sync_to_async(token_for)(bob_operator)
    r = await call(
        api, token, "POST", f"/api/v1/tasks/{task.pk}/runs", {"instructions": "Keep it short."}
    )
    assert r.status_code == 202, r.text
    run = r.json()["run"]
    assert (run["state"], run["attempt"], run["agent"]) == ("queued", 1, "ada")
    assert await Task.objects.filter(pk=task.pk, run_state="queued").aexists()

    # The agent's heartbeat answer offers it, with the brief.
    answer = await beat(api, ada_key)
    [offered] = answer["work"]["runs"]
    assert offered["id"] == run["id"]
    assert "Write the changelog" in offered["prompt"]
    assert "Keep it short." in offered["prompt"]
    assert answer["work"]["stop"] == []

    r = await call(api, ada_key, "POST", f"/api/v1/runs/{run['id']}/claim")
    assert r.status_code == 200, r.text
    assert r.json()["run"]["state"] == "running"
    row = await Task.objects.aget(pk=task.pk)
    assert (row.status, row.run_state) == ("in_progress", "running")

    r = await call(
        api, ada_key, "POST", f"/api/v1/runs/{run['id']}/progress", {"text": "Reading the log"}
    )
    assert r.status_code == 200, r.text
    # Usage reported for the task while it runs is the run's.
    await beat(
        api,
        ada_key,
        task_id=task.pk,
        usage=[{"model": "gpt-4o", "input_tokens": 1000, "output_tokens": 500, "task_id": task.pk}],
    )
    r = await call(
        api,
        ada_key,
        "POST",
        f"/api/v1/runs/{run['id']}/finish",
        {"outcome": "succeeded", "reply": "Wrote **CHANGELOG.md**."},
    )
    assert r.status_code == 200, r.text
    ended = r.json()["run"]
    assert ended["state"] == "succeeded"
    assert (ended["input_tokens"], ended["output_tokens"]) == (1000, 500)
    assert Decimal(ended["cost_usd"]) > 0
    row = await Task.objects.aget(pk=task.pk)
    assert (row.status, row.run_state, row.blocked) == ("review", "succeeded", False)
    comment = await Comment.objects.aget(task=task)
    assert comment.body == "Wrote **CHANGELOG.md**."
    assert comment.author_label == "ada"
    assert comment.author_agent_id == ada.pk
    # Finishing again the same way is a retried request: the same run, nothing twice.
    again = await call(
        api, ada_key, "POST", f"/api/v1/runs/{run['id']}/finish", {"outcome": "succeeded"}
    )
    assert again.status_code == 200
    assert await Comment.objects.filter(task=task).acount() == 1
    types = [
        t
        async for t in LiveEvent.objects.filter(
            type__in=["task.dispatched", "run.started", "run.progress", "run.succeeded"]
        )
        .order_by("seq")
        .values_list("type", flat=True)
    ]
    assert types == ["task.dispatched", "run.started", "run.progress", "run.succeeded"]
    verbs = {v async for v in AuditEvent.objects.values_list("verb", flat=True)}
    assert {"task.dispatched", "run.started", "run.succeeded"} <= verbs


async def test_a_retry_with_the_same_idempotency_key_is_the_same_run(api, bob_operator, task):
    token = await sync_to_async(token_for)(bob_operator)
    path = f"/api/v1/tasks/{task.pk}/runs"
    first = await call(api, token, "POST", path, {}, **{"Idempotency-Key": "k-1"})
    second = await call(api, token, "POST", path, {}, **{"Idempotency-Key": "k-1"})
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json()["run"]["id"] == second.json()["run"]["id"]
    # Without the key, a second dispatch while one is queued is refused, naming it.
    third = await call(api, token, "POST", path, {})
    assert third.status_code == 409
    assert third.json()["error"] == "run_active"
    assert third.json()["run"]["id"] == first.json()["run"]["id"]
    assert await Run.objects.acount() == 1


def test_two_dispatches_at_once_make_one_run(bob_operator, task):
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def go() -> None:
        barrier.wait()
        try:
            results.append(actions.dispatch(Actor.user(bob_operator), actions.Dispatch(task.pk)))
        except RunActive as refused:
            results.append(refused)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Run.objects.count() == 1
    assert sorted(type(r).__name__ for r in results) == ["RunActive", "tuple"]


async def test_who_may_dispatch(api, alice_viewer, bob_operator, ada_key, task):
    viewer = await sync_to_async(token_for)(alice_viewer)
    path = f"/api/v1/tasks/{task.pk}/runs"
    assert (await call(api, viewer, "POST", path, {})).status_code == 403
    assert (await call(api, ada_key, "POST", path, {})).status_code == 401  # a key is no person
    token = await sync_to_async(token_for)(bob_operator)
    unassigned = await sync_to_async(make_task)("Nobody's")
    r = await call(api, token, "POST", f"/api/v1/tasks/{unassigned.pk}/runs", {})
    assert r.status_code == 400
    assert r.json()["detail"] == {"assignee": ["Assign the task to an agent first."]}
    r = await call(api, token, "POST", path, {"land_in": "nowhere"})
    assert r.status_code == 400
    assert "land_in" in r.json()["detail"]
    assert not await Run.objects.aexists()


def test_a_failed_run_blocks_the_task_with_the_agents_reason(bob_operator, ada, task):
    run, _ = actions.dispatch(Actor.user(bob_operator), actions.Dispatch(task.pk))
    actions.claim(ada.pk, run.pk)
    actions.finish(ada.pk, run.pk, "failed", error="The repository is read-only.")
    task.refresh_from_db()
    assert task.blocked
    assert task.blocked_reason == "Run 1 failed: The repository is read-only."
    assert task.run_state == "failed"
    # A new attempt unblocks it and keeps the history.
    again, created = actions.dispatch(Actor.user(bob_operator), actions.Dispatch(task.pk))
    assert created
    assert again.attempt == 2
    task.refresh_from_db()
    assert not task.blocked
    assert list(Run.objects.order_by("attempt").values_list("state", flat=True)) == [
        "failed",
        "queued",
    ]


async def test_an_abort_reaches_the_agent_in_its_heartbeat_and_its_next_report(
    api, bob_operator, ada, ada_key, task
):
    token = await sync_to_async(token_for)(bob_operator)
    run = (await call(api, token, "POST", f"/api/v1/tasks/{task.pk}/runs", {})).json()["run"]
    await call(api, ada_key, "POST", f"/api/v1/runs/{run['id']}/claim")
    r = await call(api, token, "POST", f"/api/v1/runs/{run['id']}/abort")
    assert r.status_code == 200
    assert r.json()["run"]["state"] == "aborted"
    answer = await beat(api, ada_key)
    assert answer["work"]["stop"] == [run["id"]]
    assert answer["work"]["runs"] == []
    r = await call(api, ada_key, "POST", f"/api/v1/runs/{run['id']}/progress", {"text": "still"})
    assert r.status_code == 409
    assert r.json()["error"] == "run_ended"
    row = await Task.objects.aget(pk=task.pk)
    assert row.blocked
    assert row.blocked_reason == "Run 1 aborted by bob."
    again = await call(api, token, "POST", f"/api/v1/runs/{run['id']}/abort")
    assert again.status_code == 409
    assert again.json()["error"] == "run_ended"


def test_a_run_whose_agent_goes_quiet_is_lost_and_the_task_goes_back(bob_operator, ada, task):
    run, _ = actions.dispatch(Actor.user(bob_operator), actions.Dispatch(task.pk))
    actions.claim(ada.pk, run.pk)
    run.refresh_from_db()
    assert run.lease_expires_at is not None
    assert actions.sweep_leases(run.lease_expires_at - timedelta(seconds=1)) == 0
    assert actions.sweep_leases(run.lease_expires_at + timedelta(seconds=1)) == 1
    run.refresh_from_db()
    task.refresh_from_db()
    assert (run.state, run.error_kind) == ("lost", "lease_expired")
    assert (task.status, task.run_state, task.blocked) == ("todo", "lost", True)
    assert "ada stopped reporting" in task.blocked_reason
    assert LiveEvent.objects.filter(type="run.lost").exists()


async def test_heartbeats_renew_the_lease(api, bob_operator, ada, ada_key, task):
    run, _ = await sync_to_async(actions.dispatch)(
        Actor.user(bob_operator), actions.Dispatch(task.pk)
    )
    await sync_to_async(actions.claim)(ada.pk, run.pk)
    await Run.objects.filter(pk=run.pk).aupdate(lease_expires_at=datetime(2000, 1, 1, tzinfo=UTC))
    answer = await beat(api, ada_key)
    assert [r["id"] for r in answer["work"]["runs"]] == [run.pk]
    renewed = await Run.objects.aget(pk=run.pk)
    assert renewed.lease_expires_at is not None
    assert renewed.lease_expires_at.year > 2000
    assert await sync_to_async(actions.sweep_leases)() == 0


async def test_an_agent_runs_its_limit_at_once_and_the_rest_wait_in_order(
    api, bob_operator, ada, ada_key, task
):
    second = await sync_to_async(make_task)("Second", assignee=f"agent:{ada.pk}")
    actor = Actor.user(bob_operator)
    first_run, _ = await sync_to_async(actions.dispatch)(actor, actions.Dispatch(task.pk))
    second_run, _ = await sync_to_async(actions.dispatch)(actor, actions.Dispatch(second.pk))
    answer = await beat(api, ada_key)
    assert [r["id"] for r in answer["work"]["runs"]] == [first_run.pk]  # room for one
    await call(api, ada_key, "POST", f"/api/v1/runs/{first_run.pk}/claim")
    r = await call(api, ada_key, "POST", f"/api/v1/runs/{second_run.pk}/claim")
    assert r.status_code == 409
    assert "limit" in r.json()["detail"]
    await sync_to_async(actions.finish)(ada.pk, first_run.pk, "succeeded", "Done.")
    answer = await beat(api, ada_key)
    assert [r["id"] for r in answer["work"]["runs"]] == [second_run.pk]


def test_a_paused_agent_is_not_dispatched_and_says_which_budget(bob_operator, ada, task):
    billing_factories.make_budget(
        name="Team", amount_usd=Decimal("0.001"), thresholds=[80], enforce=True
    )
    billing_factories.spend(ada.pk, n=2000)
    with pytest.raises(Exception) as refused:
        actions.dispatch(Actor.user(bob_operator), actions.Dispatch(task.pk))
    assert refused.value.body()["error"] == "agent_paused"  # type: ignore[attr-defined]
    assert refused.value.body()["pause"]["budget"] == "Team"  # type: ignore[attr-defined]
    assert not Run.objects.exists()
    assert UsageRecord.objects.exists()


def test_another_agent_cannot_touch_the_run(bob_operator, ada, task):
    bob = Agent.objects.create(name="bob-agent")
    run, _ = actions.dispatch(Actor.user(bob_operator), actions.Dispatch(task.pk))
    from missioncontrol.errors import Forbidden

    with pytest.raises(Forbidden):
        actions.claim(bob.pk, run.pk)
    with pytest.raises(Forbidden):
        actions.finish(bob.pk, run.pk, "succeeded")


def test_the_task_page_dispatches_and_shows_the_runs(operator, viewer, ada, task):
    page = operator.get(f"/tasks/{task.pk}/").content.decode()
    assert "Dispatch to ada" in page
    assert "Not dispatched yet." in page
    r = operator.post(
        f"/tasks/{task.pk}/dispatch/",
        {"instructions": "Go.", "land_in": "done", "nonce": "n-1"},
    )
    assert r.status_code == 302
    assert r["Location"].endswith(f"/tasks/{task.pk}/#runs")
    # A double click posts the nonce again: still one run.
    operator.post(f"/tasks/{task.pk}/dispatch/", {"land_in": "done", "nonce": "n-1"})
    run = Run.objects.get()
    assert (run.land_in, run.instructions) == ("done", "Go.")
    page = operator.get(f"/tasks/{task.pk}/").content.decode()
    assert f'id="run-{run.pk}"' in page
    assert "Waiting for ada to take it" in page
    shown = viewer.get(f"/tasks/{task.pk}/").content.decode()
    assert f'id="run-{run.pk}"' in shown
    assert "Dispatch to ada" not in shown
    assert viewer.post(f"/tasks/{task.pk}/dispatch/", {"land_in": "review"}).status_code == 403
    assert viewer.post(f"/runs/{run.pk}/abort/").status_code == 403
    r = operator.post(f"/runs/{run.pk}/abort/", HTTP_HX_REQUEST="true")
    assert r.status_code == 204
    run.refresh_from_db()
    assert run.state == "aborted"
    # The board's card shows a run while it is active, and the live push renders the same.
    board = operator.get("/board/").content.decode()
    assert "run-chip" not in board


def test_the_live_push_shows_the_run_on_the_card_and_the_page(bob_operator, ada, task):
    from missioncontrol import live

    run, _ = actions.dispatch(Actor.user(bob_operator), actions.Dispatch(task.pk))
    actions.claim(ada.pk, run.pk)
    actions._progress_sent.clear()
    actions.report_progress(ada.pk, run.pk, "Reading   the\nlog")
    pushed = {
        e.type: live.present(e)["ops"]
        for e in LiveEvent.objects.filter(type__in=["task.dispatched", "run.progress"])
    }
    dispatched = {op["id"]: op for op in pushed["task.dispatched"]}
    assert "run-chip run-queued" in dispatched[f"task-{task.pk}"]["html"]
    assert dispatched[f"run-{run.pk}"]["parent"] == f"runs-{task.pk}"
    progress = {op["id"]: op for op in pushed["run.progress"]}
    assert progress[f"run-progress-{task.pk}"]["text"] == "Reading the log"
    assert "Reading the log" in progress[f"run-{run.pk}"]["html"]
    # The page renders a run as the push does.
    page = client_for(bob_operator).get(f"/tasks/{task.pk}/").content.decode()
    assert "Reading the log" in page
    # … and the board's card, loaded afresh, says it too.
    board = client_for(bob_operator).get("/board/").content.decode()
    assert f'id="run-progress-{task.pk}"' in board
    assert "Reading the log" in board


def client_for(user: Any) -> Any:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


async def test_a_budget_spent_during_a_run_stops_it_mid_way(api, bob_operator, ada, ada_key, task):
    """The run's own usage crosses a pausing budget while it runs: the sweep stops it (not when
    it ends), the task says which budget, and the agent's next heartbeat says stop. By
    construction within 5 s (the sweep every loops.SWEEP_S = 2 s, the budgets' 1 s cache);
    here 30 s only stops a hang on a loaded machine (about 2 s measured)."""
    import asyncio
    import time

    from runs import loops

    run, _ = await sync_to_async(actions.dispatch)(
        Actor.user(bob_operator), actions.Dispatch(task.pk)
    )
    await call(api, ada_key, "POST", f"/api/v1/runs/{run.pk}/claim")
    await sync_to_async(billing_factories.make_budget)(
        name="Team", amount_usd=Decimal("0.001"), thresholds=[100], enforce=True
    )
    sweeper = asyncio.ensure_future(loops.lease_sweep_loop())
    try:
        spent = time.monotonic()
        await beat(
            api,
            ada_key,
            usage=[
                {"model": "gpt-4o", "input_tokens": 2000, "output_tokens": 1000, "task_id": task.pk}
            ],
        )
        while not await Run.objects.filter(pk=run.pk, state="aborted").aexists():
            assert time.monotonic() - spent < 30, "still running 30 s after the budget was spent"
            await asyncio.sleep(0.05)
    finally:
        sweeper.cancel()
        await asyncio.gather(sweeper, return_exceptions=True)
    stopped = await Run.objects.aget(pk=run.pk)
    assert stopped.error_kind == "budget"
    assert "Team" in stopped.error
    row = await Task.objects.aget(pk=task.pk)
    assert row.blocked
    assert "Team" in row.blocked_reason
    answer = await beat(api, ada_key)
    assert answer["work"]["stop"] == [run.pk]
    assert answer["paused"] is True


def test_blockers_hold_a_dispatch_until_the_last_is_done_and_cycles_are_refused(
    bob_operator, ada, task
):
    from missioncontrol.errors import Conflict, Invalid
    from tasks import actions as task_actions

    actor = Actor.user(bob_operator)
    first = make_task("Migrate the schema")
    second = make_task("Backfill the column")
    task_actions.set_blocked_by(actor, task.pk, [first.pk, second.pk])
    # A cycle, directly or through another task, is refused with the reason.
    with pytest.raises(Invalid) as cycle:
        task_actions.set_blocked_by(actor, first.pk, [task.pk])
    assert "cycle" in cycle.value.messages[0]
    task_actions.set_blocked_by(actor, second.pk, [first.pk])
    with pytest.raises(Invalid):
        task_actions.set_blocked_by(actor, first.pk, [second.pk])
    with pytest.raises(Invalid):
        task_actions.set_blocked_by(actor, task.pk, [task.pk])
    with pytest.raises(Invalid):
        task_actions.set_blocked_by(actor, task.pk, [999_999])

    run, _ = actions.dispatch(actor, actions.Dispatch(task.pk))
    from runs import events as run_events

    assert run_events.run_data(run)["waiting_on"] == [first.pk, second.pk]
    now = run.created_at
    assert actions.work_for({ada.pk}, now)[ada.pk]["runs"] == []  # not offered yet
    with pytest.raises(Conflict) as waits:
        actions.claim(ada.pk, run.pk)
    assert f"#{first.pk}, #{second.pk}" in waits.value.messages[0]
    task.refresh_from_db()
    assert task.waiting_count == 2
    card = client_for(bob_operator).get("/board/").content.decode()
    assert "Waits 2" in card
    task_actions.move_task(actor, first.pk, to_status="done")
    task.refresh_from_db()
    assert task.waiting_count == 1  # counted again when a blocker is Done
    assert actions.work_for({ada.pk}, now)[ada.pk]["runs"] == []
    task_actions.move_task(actor, second.pk, to_status="done")
    task.refresh_from_db()
    assert task.waiting_count == 0
    assert LiveEvent.objects.filter(
        type="task.updated", payload__task__id=task.pk, payload__changes__waiting_count__after=0
    ).exists()
    waited = LiveEvent.objects.filter(type="run.waiting_changed", payload__run__id=run.pk)
    assert [e.payload["run"]["waiting_on"] for e in waited.order_by("seq")] == [[second.pk], []]
    # The last blocker Done: it goes out by itself.
    [offered] = actions.work_for({ada.pk}, now)[ada.pk]["runs"]
    assert offered["id"] == run.pk
    assert actions.claim(ada.pk, run.pk).state == "running"


def test_the_page_edits_what_a_task_waits_for(operator, viewer, task):
    other = make_task("Ship the API")
    r = operator.post(f"/tasks/{task.pk}/blocked-by/", {"blocked_by": f"#{other.pk}"})
    assert r.status_code == 302
    assert list(task.blocked_by.values_list("pk", flat=True)) == [other.pk]
    page = operator.get(f"/tasks/{other.pk}/").content.decode()
    assert f'Holds up <a href="/tasks/{task.pk}/">#{task.pk}</a>' in page
    r = operator.post(f"/tasks/{other.pk}/blocked-by/", {"blocked_by": f"{task.pk}"}, follow=True)
    assert "that would be a cycle" in r.content.decode()
    r = operator.post(f"/tasks/{task.pk}/blocked-by/", {"blocked_by": "soon"}, follow=True)
    assert "is not a task number" in r.content.decode()
    assert list(task.blocked_by.values_list("pk", flat=True)) == [other.pk]
    assert viewer.post(f"/tasks/{task.pk}/blocked-by/", {"blocked_by": ""}).status_code == 403


async def test_the_api_creates_a_task_that_waits(api, bob_operator, ada):
    token = await sync_to_async(token_for)(bob_operator)
    first = await sync_to_async(make_task)("First")
    r = await call(
        api,
        token,
        "POST",
        "/api/v1/tasks",
        {"title": "Then", "assignee": "ada", "blocked_by": [first.pk]},
    )
    assert r.status_code == 201, r.text
    assert r.json()["task"]["blocked_by"] == [first.pk]
    r = await call(api, token, "POST", "/api/v1/tasks", {"title": "Never", "blocked_by": [999_999]})
    assert r.status_code == 400
    assert not await Task.objects.filter(title="Never").aexists()  # all of it or nothing


def test_auto_dispatch_hands_an_agent_its_tasks_that_enter_to_do(operator, bob_operator, ada):
    from tasks import actions as task_actions

    actor = Actor.user(bob_operator)
    waiting = make_task("In the backlog", status="backlog", assignee=f"agent:{ada.pk}")
    r = operator.post(f"/agents/{ada.name}/runs/", {"max_runs": "2", "auto_dispatch": "1"})
    assert r.status_code == 302
    ada.refresh_from_db()
    assert (ada.max_runs, ada.auto_dispatch) == (2, True)
    assert AuditEvent.objects.filter(verb="agent.run_settings_changed").exists()
    assert not Run.objects.exists()  # settings alone dispatch nothing
    task_actions.move_task(actor, waiting.pk, to_status="todo")  # the board's move
    run = Run.objects.get(task=waiting)
    assert run.state == "queued"
    assert run.requested_label == "auto-dispatch (bob)"
    created = make_task("Born in To do", status="todo", assignee=f"agent:{ada.pk}")
    assert Run.objects.filter(task=created).exists()
    # Moving it back and forth while its run is going makes no second run.
    task_actions.move_task(actor, created.pk, to_status="backlog")
    task_actions.move_task(actor, created.pk, to_status="todo")
    assert Run.objects.filter(task=created).count() == 1
    # An agent without it, or a blocked task, is left alone.
    other = Agent.objects.create(name="manual")
    make_task("Manual", status="todo", assignee=f"agent:{other.pk}")
    assert Run.objects.count() == 2
    refused = operator.post(f"/agents/{ada.name}/runs/", {"max_runs": "0"}, follow=True)
    assert "from 1 to 20" in refused.content.decode()


async def test_a_persons_token_reads_a_task_with_its_comments_and_runs(
    api, bob_operator, ada, task
):
    token = await sync_to_async(token_for)(bob_operator)
    run, _ = await sync_to_async(actions.dispatch)(
        Actor.user(bob_operator), actions.Dispatch(task.pk)
    )
    await sync_to_async(actions.claim)(ada.pk, run.pk)
    await sync_to_async(actions.finish)(ada.pk, run.pk, "failed", error="No network.")
    r = await call(api, token, "GET", f"/api/v1/tasks/{task.pk}")
    assert r.status_code == 200, r.text
    body = r.json()["task"]
    assert [(a["attempt"], a["state"], a["error"]) for a in body["runs"]] == [
        (1, "failed", "No network.")
    ]
    assert body["blocked_reason"] == "Run 1 failed: No network."
    assert body["comment_list"] == []


def test_the_palette_offers_dispatch_to_operators_only(operator, viewer, ada, task):
    found = operator.get("/search/", {"q": "changelog"}).json()["results"]
    assert {
        "kind": "Dispatch",
        "title": f"#{task.pk} to ada",
        "url": f"/tasks/{task.pk}/#runs",
        "hint": task.title,
    } in found
    assert not [
        r
        for r in viewer.get("/search/", {"q": "changelog"}).json()["results"]
        if r["kind"] == "Dispatch"
    ]
    actions.dispatch(ADMIN, actions.Dispatch(task.pk))
    found = operator.get("/search/", {"q": f"#{task.pk}"}).json()["results"]
    assert [r["kind"] for r in found] == ["Task"]  # a run is going: nothing to dispatch


def test_a_lost_run_of_an_auto_dispatch_agent_waits_for_the_operator(bob_operator, ada, task):
    """Its task goes back to To do blocked, and is not handed to the agent again by itself."""
    ada.auto_dispatch = True
    ada.save(update_fields=["auto_dispatch"])
    run, _ = actions.dispatch(Actor.user(bob_operator), actions.Dispatch(task.pk))
    actions.claim(ada.pk, run.pk)
    run.refresh_from_db()
    assert run.lease_expires_at is not None
    actions.sweep_leases(run.lease_expires_at + timedelta(seconds=1))
    task.refresh_from_db()
    assert (task.status, task.blocked, task.run_state) == ("todo", True, "lost")
    assert Run.objects.filter(task=task).count() == 1


async def test_an_operators_token_changes_a_task_all_or_nothing(
    api, bob_operator, alice_viewer, ada, ada_key, task
):
    token = await sync_to_async(token_for)(bob_operator)
    first = await sync_to_async(make_task)("Schema first")
    path = f"/api/v1/tasks/{task.pk}"
    r = await call(
        api,
        token,
        "PATCH",
        path,
        {
            "title": "Changelog 1.4",
            "priority": "urgent",
            "status": "backlog",
            "blocked_by": [first.pk],
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()["task"]
    assert (body["title"], body["priority"], body["status"], body["blocked_by"]) == (
        "Changelog 1.4",
        "urgent",
        "backlog",
        [first.pk],
    )
    # A refused part (an unknown task to wait for) leaves the rest unapplied.
    r = await call(api, token, "PATCH", path, {"title": "Never", "blocked_by": [999_999]})
    assert r.status_code == 400
    assert (await Task.objects.aget(pk=task.pk)).title == "Changelog 1.4"
    # A stale version is refused; a viewer's token may not change tasks; an agent's key
    # may move and block its own task, nothing else.
    r = await call(api, token, "PATCH", path, {"title": "Old", "version": 1})
    assert r.status_code == 409
    viewer = await sync_to_async(token_for)(alice_viewer)
    assert (await call(api, viewer, "PATCH", path, {"title": "x"})).status_code == 403
    r = await call(api, ada_key, "PATCH", path, {"title": "Mine now"})
    assert r.status_code == 400
    assert r.json()["detail"] == {"title": ["An agent's key may change only status and blocked."]}
    r = await call(api, ada_key, "PATCH", path, {"status": "in_progress"})
    assert r.status_code == 200


async def test_retry_makes_a_new_attempt_with_the_same_instructions_once(
    api, bob_operator, ada, ada_key, task
):
    """Retry (API, operator's token): a failed attempt is dispatched again as attempt 2 with
    its instructions and column; a retry of the same request (Idempotency-Key) is the same run;
    an active or superseded attempt, or one that succeeded, is refused with the reason."""
    token = await sync_to_async(token_for)(bob_operator)
    first = (
        await call(
            api,
            token,
            "POST",
            f"/api/v1/tasks/{task.pk}/runs",
            {"instructions": "Only the API part.", "land_in": "done"},
        )
    ).json()["run"]
    r = await call(api, token, "POST", f"/api/v1/runs/{first['id']}/retry")
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "run_active"
    await call(api, ada_key, "POST", f"/api/v1/runs/{first['id']}/claim")
    await call(
        api,
        ada_key,
        "POST",
        f"/api/v1/runs/{first['id']}/finish",
        {"outcome": "failed", "error": "Tests did not pass."},
    )
    assert (await Task.objects.aget(pk=task.pk)).blocked
    r = await call(
        api, token, "POST", f"/api/v1/runs/{first['id']}/retry", **{"Idempotency-Key": "r-1"}
    )
    assert r.status_code == 202, r.text
    second = r.json()["run"]
    assert (second["attempt"], second["state"], second["land_in"]) == (2, "queued", "done")
    again = await Run.objects.aget(pk=second["id"])
    assert again.instructions == "Only the API part."
    assert not (await Task.objects.aget(pk=task.pk)).blocked
    same = await call(
        api, token, "POST", f"/api/v1/runs/{first['id']}/retry", **{"Idempotency-Key": "r-1"}
    )
    assert (same.status_code, same.json()["run"]["id"]) == (200, second["id"])
    assert await Run.objects.filter(task=task).acount() == 2
    # Attempt 1 is not the latest any more.
    await call(api, token, "POST", f"/api/v1/runs/{second['id']}/abort")
    r = await call(api, token, "POST", f"/api/v1/runs/{first['id']}/retry")
    assert r.status_code == 409
    assert "not the latest" in r.json()["detail"]
    # A viewer's token may not retry.
    vic = await sync_to_async(UserFactory.create)(username="vic", role="viewer")
    viewer_token = await sync_to_async(token_for)(vic)
    r = await call(api, viewer_token, "POST", f"/api/v1/runs/{second['id']}/retry")
    assert r.status_code == 403


def test_the_task_page_retries_the_latest_failed_attempt(operator, viewer, ada, task):
    run, _ = actions.dispatch(
        Actor.system("test"), actions.Dispatch(task.pk, instructions="Be brief.")
    )
    actions.claim(ada.pk, run.pk)
    actions.finish(ada.pk, run.pk, "failed", error="No network.")
    page = operator.get(f"/tasks/{task.pk}/").content.decode()
    assert f'hx-post="/runs/{run.pk}/retry/"' in page
    assert viewer.post(f"/runs/{run.pk}/retry/", HTTP_HX_REQUEST="true").status_code == 403
    r = operator.post(f"/runs/{run.pk}/retry/", HTTP_HX_REQUEST="true")
    assert r.status_code == 204
    # A double click: the same attempt, not a third.
    assert operator.post(f"/runs/{run.pk}/retry/", HTTP_HX_REQUEST="true").status_code == 204
    assert list(Run.objects.order_by("attempt").values_list("attempt", "state")) == [
        (1, "failed"),
        (2, "queued"),
    ]
    assert Run.objects.get(attempt=2).instructions == "Be brief."
    # While attempt 2 is going, a retry says why not, in words the page's toast shows.
    Run.objects.filter(attempt=2).update(idempotency_key="")
    r = operator.post(f"/runs/{run.pk}/retry/", HTTP_HX_REQUEST="true")
    assert r.status_code == 409
    assert r["Content-Type"].startswith("text/plain")
    assert "not the latest" in r.content.decode()


def test_a_run_has_a_page_of_its_own_and_a_fragment_for_its_entry(operator, viewer, ada, task):
    run, _ = actions.dispatch(
        Actor.system("test"), actions.Dispatch(task.pk, instructions="Mind the <b>tags</b>.")
    )
    actions.claim(ada.pk, run.pk)
    actions.finish(ada.pk, run.pk, "succeeded", reply="Done: **three** files.")
    # Opened in its entry on the task page: the fragment alone.
    part = viewer.get(f"/runs/{run.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in part
    assert "<strong>three</strong>" in part
    assert "Mind the &lt;b&gt;tags&lt;/b&gt;." in part
    # Visited (a link from elsewhere): a page, with the way back to its task.
    page = viewer.get(f"/runs/{run.pk}/").content.decode()
    assert "<html" in page
    assert f'href="/tasks/{task.pk}/#runs"' in page
    assert "Attempt 1" in page
    assert "Succeeded" in page
    assert "Open the task" in page  # it has ended: nothing to follow live
    assert "<strong>three</strong>" in page
    assert viewer.get("/runs/999999/").status_code == 404


def test_dispatches_committed_together_each_stand_or_fall_alone(ada, bob_operator) -> None:
    """The fast route's batch (runs.actions.dispatch_many): one transaction, and each order
    answered as a lone dispatch would be — a refused one (by who asks, or by the dispatch)
    leaves nothing and the others stand; the same Idempotency-Key twice in one batch is one run."""
    from missioncontrol.errors import ActionError, Forbidden, Invalid

    first = make_task("First", assignee=f"agent:{ada.pk}")
    unassigned = make_task("Nobody's")
    keyed = make_task("Keyed", assignee=f"agent:{ada.pk}")
    forbidden_task = make_task("Not yours", assignee=f"agent:{ada.pk}")
    bob = Actor.user(bob_operator)

    def refuse() -> Actor:
        raise Forbidden("No grant on that gateway.")

    results = actions.dispatch_many(
        [
            (lambda: bob, actions.Dispatch(first.pk)),
            (lambda: bob, actions.Dispatch(unassigned.pk)),
            (refuse, actions.Dispatch(forbidden_task.pk)),
            (lambda: bob, actions.Dispatch(first.pk)),  # already has a run: this batch's
            (lambda: bob, actions.Dispatch(keyed.pk, idempotency_key="k-1")),
            (lambda: bob, actions.Dispatch(keyed.pk, idempotency_key="k-1")),
        ]
    )
    ran, nobody, refused, again, keyed_run, keyed_again = results
    assert isinstance(ran, tuple)
    assert ran[1] is True
    assert isinstance(nobody, Invalid)
    assert isinstance(refused, Forbidden)
    assert isinstance(again, RunActive)
    assert isinstance(keyed_run, tuple)
    assert isinstance(keyed_again, tuple)
    assert (keyed_again[0].pk, keyed_again[1]) == (keyed_run[0].pk, False)
    assert not any(isinstance(r, ActionError) for r in (ran, keyed_run))
    assert sorted(Run.objects.values_list("task_id", flat=True)) == sorted([first.pk, keyed.pk])
    assert AuditEvent.objects.filter(verb="task.dispatched").count() == 2
    assert not Task.objects.get(pk=unassigned.pk).run_state
    assert not Task.objects.get(pk=forbidden_task.pk).run_state


def test_progress_held_back_goes_out_once_due(ada, task, broadcasts, monkeypatch) -> None:
    """≤ 4 updates a second a run, and the last words always land: a report held back (too
    soon after the last) goes out when due, with the latest text — it once waited for the
    run's next change, and a quiet agent's card kept showing its older words."""
    import time

    held: list[int] = []
    stop = actions.on_progress_held(lambda: held.append(1))  # as the progress loop listens
    try:
        run, _ = actions.dispatch(ADMIN, actions.Dispatch(task.pk))
        actions.claim(ada.pk, run.pk)
        actions.report_progress(ada.pk, run.pk, "Editing cli.py")
        actions.report_progress(ada.pk, run.pk, "Running the tests")  # too soon: held

        def said() -> list[str]:
            return [
                json.loads(m["data"])["data"]["run"]["progress"]
                for m in broadcasts
                if json.loads(m["data"])["event"] == "run.progress"
            ]

        assert said() == ["Editing cli.py"]
        assert held == [1]  # the loop is told (after the commit)
        assert actions.flush_progress() == 0  # not due yet: still held
        time.sleep(actions.PROGRESS_EVERY_S)
        assert actions.flush_progress() == 1
        assert said() == ["Editing cli.py", "Running the tests"]
        assert actions.flush_progress() == 0  # nothing held any more
    finally:
        stop()


def test_the_agents_page_says_what_a_running_run_works_on(ada, task, viewer) -> None:
    """An agent whose own reports name no task, running a claimed run: its row's "Working on"
    names the run's task (it said "—"), and the row a live change pushes says the same."""
    from agents import events, presenters

    run, _ = actions.dispatch(ADMIN, actions.Dispatch(task.pk))
    actions.claim(ada.pk, run.pk)
    assert Agent.objects.get(pk=ada.pk).current_task_id is None
    page = viewer.get("/agents/").content.decode()
    row = page[page.index(f'<tr id="agent-{ada.pk}"') :]
    row = row[: row.index("</tr>")]
    assert f'href="/tasks/{task.pk}/">#{task.pk} Write the changelog</a>' in row
    pushed = presenters.row_ops(
        events.agent_data(Agent.objects.get(pk=ada.pk)),
        {"next_agent_id": None, "status_counts": {}},
    )[0]["html"]
    assert f"#{task.pk} Write the changelog" in pushed
    actions.finish(ada.pk, run.pk, "succeeded", reply="Done.")
    page = viewer.get("/agents/").content.decode()
    row = page[page.index(f'<tr id="agent-{ada.pk}"') :]
    assert "Write the changelog" not in row[: row.index("</tr>")]


def test_an_operator_labels_an_agent_and_a_pipeline_pool_picks_it(operator, viewer, ada):
    """#28's pools: a step's `pool` picks among the agents carrying its label — a label an
    operator gives the agent on its page, beside the capabilities it reports itself."""
    from pipelines import actions as pipelines

    r = operator.post(
        f"/agents/{ada.name}/runs/", {"max_runs": "1", "labels": "Reviewer, docs  docs"}
    )
    assert r.status_code == 302
    ada.refresh_from_db()
    assert ada.labels == ["reviewer", "docs"]
    changed = AuditEvent.objects.filter(verb="agent.run_settings_changed").latest("pk")
    assert changed.changes["after"]["labels"] == ["reviewer", "docs"]
    page = operator.get(f"/agents/{ada.name}/").content.decode()
    assert 'value="reviewer, docs"' in page
    refused = operator.post(
        f"/agents/{ada.name}/runs/", {"max_runs": "1", "labels": "ok, <b>"}, follow=True
    )
    assert "letters, digits" in refused.content.decode()
    ada.refresh_from_db()
    assert ada.labels == ["reviewer", "docs"]  # nothing of a refused form is kept
    assert viewer.post(f"/agents/{ada.name}/runs/", {"max_runs": "1"}).status_code == 403
    version = pipelines.save(ADMIN, "name: Review\nsteps:\n  - id: look\n    pool: reviewer\n")
    run, _ = pipelines.start(ADMIN, pipelines.Start(version.pipeline_id))
    step = run.steps.get()
    assert step.agent_name == "ada"
    assert step.task_id is not None
    assert Run.objects.get(task_id=step.task_id).agent_id == ada.pk
