"""Resilience on a real server, on both profiles: mixed load, and a kill -9 under load.

Bounded (each well under 60 s), marked slow, run by `./mc test` on SQLite and on PostgreSQL +
Redis alike.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import re
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator

import httpx
import pytest
import websockets
from django.db import connection
from django.db.models import Count

from agents.models import Agent, AgentKey
from billing.models import UsageRecord
from missioncontrol.models import LiveEvent
from tasks.models import Task
from tests.agents.conftest import issue
from tests.conftest import LIVE_SERVER_ENV
from tests.live import ServerProcess, live_socket, login
from tests.missioncontrol.factories import UserFactory
from tests.tasks.factories import make_task

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

logger = logging.getLogger(__name__)
COLUMNS = ["inbox", "backlog", "todo", "in_progress", "review", "done"]


def agents_with_keys(n: int) -> list[tuple[str, str]]:
    made = []
    for i in range(n):
        agent = Agent.objects.create(name=f"load-{i}", heartbeat_interval_s=30)
        made.append((agent.name, issue(AgentKey.Kind.AGENT, agent)[1]))
    return made


async def heartbeats(
    url: str, name: str, key: str, until: float, acked: list[str], errors: list[str]
) -> None:
    """One agent's closed loop: a heartbeat with one usage record, alternating its status."""
    counter = itertools.count()
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    ) as client:
        while time.monotonic() < until:
            i = next(counter)
            usage_id = f"{name}-{i}"
            body = {
                "status": "busy" if (i // 5) % 2 else "idle",
                "usage": [{"id": usage_id, "model": "m", "input_tokens": 3, "output_tokens": 1}],
            }
            try:
                r = await client.post(f"/api/v1/agents/{name}/heartbeat", json=body)
            except httpx.TransportError as exc:
                errors.append(f"{name}: {type(exc).__name__}")
                await asyncio.sleep(0.05)
                continue
            if r.status_code == 200:
                if r.json()["usage_recorded"] == 1:
                    acked.append(usage_id)
            else:
                errors.append(f"{name}: {r.status_code} {r.text[:200]}")


def login_cookies(url: str, username: str) -> dict[str, str]:
    client = login(url, username)
    try:
        return {"sessionid": client.cookies["sessionid"], "csrftoken": client.cookies["csrftoken"]}
    finally:
        client.close()


async def operator(
    url: str, cookies: dict[str, str], ids: list[int], until: float, seed: int, log: Counter[str]
) -> None:
    """Moves through the board's own endpoint, some to the top, some before another card."""
    rng = random.Random(seed)
    where: dict[int, str] = {}
    async with httpx.AsyncClient(base_url=url, cookies=cookies, timeout=10) as client:
        while time.monotonic() < until:
            task = rng.choice(ids)
            status = rng.choice(COLUMNS[:5])
            data = {"status": status}
            neighbours = [t for t, s in where.items() if s == status and t != task]
            if neighbours and rng.random() < 0.5:
                data["before"] = str(rng.choice(neighbours))
            r = await client.post(
                f"/tasks/{task}/move/", data=data, headers={"X-CSRFToken": cookies["csrftoken"]}
            )
            if r.status_code == 200:
                where[task] = status
                log["moved"] += 1
            elif r.status_code in (400, 409) and "error" in r.json():
                log[f"refused: {r.json()['error']}"] += 1  # its "before" card had moved away
            else:
                log[f"error {r.status_code}: {r.text[:200]}"] += 1


async def reader(url: str, cookies: dict[str, str], until: float, log: Counter[str]) -> None:
    async with httpx.AsyncClient(base_url=url, cookies=cookies, timeout=20) as client:
        while time.monotonic() < until:
            r = await client.get("/board/")
            log["board" if r.status_code == 200 else f"board error {r.status_code}"] += 1


def assert_board_consistent(url: str, cookies: dict[str, str]) -> None:
    live = Task.objects.filter(archived_at__isnull=True)
    # No two cards share a position in a column.
    clashes = live.values("status", "position").annotate(n=Count("id")).filter(n__gt=1)
    assert not list(clashes)
    # The page's column counts are the rows.
    page = httpx.get(f"{url}/board/", cookies=cookies, timeout=20).text
    shown = {
        s: int(n.replace(",", ""))
        for s, n in re.findall(r'id="count-([a-z_]+)"[^>]*>([\d,]+)<', page)
    }
    rows = dict(live.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    assert shown == {s: rows.get(s, 0) for s in COLUMNS}


def assert_event_chains_unbroken() -> None:
    """Each topic's events point at the one before them: nothing a returning tab could miss."""
    last: dict[str, int | None] = {}
    for seq, topic, prev in LiveEvent.objects.order_by("seq").values_list(
        "seq", "topic", "prev_seq"
    ):
        if topic in last:
            assert prev == last[topic], f"#{seq} on {topic} follows {prev}, not {last[topic]}"
        last[topic] = seq


@pytest.fixture
def spawn(test_db_path: str, static_built: None) -> Iterator[Callable[[], ServerProcess]]:
    """Start real servers on the test database; every one is stopped however the test ends."""
    started: list[ServerProcess] = []
    env = {**LIVE_SERVER_ENV, "MC_BENCH_NO_RATE_LIMIT": "1"}

    def start() -> ServerProcess:
        server = ServerProcess(test_db_path, extra_env=env)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def test_mixed_load_has_no_errors_and_loses_nothing(spawn):
    server = spawn()
    try:
        agents = agents_with_keys(32)
        ids = [make_task(f"Card {i}", status=COLUMNS[i % 5]).pk for i in range(60)]
        for i in range(8):
            UserFactory.create(username=f"op{i}", role="operator")
        sessions = [login_cookies(server.url, f"op{i}") for i in range(8)]
        acked: list[str] = []
        errors: list[str] = []
        log: Counter[str] = Counter()

        async def run() -> None:
            until = time.monotonic() + 6  # thousands of requests of each kind on this machine
            await asyncio.gather(
                *(heartbeats(server.url, n, k, until, acked, errors) for n, k in agents),
                *(operator(server.url, c, ids, until, i, log) for i, c in enumerate(sessions)),
                *(reader(server.url, sessions[i], until, log) for i in range(2)),
            )

        asyncio.run(run())
        logger.info("mixed load: %s heartbeats acknowledged, %s", len(acked), dict(log))
        assert errors == []
        assert {k for k in log if k.startswith(("error", "board error"))} == set()
        assert {k for k in log if k.startswith("refused")} <= {"refused: validation_error"}
        # Correctness, not throughput (bench/ measures that): every kind of work happened,
        # none failed, and every acknowledged record is stored exactly once.
        assert log["moved"] > 0
        assert log["board"] > 0
        assert len(acked) > 0
        assert UsageRecord.objects.count() == len(acked) == len(set(acked))
        assert_board_consistent(server.url, sessions[0])
        assert_event_chains_unbroken()
        assert "database is locked" not in server.output()
        assert "Traceback" not in server.output()
    finally:
        server.stop()


def test_kill_9_under_load_loses_nothing_acknowledged(spawn):
    server = spawn()
    agents = agents_with_keys(8)
    UserFactory.create(username="watcher", role="admin")  # sees every event of its topics
    cookies = login_cookies(server.url, "watcher")
    acked: list[str] = []
    errors: list[str] = []
    topics = "fleet,activity"

    async def load_then_kill() -> int:
        # A tab watching until the crash: the last seq it saw is where it will resume.
        seen = 0
        async with live_socket(server.url, cookies["sessionid"], f"topics={topics}") as ws:
            while json.loads(await ws.recv())["type"] != "ready":
                pass
            until = time.monotonic() + 30
            load = [
                asyncio.create_task(heartbeats(server.url, n, k, until, acked, errors))
                for n, k in agents
            ]
            deadline = time.monotonic() + 3
            try:
                while time.monotonic() < deadline:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 3))
                    if msg["type"] == "event":
                        seen = msg["seq"]
            except (TimeoutError, websockets.ConnectionClosed):
                pass
            # The tab stops reading (as a hidden one would) while the load goes on, so the
            # events after its last seq are ones it must get from the replay.
            await asyncio.sleep(1.5)
            assert server.proc is not None
            server.proc.send_signal(signal.SIGKILL)  # mid-load: writers hold open transactions
            server.proc.wait()
            await asyncio.sleep(0.5)
            for task in load:
                task.cancel()
            await asyncio.gather(*load, return_exceptions=True)
        return seen

    seen = asyncio.run(load_then_kill())
    server.stop()
    logger.info("kill -9: %s acknowledged before the kill, last seq seen %s", len(acked), seen)
    assert seen > 0
    assert len(acked) > 0
    restarted = spawn()
    try:
        stored = set(UsageRecord.objects.values_list("client_id", flat=True))
        assert set(acked) <= stored, f"{len(set(acked) - stored)} acknowledged records lost"
        assert_event_chains_unbroken()
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA integrity_check")
                assert cursor.fetchone()[0] == "ok"

        async def resume() -> list[int]:
            got: list[int] = []
            query = f"topics={topics}&since={seen}"
            async with live_socket(restarted.url, cookies["sessionid"], query) as ws:
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if msg["type"] == "ready":
                        return got
                    assert msg["type"] == "event", msg
                    got.append(msg["seq"])

        replayed = asyncio.run(resume())
        expected = list(
            LiveEvent.objects.filter(seq__gt=seen, topic__in=topics.split(","))
            .order_by("seq")
            .values_list("seq", flat=True)
        )
        assert replayed == expected
        assert expected, "the load went on after the tab's last event"
    finally:
        restarted.stop()
