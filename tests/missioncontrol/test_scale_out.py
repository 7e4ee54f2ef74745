"""The scale-out profile end to end: two `serve --no-workers` and one `run_workers` on one
PostgreSQL database and one Redis (run by `./mc test`'s second profile; skipped on SQLite)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.utils import timezone

from agents import actions as agent_actions
from agents.models import Agent, AgentKey
from billing.models import UsageRecord
from missioncontrol.audit import Actor
from missioncontrol.models import LiveEvent
from tests.agents.conftest import issue
from tests.conftest import LIVE_SERVER_ENV
from tests.live import SCALE_OUT_ONLY, ServerProcess, WorkersProcess, live_socket, login
from tests.missioncontrol.factories import UserFactory
from tests.tasks.factories import make_task

pytestmark = [
    pytest.mark.slow,
    SCALE_OUT_ONLY,
]

SWEEP_S = 1


@pytest.fixture(scope="module")
def cluster(test_db_path: str, static_built: None) -> Iterator[dict[str, Any]]:
    env = {**LIVE_SERVER_ENV, "MC_AGENT_SWEEP_INTERVAL": str(SWEEP_S)}
    procs: list[ServerProcess | WorkersProcess] = [
        ServerProcess(test_db_path, extra_env=env, workers=False),
        ServerProcess(test_db_path, extra_env=env, workers=False),
        WorkersProcess(test_db_path, extra_env=env),
    ]
    try:
        for proc in procs:
            proc.start()
        yield dict(zip(("a", "b", "workers"), procs, strict=True))
    finally:
        # However it ends (one failing to start too): none outlives the module.
        for proc in procs:
            proc.stop()


def test_loops_run_in_the_worker_only(cluster):
    assert "supervisor: started loop agent-status-sweep" in cluster["workers"].output()
    for name in ("a", "b"):
        assert "supervisor: started loop" not in cluster[name].output()


def test_a_move_through_one_process_reaches_a_socket_on_the_other_in_order(
    cluster, transactional_db
):
    UserFactory.create(username="olga", role="operator")
    tasks = [make_task(f"Task {i}") for i in range(4)]
    a, b = cluster["a"], cluster["b"]
    mover = login(a.url, "olga")
    watcher = login(b.url, "olga")
    statuses = ["in_progress", "review", "done", "todo"] * 3
    moves = [(tasks[k % 4].pk, statuses[k]) for k in range(12)]

    async def watch() -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        async with live_socket(b.url, watcher.cookies["sessionid"], "topics=board") as ws:
            while json.loads(await ws.recv())["type"] != "ready":
                pass
            await asyncio.to_thread(move_all)
            while len(got) < len(moves):
                msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if msg["type"] == "event":
                    got.append(msg)
        return got

    def move_all() -> None:
        for pk, status in moves:
            r = mover.post(
                f"/tasks/{pk}/move/",
                data={"status": status},
                headers={"X-CSRFToken": mover.cookies["csrftoken"]},
            )
            assert r.status_code == 200, r.text

    got = asyncio.run(watch())
    seqs = [m["seq"] for m in got]
    assert seqs == sorted(seqs)
    assert {m["event"] for m in got} <= {"task.moved", "task.reordered"}
    # Each event's ops put the card where that move sent it, in the moves' order.
    placed = [
        next((op["id"], op["parent"]) for op in m["payload"]["ops"] if op["op"] == "upsert")
        for m in got
    ]
    assert placed == [(f"task-{pk}", f"col-{status}-list") for pk, status in moves]
    # And the log holds them in commit order, with each topic's chain unbroken.
    rows = list(LiveEvent.objects.filter(seq__in=seqs).order_by("seq"))
    assert [r.prev_seq for r in rows[1:]] == seqs[:-1]


def test_signing_out_on_one_process_closes_a_socket_on_the_other(cluster, transactional_db):
    """Issue #30 §1 on the scale-out profile: the re-check reads shared rows, so a sign-out
    through process A closes the WebSocket held by process B (4403)."""
    import websockets

    UserFactory.create(username="sam", role="viewer")
    a, b = cluster["a"], cluster["b"]
    client = login(a.url, "sam")

    async def watch() -> int | None:
        async with live_socket(b.url, client.cookies["sessionid"], "topics=fleet") as ws:
            while json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] != "ready":
                pass
            await asyncio.to_thread(
                client.post, "/logout/", headers={"X-CSRFToken": client.cookies["csrftoken"]}
            )
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None

    assert asyncio.run(watch()) == 4403


def test_an_agent_alternating_between_processes(cluster, transactional_db):
    agent = Agent.objects.create(name="ada", heartbeat_interval_s=30)
    _key, raw = issue(AgentKey.Kind.AGENT, agent)
    clients = [
        httpx.Client(base_url=cluster[n].url, headers={"Authorization": f"Bearer {raw}"})
        for n in ("a", "b")
    ]
    acknowledged = 0
    statuses = ["busy", "idle"]
    for i in range(24):  # 48 requests: within the key's burst (60)
        body = {
            "status": statuses[(i // 2) % 2],
            "usage": [{"id": f"u{i}", "model": "m", "input_tokens": 10, "output_tokens": 1}],
        }
        r = clients[i % 2].post("/api/v1/agents/ada/heartbeat", json=body)
        assert r.status_code == 200, r.text
        acknowledged += r.json()["usage_recorded"]
        # The same records again through the other process: stored once.
        again = clients[(i + 1) % 2].post("/api/v1/agents/ada/heartbeat", json=body)
        assert again.status_code == 200, again.text
        assert again.json()["usage_recorded"] == 0
    assert acknowledged == 24
    assert UsageRecord.objects.filter(agent=agent).count() == 24
    agent.refresh_from_db()
    assert agent.status == "idle"
    # One history: every status event's "before" is the previous event's "after".
    changes = [
        e.payload
        for e in LiveEvent.objects.filter(type="agent.status_changed").order_by("seq")
        if e.payload["agent"]["id"] == agent.pk
    ]
    assert changes, "status changes were published"
    for earlier, later in itertools.pairwise(changes):
        assert later["before"] == earlier["after"]
    assert changes[-1]["after"] == "idle"


def test_a_revoked_key_is_refused_by_both_within_2_s(cluster, transactional_db):
    """Each process reads changed keys again at its first request CHANGE_CHECK_S (2 s) after its
    last look: that request, on either process, is refused. (Asserted by what the requests get,
    not by a stopwatch: under load the requests themselves take time, not the check.)"""
    from agents.keys import CHANGE_CHECK_S

    agent = Agent.objects.create(name="ada")
    key, raw = issue(AgentKey.Kind.AGENT, agent)
    headers = {"Authorization": f"Bearer {raw}"}
    urls = [cluster["a"].url, cluster["b"].url]
    for url in urls:
        r = httpx.post(f"{url}/api/v1/agents/ada/heartbeat", json={}, headers=headers)
        assert r.status_code == 200
    agent_actions.revoke_key(Actor.system("tests"), key.pk)
    time.sleep(CHANGE_CHECK_S + 0.1)
    for url in urls:
        r = httpx.post(f"{url}/api/v1/agents/ada/heartbeat", json={}, headers=headers)
        assert r.status_code == 401, (url, r.status_code, r.text)


def test_rate_limits_are_shared_by_every_process(cluster, transactional_db):
    agent = Agent.objects.create(name="ada")
    _key, raw = issue(AgentKey.Kind.AGENT, agent)
    headers = {"Authorization": f"Bearer {raw}"}
    clients = [httpx.Client(base_url=cluster[n].url, headers=headers) for n in ("a", "b")]
    # The burst is 60 per key: alternating between the processes does not double it. Sent 10
    # at a time (one after another, a loaded CI machine took over 2 s for the 100: the refill
    # of 20/s then let them all in).
    started = time.monotonic()
    with ThreadPoolExecutor(10) as pool:
        codes = list(
            pool.map(
                lambda i: clients[i % 2].post("/api/v1/agents/ada/heartbeat", json={}), range(150)
            )
        )
    elapsed = time.monotonic() - started
    accepted = sum(r.status_code == 200 for r in codes)
    # 60 at once, plus the refill (20/s) while the requests were being made.
    assert accepted <= 60 + 20 * elapsed + 1, (accepted, elapsed)
    assert {r.status_code for r in codes} == {200, 429}, (accepted, elapsed)
    refused = next(r for r in codes if r.status_code == 429)
    assert refused.json()["error"] == "rate_limited"


def test_the_status_sweep_runs_once_in_the_worker(cluster, transactional_db):
    long_ago = timezone.now() - timedelta(seconds=120)
    agents = [
        Agent.objects.create(
            name=f"quiet-{i}",
            status="idle",
            heartbeat_interval_s=30,
            last_seen_at=long_ago,
            stale_at=long_ago + timedelta(seconds=60),
        )
        for i in range(5)
    ]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if Agent.objects.filter(pk__in=[a.pk for a in agents], status="stale").count() == 5:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the worker did not sweep")
    time.sleep(3 * SWEEP_S)  # more sweeps, by anyone, would add events
    stale_events = [
        e.payload["agent"]["id"]
        for e in LiveEvent.objects.filter(type="agent.status_changed")
        if e.payload["after"] == "stale"
    ]
    assert sorted(stale_events) == sorted(a.pk for a in agents)
