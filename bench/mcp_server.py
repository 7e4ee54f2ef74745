"""The MCP server (#29): tool calls through the official SDK's client against a real `serve`.

- 8 concurrent sessions (8 agents, each its own key), each calling a read tool (`get_task`: a
  task with its thread and runs) and a write tool (`comment`: a comment on its own task, audited
  and published live) in turn; latency of each call, seen by the client over loopback (the
  client's own CPU shares the two cores with the server), and the server's CPU per call.
  Back to back (each session's next call the moment the last answers: the server saturated),
  with plain JSON-RPC POSTs and with the SDK's client; then paced (a call every 100 ms each).
- 100 sessions opened at once (initialise, list tools, one call each) and held open: the
  server's memory before and after.

Targets: a read p99 ≤ 50 ms, a write p99 ≤ 100 ms at 8 sessions; 100 sessions ≤ 50 MB extra.

Usage: python bench/mcp_server.py [--calls 200] [--sessions 100]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from common import Server, manage, pct, prepare

SEED = r"""
from agents import actions
from agents.models import Agent, AgentKey
from missioncontrol.audit import Actor
from tasks import actions as tasks
from tasks.models import Task
actor = Actor.system("bench")
for n in range(AGENTS):
    agent = Agent.objects.create(name="mcp-%d" % n, framework="claude-code")
    _row, key = actions.issue_key(actor, kind=AgentKey.Kind.AGENT, agent=agent)
    task = tasks.create_task(actor, title="Task of mcp-%d" % n, description="words " * 50,
                             assignee=tasks.Assignee(agent_id=agent.pk))
    for c in range(20):
        tasks.add_comment(actor, task.pk, "A comment with **markdown** %d" % c)
    print("KEY %s %d" % (key, task.pk))
"""


def client(url: str, key: str) -> Any:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60)
    return Client(streamable_http_client(f"{url}/mcp/", http_client=http), mode="legacy")


async def worker(url: str, key: str, task_id: int, calls: int, reads: list, writes: list) -> None:
    async with client(url, key) as mcp:
        for n in range(calls):
            t = time.perf_counter()
            got = await mcp.call_tool("get_task", {"task_id": task_id})
            reads.append((time.perf_counter() - t) * 1000)
            assert not got.is_error, got
            t = time.perf_counter()
            made = await mcp.call_tool("comment", {"task_id": task_id, "body": f"Step {n} done."})
            writes.append((time.perf_counter() - t) * 1000)
            assert not made.is_error, made


async def raw_worker(
    url: str, key: str, task_id: int, calls: int, reads: list, writes: list, every: float = 0
) -> None:
    """The same calls as plain JSON-RPC POSTs (what a session's requests are on the wire, the
    server being stateless): the load generator's own CPU out of the way of the server's."""
    import httpx

    headers = {
        "Authorization": f"Bearer {key}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-11-25",
    }
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        if every:
            await asyncio.sleep(random.uniform(0, every))
        for n in range(calls):
            for name, arguments, into in (
                ("get_task", {"task_id": task_id}, reads),
                ("comment", {"task_id": task_id, "body": f"Step {n} done."}, writes),
            ):
                body = {
                    "jsonrpc": "2.0",
                    "id": n,
                    "method": "tools/call",
                    "params": {"name": name, "arguments": arguments},
                }
                t = time.perf_counter()
                r = await http.post("/mcp/", json=body)
                took = time.perf_counter() - t
                into.append(took * 1000)
                assert r.status_code == 200, r.text
                assert not r.json()["result"].get("isError"), r.text
                if every:  # Poisson arrivals: sessions not in step with each other
                    await asyncio.sleep(max(0.0, random.expovariate(1 / every) - took))


async def concurrent(
    url: str, keys: list[tuple[str, int]], calls: int, raw: bool = False, every: float = 0
) -> tuple[list, list]:
    reads: list[float] = []
    writes: list[float] = []
    if raw:
        await asyncio.gather(*(raw_worker(url, k, t, calls, reads, writes, every) for k, t in keys))
    else:
        await asyncio.gather(*(worker(url, k, t, calls, reads, writes) for k, t in keys))
    return reads, writes


async def held(url: str, keys: list[tuple[str, int]], sessions: int, server: Server) -> float:
    async with AsyncExitStack() as stack:
        opened = []
        for n in range(sessions):
            key, _task = keys[n % len(keys)]
            opened.append(await stack.enter_async_context(client(url, key)))
        await asyncio.gather(*(mcp.list_tools() for mcp in opened))
        await asyncio.gather(*(mcp.call_tool("whoami", {}) for mcp in opened))
        return server.rss_mb()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200, help="per session, of each kind")
    parser.add_argument("--sessions", type=int, default=100)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="mc-bench-mcp-"))
    prepare(data)
    out = manage(data, "shell", "-c", SEED.replace("AGENTS", "8"))
    keys = [
        (line.split()[1], int(line.split()[2])) for line in out.splitlines() if line[:4] == "KEY "
    ]
    server = Server(data, 3296, env={"MC_GATEWAY_CONNECTORS": "0", "MC_BENCH_NO_RATE_LIMIT": "1"})
    try:
        asyncio.run(concurrent(server.url, keys[:1], 5))  # the SDK is loaded on first use
        for raw in (True, False):
            cpu = server.cpu_s()
            started = time.perf_counter()
            reads, writes = asyncio.run(concurrent(server.url, keys, args.calls, raw))
            wall = time.perf_counter() - started
            calls = len(reads) + len(writes)
            cpu_ms = (server.cpu_s() - cpu) * 1000 / calls
            how = "plain JSON-RPC POSTs" if raw else "the SDK's Client"
            print(
                f"{how}, 8 sessions: read (get_task) p50 {pct(reads, 50):.1f} ms, "
                f"p99 {pct(reads, 99):.1f} ms; write (comment) p50 {pct(writes, 50):.1f} ms, "
                f"p99 {pct(writes, 99):.1f} ms; {calls:,} calls in {wall:.1f} s "
                f"({calls / wall:.0f}/s), server CPU {cpu_ms:.1f} ms a call"
            )
        # Paced: each session calls every 100 ms on average, at random (Poisson) moments (an
        # agent's own pace is seconds a call: a model answers between its calls).
        reads, writes = asyncio.run(concurrent(server.url, keys, args.calls // 4, True, 0.1))
        print(
            f"paced (each of 8 sessions a call every 100 ms on average, {8 / 0.1:.0f} calls/s): "
            f"read p50 "
            f"{pct(reads, 50):.1f} ms, p99 {pct(reads, 99):.1f} ms; write p50 "
            f"{pct(writes, 50):.1f} ms, p99 {pct(writes, 99):.1f} ms"
        )
        before = server.rss_mb()
        after = asyncio.run(held(server.url, keys, args.sessions, server))
        print(
            f"{args.sessions} sessions open at once: server RSS {before:.0f} → {after:.0f} MB "
            f"(+{after - before:.1f} MB)"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
