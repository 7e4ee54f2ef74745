"""Gateways: a real `serve` connected to synthetic OpenClaw gateways (the protocol-4 fake of
tests/gateways/fake.py: real handshake with a checked device signature, real frames), measured
three ways:

1. memory per connected gateway: the server's RSS with none, then with all connected and
   their sessions synced;
2. re-sync: every gateway drops its connection at once; time until every session row holds
   the state each gateway lists after it (reconnect back-off included);
3. ingest: the gateways stream `sessions.changed` at a total rate for a while, with WebSocket
   clients watching the Sessions topic: events ingested per second, event → browser latency,
   and the stored state equal to the last event of every session.

Usage: python bench/gateways.py [--gateways 10] [--sessions 200] [--rate 1000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import websockets
from common import ROOT, Server, login, manage, pct, prepare, query

sys.path.insert(0, str(ROOT))
from tests.gateways.fake import TOKEN, FakeGateway

STAMP = re.compile(r"t=(\d+\.\d+)")


def row(key: str, version: int, preview: str = "") -> dict[str, Any]:
    return {
        "key": key,
        "sessionId": key,
        "agentId": "main",
        "status": "idle",
        "model": "fake-1",
        "totalTokens": version,
        "hasActiveRun": False,
        "lastMessagePreview": preview,
        "updatedAt": int(time.time() * 1000),
    }


class Fleet:
    """N fake gateways with S sessions each; `version` is what their lists say now."""

    def __init__(self, n: int, sessions: int) -> None:
        self.n, self.sessions, self.version = n, sessions, 1
        self.fakes: list[FakeGateway] = []

    async def start(self) -> None:
        for g in range(self.n):
            fake = await FakeGateway().start()
            fake.methods["sessions.subscribe"] = {"subscribed": True}
            fake.methods["sessions.list"] = lambda params, g=g: self.listing(g, params)
            self.fakes.append(fake)

    def keys(self, g: int) -> list[str]:
        return [f"agent:main:bench-{g}-{s}" for s in range(self.sessions)]

    def listing(self, g: int, params: Any) -> dict[str, Any]:
        offset = int((params or {}).get("offset") or 0)
        limit = int((params or {}).get("limit") or 200)
        keys = self.keys(g)
        page = [row(k, self.version) for k in keys[offset : offset + limit]]
        more = offset + limit < len(keys)
        return {"count": len(page), "hasMore": more, "nextOffset": offset + limit, "sessions": page}

    async def stop(self) -> None:
        for fake in self.fakes:
            await fake.stop()


def states(data_dir: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for state, n in query(data_dir, "SELECT state, COUNT(*) FROM gateways_gateway GROUP BY state"):
        counts[state] = n
    return counts


def synced(data_dir: Path, version: int) -> int:
    return int(
        query(
            data_dir, "SELECT COUNT(*) FROM agents_agentsession WHERE total_tokens = %s", (version,)
        )[0][0]
    )


async def wait_until(check: Any, timeout: float, step: float = 0.05) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if await asyncio.to_thread(check):
            return time.perf_counter() - started
        await asyncio.sleep(step)
    raise TimeoutError(f"not reached within {timeout} s")


async def watch(
    url: str, cookie: str, stamps: list[tuple[float, float]], ready: asyncio.Event, n: int
) -> None:
    ws_url = url.replace("http://", "ws://") + "/ws/live/?topics=sessions"
    async with websockets.connect(
        ws_url, additional_headers={"Cookie": cookie, "Origin": url}, max_queue=None
    ) as ws:
        while json.loads(await ws.recv())["type"] != "ready":
            pass
        ready.set()
        while True:
            raw = await ws.recv()
            now = time.time()
            for found in set(STAMP.findall(raw if isinstance(raw, str) else raw.decode())):
                stamps.append((float(found), (now - float(found)) * 1000))


async def main_async(args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="mc-bench-gateways-"))
    prepare(data_dir)
    fleet = Fleet(args.gateways, args.sessions)
    await fleet.start()
    server = await asyncio.to_thread(Server, data_dir, 3390)
    try:
        await asyncio.sleep(3)
        idle = server.rss_mb()
        code = "\n".join(
            [
                "from gateways import actions",
                "from missioncontrol.audit import Actor",
                *(
                    f"actions.create_gateway(Actor.system('bench'), name='gw-{g}', "
                    f"url='{fake.url}', token='{TOKEN}')"
                    for g, fake in enumerate(fleet.fakes)
                ),
            ]
        )
        await asyncio.to_thread(manage, data_dir, "shell", "-c", code)
        total = args.gateways * args.sessions
        took = await wait_until(lambda: synced(data_dir, 1) == total, 60)
        await asyncio.sleep(3)
        connected = server.rss_mb()
        print(
            f"{args.gateways} gateways × {args.sessions} sessions connected and synced in "
            f"{took:.1f} s (includes the ≤ 5 s reconcile); RSS {idle:.1f} → {connected:.1f} MB: "
            f"{(connected - idle) / args.gateways:.2f} MB per connected gateway"
        )

        # 2. Every gateway drops its connection at once; their lists now say version 2.
        fleet.version = 2
        for fake in fleet.fakes:
            await fake.drop_all()
        took = await wait_until(lambda: synced(data_dir, 2) == total, 60)
        print(
            f"re-sync after a simultaneous reconnect of {args.gateways} gateways × "
            f"{args.sessions} sessions: {took:.2f} s (back-off before reconnecting included), "
            f"states {states(data_dir)}"
        )

        # 3. Stream sessions.changed at the total rate with browsers watching.
        client = await asyncio.to_thread(login, server.url)
        cookie = f"sessionid={client.cookies['sessionid']}"
        stamps: list[tuple[float, float]] = []
        watchers = []
        for _ in range(args.watchers):
            ready = asyncio.Event()
            watchers.append(asyncio.ensure_future(watch(server.url, cookie, stamps, ready, 0)))
            await asyncio.wait_for(ready.wait(), 30)
        cpu0 = server.cpu_s()
        wall0 = time.time()
        sent = 0
        last: dict[str, int] = {}
        started = time.perf_counter()
        interval = 1 / args.rate
        keys = [(g, k) for g in range(args.gateways) for k in fleet.keys(g)]
        while time.perf_counter() - started < args.seconds:
            due = int((time.perf_counter() - started) / interval) - sent
            for _ in range(max(0, due)):
                g, key = keys[sent % len(keys)]
                version = 1000 + sent
                payload = {"sessionKey": key, "session": row(key, version, f"t={time.time():.6f}")}
                await fleet.fakes[g].send_event("sessions.changed", payload)
                last[key] = version
                sent += 1
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - started

        def drained() -> bool:
            stored = dict(
                query(
                    data_dir,
                    "SELECT key, total_tokens FROM agents_agentsession WHERE total_tokens >= 1000",
                )
            )
            return all(stored.get(k) == v for k, v in last.items())

        drain = await wait_until(drained, 60)
        cpu = server.cpu_s() - cpu0
        await asyncio.sleep(0.5)
        for task in watchers:
            task.cancel()
        per_watcher = len(stamps) / max(1, args.watchers)
        every = [ms for _sent, ms in stamps]
        # After every session's first change (its row rendered once, then cached).
        first_pass = len(keys) / args.rate
        steady = [ms for sent_at, ms in stamps if sent_at - wall0 > first_pass + 1]
        print(
            f"ingest: {sent} sessions.changed in {elapsed:.1f} s ({sent / elapsed:.0f}/s sent) "
            f"across {args.gateways} gateways; every session's last state stored "
            f"{drain:.2f} s after the last send ({sent / (elapsed + drain):.0f}/s end to end); "
            f"{args.watchers} browsers, {per_watcher:.0f} updates each (coalesced ≤ 4/s per "
            f"session), event → browser p50 {pct(every, 50):.1f} ms, p99 {pct(every, 99):.1f} ms "
            f"(after each session's first change: p50 {pct(steady, 50):.1f} ms, "
            f"p99 {pct(steady, 99):.1f} ms); "
            f"server CPU {cpu * 1000 / sent:.2f} ms/event"
        )
    finally:
        server.stop()
        await fleet.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gateways", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    # Browsers watching the Sessions topic, in this process (each receives every update: more
    # of them measure this script's own parsing rather than the server).
    parser.add_argument("--watchers", type=int, default=4)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
