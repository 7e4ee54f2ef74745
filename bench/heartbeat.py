"""Heartbeats with inline usage: N agents, C closed-loop clients, for a bounded time.

Reports req/s, p50/p99, errors; afterwards checks that stored usage rows equal usage sent.
`--preload` first fills the database with 1,000,000 usage records and 1,000,000 events.

Usage: python bench/heartbeat.py [--agents 200] [--clients 32] [--seconds 15] [--warmup 2] [--preload]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from common import PROFILE, PY, Server, exchange, manage, pct, prepare, query, start_workers

ROOT = Path(__file__).resolve().parent.parent


def make_keys(data_dir: Path, n: int) -> list[tuple[str, str]]:
    code = (
        "from agents import actions; from agents.models import Agent, AgentKey; from missioncontrol.audit import Actor\n"
        "import sys\n"
        f"for i in range({n}):\n"
        "    a, _ = Agent.objects.get_or_create(name=f'bench-{i:04d}')\n"
        "    _k, full = actions.issue_key(Actor.system('bench'), kind=AgentKey.Kind.AGENT, agent=a)\n"
        "    print(a.name, full)\n"
    )
    out = manage(data_dir, "shell", "-c", code)
    return [tuple(line.split()) for line in out.splitlines() if line.startswith("bench-")]  # type: ignore[misc]


def preload(data_dir: Path, agent_id: int, n: int = 1_000_000) -> None:
    """Bulk rows straight into the database: history for the indexes to cope with."""
    if PROFILE == "postgres":
        query(
            data_dir,
            "INSERT INTO billing_usagerecord (agent_id, client_id, model, provider, input_tokens, "
            "output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, price_version, "
            "session, occurred_at, created_at) SELECT %s, 'pre-' || i, 'claude-sonnet-4-5', '', 1000, "
            "200, 0, 0, 0, '', '', now(), now() FROM generate_series(1, %s) AS i",
            (agent_id, n),
        )
        query(
            data_dir,
            "INSERT INTO missioncontrol_liveevent (type, topic, prev_seq, gateway_id, min_role, "
            "payload, created_at) SELECT 'pre', 'fleet', NULL, NULL, 'viewer', '{}', now() "
            "FROM generate_series(1, %s)",
            (n,),
        )
        return
    con = sqlite3.connect(data_dir / "mission-control.sqlite3")
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    con.executemany(
        "INSERT INTO billing_usagerecord (agent_id, client_id, model, provider, input_tokens, output_tokens, cache_read_tokens, "
        "cache_write_tokens, reasoning_tokens, price_version, session, occurred_at, created_at) VALUES (?, ?, 'claude-sonnet-4-5', '', 1000, 200, 0, 0, 0, '', '', ?, ?)",
        ((agent_id, f"pre-{i}", now, now) for i in range(n)),
    )
    con.executemany(
        "INSERT INTO missioncontrol_liveevent (type, topic, prev_seq, gateway_id, min_role, payload, created_at) VALUES ('pre', 'fleet', NULL, NULL, 'viewer', '{}', ?)",
        ((now,) for _ in range(n)),
    )
    con.commit()
    con.close()


async def client(
    port: int | list[int],
    agents: list[tuple[str, str]],
    deadline: float,
    k: int,
    run: str,
    lat: list[float],
    errors: list[int],
    sent: list[int],
) -> None:
    # Several servers (the PostgreSQL profile's web processes): clients spread over them.
    port = port[k % len(port)] if isinstance(port, list) else port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    while time.perf_counter() < deadline:
        name, key = agents[(k + i * 32) % len(agents)]
        i += 1
        body = json.dumps(
            {
                "status": "busy",
                "usage": [
                    {
                        "id": f"{run}-c{k}-{i}",
                        "model": "claude-sonnet-4-5",
                        "input_tokens": 1234,
                        "output_tokens": 321,
                    }
                ],
            }
        ).encode()
        request = (
            f"POST /api/v1/agents/{name}/heartbeat HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        t = time.perf_counter()
        status_line, payload = await exchange(reader, writer, request)
        lat.append((time.perf_counter() - t) * 1000)
        if b" 200 " not in status_line:
            errors.append(1)
        else:
            sent.append(json.loads(payload)["usage_recorded"])
    writer.close()


async def drive(
    port: int | list[int], agents: list[tuple[str, str]], clients: int, seconds: float, run: str
) -> tuple[list[float], int, int]:
    lat: list[float] = []
    errors: list[int] = []
    sent: list[int] = []
    deadline = time.perf_counter() + seconds
    await asyncio.gather(
        *(client(port, agents, deadline, k, run, lat, errors, sent) for k in range(clients))
    )
    return lat, len(errors), sum(sent)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=2, help="seconds, not measured")
    parser.add_argument("--preload", action="store_true")
    parser.add_argument(
        "--servers",
        type=int,
        default=1,
        help="web processes (serve --no-workers, plus one run_workers); PostgreSQL profile only",
    )
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="mc-bench-hb-"))
    prepare(data_dir)
    agents = make_keys(data_dir, args.agents)
    if args.preload:
        agent_id = query(data_dir, "SELECT id FROM agents_agent ORDER BY id LIMIT 1")[0][0]
        t = time.perf_counter()
        preload(data_dir, agent_id)
        print(
            f"preloaded 1,000,000 usage records and 1,000,000 events in {time.perf_counter() - t:.0f} s"
        )
    # The bench drives one key per agent far above the per-key rate limit: lift it for the run.
    env = {"MC_BENCH_NO_RATE_LIMIT": "1"}
    if args.servers > 1:
        servers = [
            Server(data_dir, 3360 + i, env=env, command=[PY, "manage.py", "serve", "--no-workers"])
            for i in range(args.servers)
        ]
        workers = start_workers(data_dir, env)
    else:
        servers, workers = [Server(data_dir, 3360, env=env)], None
    ports = [s.port for s in servers]

    def stored() -> int:
        return query(data_dir, "SELECT count(*) FROM billing_usagerecord")[0][0]

    try:
        before = stored()
        # Warm-up (not measured): the first second loads 200 keys into the cache and imports
        # what the first requests need; its latencies are reported on their own.
        cold, cold_errors, cold_recorded = asyncio.run(
            drive(ports, agents, args.clients, args.warmup, "warm")
        )
        cpu, server_cpu = time.process_time(), sum(s.cpu_s() for s in servers)
        lat, errors, recorded = asyncio.run(drive(ports, agents, args.clients, args.seconds, "run"))
        cpu = time.process_time() - cpu
        server_ms = (sum(s.cpu_s() for s in servers) - server_cpu) * 1000 / max(1, len(lat))
        after = stored()
        n, sent = len(lat), len(cold) - cold_errors + len(lat) - errors
        acknowledged = cold_recorded + recorded
        if args.warmup:
            print(
                f"warm-up {args.warmup:.0f} s: {len(cold) / args.warmup:.0f} heartbeats/s, "
                f"p50 {pct(cold, 50):.1f} ms, p99 {pct(cold, 99):.1f} ms, errors {cold_errors}"
            )
        print(
            f"{args.clients} clients, {args.agents} agents, {len(servers)} server(s), {args.seconds:.0f} s: {n / args.seconds:.0f} heartbeats/s, "
            f"p50 {pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms, errors {errors}; "
            f"usage sent {sent}, acknowledged {acknowledged}, stored {after - before} "
            f"({'OK' if after - before == acknowledged == sent else 'MISMATCH'}); RSS {max(s.rss_mb() for s in servers):.0f} MB; client CPU {cpu / args.seconds:.0%} of a core; "
            f"server CPU {server_ms:.3f} ms/heartbeat"
        )
    finally:
        for one in servers:
            one.stop()
        if workers is not None:
            workers.terminate()
            workers.wait(10)


if __name__ == "__main__":
    main()
