from __future__ import annotations

import asyncio

from missioncontrol.supervisor import LoopSpec, Supervisor, registered_loops


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
