"""Dispatch → the gateway's `agent` request (#27: p99 ≤ 200 ms): a real `serve` connected to
synthetic OpenClaw gateways (the protocol-4 fake of tests/gateways/fake.py, which checks the
`agent` params as the real gateway does), people's tokens dispatching tasks assigned to the
gateways' agents at a fixed rate through `POST /api/v1/tasks/{id}/runs`; each `agent` request is
timed where the gateway receives it (same clock: the fakes run in this process). Reports the
latency from the dispatch request's start and from its 202, and checks every run was started
on its gateway exactly once.

Usage: python bench/dispatch_gateway.py [--gateways 10] [--rate 50] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from common import ADMIN, ROOT, Server, manage, prepare, query, summary

sys.path.insert(0, str(ROOT))
from tests.gateways.fake import TOKEN, FakeGateway

SEED = """
from agents.models import Agent
from gateways import actions as gateways
from missioncontrol.audit import Actor
from tasks import actions
actor = Actor.system("bench")
for g, url in enumerate({urls!r}):
    gateways.create_gateway(actor, name=f"gw-{{g}}", url=url, token={token!r})
"""
TASKS = """
from agents.models import Agent
from missioncontrol.audit import Actor
from tasks import actions
agents = list(Agent.objects.filter(source="gateway", external_id="main").order_by("pk"))
assert len(agents) == {gateways}, len(agents)
# Many runs at once per agent: the benchmark measures sending, not the agents' queue.
Agent.objects.filter(pk__in=[a.pk for a in agents]).update(max_runs=30000)
actor = Actor.system("bench")
for n in range({tasks}):
    actions.create_task(actor, title=f"Bench run {{n}}", status="todo",
                        assignee=f"agent:{{agents[n % len(agents)].pk}}")
"""


async def main_async(args: argparse.Namespace) -> None:
    data = Path(tempfile.mkdtemp(prefix="mc-bench-dispatch-gw-"))
    prepare(data)
    arrived: dict[str, float] = {}

    def agent_method(params: Any) -> dict[str, Any]:
        key = str((params or {}).get("idempotencyKey", ""))
        if key in arrived:
            raise AssertionError(f"{key} started twice")
        arrived[key] = time.perf_counter()
        return {"runId": f"gw-{key}", "acceptedAt": int(time.time() * 1000)}

    fakes = []
    for _ in range(args.gateways):
        fake = await FakeGateway().start()
        fake.methods["agent"] = agent_method
        fakes.append(fake)
    total = int(args.rate * args.seconds)
    await asyncio.to_thread(
        manage,
        data,
        "shell",
        "-c",
        SEED.format(urls=[f.url for f in fakes], token=TOKEN),
    )
    server = await asyncio.to_thread(Server, data, 3292, {"MC_BENCH_NO_RATE_LIMIT": "1"})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = query(
                data,
                "SELECT COUNT(*) FROM agents_agent WHERE source = 'gateway' AND external_id = 'main'",
            )
            if rows[0][0] == args.gateways:
                break
            await asyncio.sleep(0.2)
        try:
            await asyncio.to_thread(
                manage, data, "shell", "-c", TASKS.format(gateways=args.gateways, tasks=total)
            )
        except Exception as failed:
            raise SystemExit(getattr(failed, "stderr", "")[-2000:]) from failed
        token = (
            (await asyncio.to_thread(manage, data, "create_api_token", ADMIN[0], "--name", "bench"))
            .strip()
            .splitlines()[-1]
        )
        ids = [row[0] for row in query(data, "SELECT id FROM tasks_task ORDER BY id")]
        sent_at: dict[int, float] = {}
        answered_at: dict[int, float] = {}
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(
            base_url=server.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            limits=limits,
        ) as http:

            async def one(task_id: int) -> None:
                started = time.perf_counter()
                r = await http.post(f"/api/v1/tasks/{task_id}/runs", json={})
                assert r.status_code == 202, (r.status_code, r.text)
                run_id = r.json()["run"]["id"]
                sent_at[run_id], answered_at[run_id] = started, time.perf_counter()

            began = time.perf_counter()
            pending = []
            for n, task_id in enumerate(ids):
                delay = began + n / args.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                pending.append(asyncio.ensure_future(one(task_id)))
            await asyncio.gather(*pending)
        deadline = time.monotonic() + 30
        while len(arrived) < total and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    finally:
        await asyncio.to_thread(server.stop)
        for fake in fakes:
            await fake.stop()
    assert len(arrived) == total, f"{len(arrived)} of {total} runs reached their gateway"
    from_request = [(arrived[f"mc-run-{r}"] - t) * 1000 for r, t in sent_at.items()]
    from_answer = [(arrived[f"mc-run-{r}"] - t) * 1000 for r, t in answered_at.items()]
    dispatch = [(answered_at[r] - t) * 1000 for r, t in sent_at.items()]
    print(
        f"dispatch → gateway `agent` request, {total} runs offered at {args.rate:.0f}/s to "
        f"{args.gateways} gateways: from the request {summary(from_request)}; from its 202 "
        f"{summary(from_answer)}; the dispatch itself {summary(dispatch)}; each started once"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gateways", type=int, default=10)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
