"""Dispatch at load (#27): people's tokens dispatching tasks to CLI agents through
`POST /api/v1/tasks/{id}/runs`, as fast as `--clients` concurrent clients can, each on tasks of
its own (a task takes one active run). Reports dispatches accepted per second, latency, and the
server's CPU per dispatch; every answer must be a 202 with a queued run, and the database must
hold exactly one run per dispatch.

Usage: python bench/runs.py [--tasks 3000] [--agents 20] [--clients 8] [--seconds 10]
       [--rate 100]  (open loop: 100 offered a second, whatever the answers)
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx
from common import ADMIN, Server, manage, prepare, query, summary

SEED = """
from agents.models import Agent
from missioncontrol.audit import Actor
from tasks import actions
agents = [Agent.objects.get_or_create(name=f"bench-cli-{{n}}")[0] for n in range({agents})]
actor = Actor.system("bench")
for n in range({tasks}):
    actions.create_task(actor, title=f"Bench task {{n}}", status="todo",
                        assignee=f"agent:{{agents[n % len(agents)].pk}}")
"""


async def client(url: str, token: str, ids: list[int], until: float, out: list[float]) -> int:
    done = 0
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as http:
        for task_id in ids:
            if time.perf_counter() >= until:
                break
            started = time.perf_counter()
            r = await http.post(f"/api/v1/tasks/{task_id}/runs", json={})
            out.append((time.perf_counter() - started) * 1000)
            assert r.status_code == 202, (r.status_code, r.text)
            assert r.json()["run"]["state"] == "queued"
            done += 1
    return done


async def paced(url: str, token: str, ids: list[int], rate: float, seconds: float) -> tuple:
    """Open loop: a dispatch every 1/rate s whatever the answers (the target's form: `rate`
    dispatches a second offered, each one's latency measured), on a pool of connections."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30, limits=limits
    ) as http:

        async def one(task_id: int) -> None:
            started = time.perf_counter()
            r = await http.post(f"/api/v1/tasks/{task_id}/runs", json={})
            latencies.append((time.perf_counter() - started) * 1000)
            assert r.status_code == 202, (r.status_code, r.text)

        started = time.perf_counter()
        pending = []
        for n, task_id in enumerate(ids[: int(rate * seconds)]):
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.ensure_future(one(task_id)))
        await asyncio.gather(*pending)
    return len(latencies), time.perf_counter() - started, latencies


async def drive(url: str, token: str, ids: list[int], clients: int, seconds: float) -> tuple:
    latencies: list[float] = []
    shares = [ids[n::clients] for n in range(clients)]
    started = time.perf_counter()
    counts = await asyncio.gather(
        *(client(url, token, share, started + seconds, latencies) for share in shares)
    )
    return sum(counts), time.perf_counter() - started, latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--rate", type=float, default=0, help="offer this many a second (open loop) instead"
    )
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="mc-bench-runs-"))
    prepare(data)
    manage(data, "shell", "-c", SEED.format(agents=args.agents, tasks=args.tasks))
    token = manage(data, "create_api_token", ADMIN[0], "--name", "bench").strip().splitlines()[-1]
    ids = [row[0] for row in query(data, "SELECT id FROM tasks_task ORDER BY id")]
    # Dispatching is measured alone: no connector, no gateway; the agents are CLI agents.
    server = Server(data, 3291, env={"MC_BENCH_NO_RATE_LIMIT": "1"})
    try:
        cpu = server.cpu_s()
        if args.rate:
            done, elapsed, latencies = asyncio.run(
                paced(server.url, token, ids, args.rate, args.seconds)
            )
        else:
            done, elapsed, latencies = asyncio.run(
                drive(server.url, token, ids, args.clients, args.seconds)
            )
        cpu = server.cpu_s() - cpu
    finally:
        server.stop()
    runs = query(data, "SELECT COUNT(*), COUNT(DISTINCT task_id) FROM runs_run")[0]
    assert runs == (done, done), f"{done} dispatches, runs in the database: {runs}"
    print(
        f"dispatches: {done / elapsed:.0f}/s accepted "
        f"{f'offered at {args.rate:.0f}/s' if args.rate else f'with {args.clients} clients'} "
        f"({done} in {elapsed:.1f} s, {len(ids)} tasks, {args.agents} agents); "
        f"{summary(latencies)}; server CPU {cpu / max(done, 1) * 1000:.2f} ms a dispatch; "
        f"one run per dispatch in the database"
    )


if __name__ == "__main__":
    main()
