from __future__ import annotations

import asyncio
from collections.abc import Hashable

from missioncontrol.supervisor import LoopSpec, RowHandle, RowSpec, Supervisor, registered_loops


def test_retention_loop_is_registered():
    assert "retention" in {spec.name for spec in registered_loops()}


async def test_restarts_a_failing_loop_and_stops_on_request(monkeypatch):
    monkeypatch.setattr("missioncontrol.supervisor.random.uniform", lambda a, b: 0.001)
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError("boom")
        await asyncio.sleep(3600)

    supervisor = Supervisor([LoopSpec("flaky", flaky, "on-failure")])
    supervisor.start()
    for _ in range(200):
        if runs >= 3:
            break
        await asyncio.sleep(0.01)
    assert runs == 3
    assert supervisor.restarts["flaky"] == 2
    await supervisor.stop(timeout=1)
    assert supervisor.tasks == {}


async def test_never_policy_gives_up_after_a_failure():
    calls = 0

    async def once() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("no")

    supervisor = Supervisor([LoopSpec("once", once, "never")])
    supervisor.start()
    await asyncio.wait_for(supervisor.tasks["once"], 1)
    assert calls == 1


async def test_stop_is_bounded_even_for_a_stubborn_loop():
    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                await asyncio.sleep(0.2)
                raise

    supervisor = Supervisor([LoopSpec("stubborn", stubborn)])
    supervisor.start()
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await supervisor.stop(timeout=1)
    assert loop.time() - started < 1.5


# --- One task per row ---------------------------------------------------------------------------


async def _until(condition, timeout: float = 3.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


class Toy:
    """A toy row-backed task: rows {key: fingerprint}; each task records what it saw."""

    def __init__(self) -> None:
        self.rows: dict[str, str] = {}
        self.started: list[tuple[Hashable, Hashable]] = []
        self.stopped: list[Hashable] = []
        self.commands: list[tuple[Hashable, object]] = []
        self.fail_next: set[str] = set()

    async def load(self) -> dict:
        return dict(self.rows)

    async def run(self, handle: RowHandle) -> None:
        self.started.append((handle.key, handle.fingerprint))
        if handle.key in self.fail_next:
            self.fail_next.discard(handle.key)
            raise ConnectionError("unreachable")
        handle.set_state("connected", f"to {handle.fingerprint}")
        try:
            while True:
                self.commands.append((handle.key, await handle.inbox.get()))
        finally:
            self.stopped.append(handle.key)


async def test_row_tasks_start_stop_and_restart_as_rows_change(monkeypatch):
    monkeypatch.setattr("missioncontrol.supervisor.random.uniform", lambda a, b: 0.001)
    toy = Toy()
    toy.rows = {"gw-a": "ws://a", "gw-b": "ws://b"}
    seen: list[tuple[Hashable, str]] = []
    spec = RowSpec(
        "toys", toy.load, toy.run, reconcile_s=60, on_state=lambda h: seen.append((h.key, h.state))
    )
    supervisor = Supervisor(specs=[], rows=[spec])
    supervisor.start()
    await _until(lambda: len(toy.started) == 2)
    await _until(lambda: supervisor.states("toys")["gw-a"].state == "connected")
    assert supervisor.states("toys")["gw-b"].detail == "to ws://b"

    # A command reaches the task that holds that row, and only it.
    assert supervisor.send("toys", "gw-a", {"method": "sessions.list"})
    assert not supervisor.send("toys", "gw-zzz", {"method": "x"})
    await _until(lambda: toy.commands == [("gw-a", {"method": "sessions.list"})])

    # A row removed: its task stops. A row changed: its task restarts with the new fingerprint.
    # A row added: a task starts. All on the next reconcile (woken at once here).
    del toy.rows["gw-b"]
    toy.rows["gw-a"] = "ws://a2"
    toy.rows["gw-c"] = "ws://c"
    supervisor.wake("toys")
    await _until(lambda: set(supervisor.states("toys")) == {"gw-a", "gw-c"})
    await _until(lambda: ("gw-a", "ws://a2") in toy.started)
    assert sorted(map(str, toy.stopped)) == ["gw-a", "gw-b"]
    assert ("gw-b", "stopped") in seen
    await supervisor.stop()
    assert sorted(map(str, toy.stopped)) == ["gw-a", "gw-a", "gw-b", "gw-c"]


async def test_a_failing_row_task_backs_off_and_comes_back(monkeypatch):
    monkeypatch.setattr("missioncontrol.supervisor.random.uniform", lambda a, b: 0.01)
    toy = Toy()
    toy.rows = {"gw": "ws://x"}
    toy.fail_next = {"gw"}
    states: list[str] = []
    spec = RowSpec(
        "toys", toy.load, toy.run, reconcile_s=60, on_state=lambda h: states.append(h.state)
    )
    supervisor = Supervisor(specs=[], rows=[spec])
    supervisor.start()
    await _until(lambda: supervisor.states("toys").get("gw") is not None)
    await _until(lambda: supervisor.states("toys")["gw"].state == "connected")
    handle = supervisor.states("toys")["gw"]
    assert handle.failures == 1
    assert handle.restarts == 1
    assert handle.last_error == "ConnectionError: unreachable"
    assert states[:3] == ["running", "backoff", "running"]
    await supervisor.stop()


async def test_rows_come_from_the_database(transactional_db):
    """The shape the gateway connector uses: rows of a table, read off the event loop."""
    from channels.db import database_sync_to_async

    from agents.models import Agent

    await database_sync_to_async(Agent.objects.create)(name="one", framework="codex")

    @database_sync_to_async
    def load() -> dict:
        return dict(Agent.objects.values_list("name", "framework"))

    running: set[Hashable] = set()

    async def hold(handle: RowHandle) -> None:
        running.add(handle.key)
        try:
            await asyncio.Event().wait()
        finally:
            running.discard(handle.key)

    supervisor = Supervisor(specs=[], rows=[RowSpec("agents", load, hold, reconcile_s=0.05)])
    supervisor.start()
    await _until(lambda: running == {"one"})
    await database_sync_to_async(Agent.objects.create)(name="two")
    await _until(lambda: running == {"one", "two"})
    await database_sync_to_async(Agent.objects.filter(name="one").delete)()
    await _until(lambda: running == {"two"})
    await supervisor.stop()
    assert running == set()


def test_process_state_is_gathered_and_reset():
    from agents import keys
    from missioncontrol import state
    from missioncontrol.fastpath import browser  # noqa: F401 - registers its session cache
    from tasks import cards

    assert {
        "agent keys",
        "rate-limit buckets",
        "card cache",
        "fast-path sessions",
        "live hubs and texts",
    } <= set(state.names())
    keys.remember("abc", None)
    cards._cards.render(("k",), lambda: "html", {})
    keys._bucket.take_local(1)
    state.reset_all()
    assert keys.cached("abc") == (False, None)
    assert not len(cards._cards)
    assert not keys._bucket._local


async def test_row_tasks_stop_together_not_one_after_another():
    """Ten row tasks that each take a second to wind down stop in about a second."""

    async def slow_to_stop(handle: RowHandle) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.shield(asyncio.sleep(1.0))

    async def ten() -> dict[Hashable, Hashable]:
        return {n: n for n in range(10)}

    supervisor = Supervisor([], rows=[RowSpec("slow", ten, slow_to_stop)])
    supervisor.start()
    for _ in range(100):
        if len(supervisor.states("slow")) == 10:
            break
        await asyncio.sleep(0.01)
    started = asyncio.get_running_loop().time()
    await supervisor.stop(timeout=3)
    assert asyncio.get_running_loop().time() - started < 2.5
