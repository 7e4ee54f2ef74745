"""Gateways, against a real OpenClaw gateway (2026.9.6, from npm; tests/gateways/real.py) whose
agent runs on a small local model server: a real `serve` connected to it, S sessions each
running one chat after another for a while, browsers watching the Sessions topic.

The model replies with the stamp the bench put in the user's message (`t=<epoch>`), so each
reply carries the time its run was asked for. Measured:

1. memory per connected real gateway (the server's RSS before and after it connects);
2. runs per second the gateway completes, and that every run's reply reaches the browsers;
3. latency: chat.send → the gateway's own final `chat` event (seen by a second client of the
   gateway, as its operator would be), and the reply's text first sent by the gateway (a
   streaming delta) → the same text in the browsers: the second is what Mission Control adds,
   its coalescing of streamed replies (≤ 4 updates a second per session) included.

Usage: python bench/real_gateway.py [--sessions 20] [--seconds 20] [--watchers 2]
(installs Node 24 and OpenClaw into .cache/openclaw on first use, ~25 s, as the tests do).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import websockets
from common import ROOT, Server, login, manage, pct, prepare, query

sys.path.insert(0, str(ROOT))
from tests.gateways import fakellm
from tests.gateways.real import RealGateway

STAMP = re.compile(r"t=(\d+\.\d+)")
TOKEN = "bench-token-0123456789"


class EchoHandler(fakellm._Handler):
    """The fake model, replying with the stamp of the user's message."""

    def reply(self, request: dict[str, Any]) -> list[str]:
        found = STAMP.findall(json.dumps(request.get("messages") or []))
        return [f"Reply to t={found[-1]}" if found else "Reply", " done."]


class Model(fakellm.FakeModel):
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
        self.server.requests = []  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


async def main_async(args: argparse.Namespace) -> None:
    from gateways import protocol

    work = Path(tempfile.mkdtemp(prefix="mc-bench-real-"))
    model = Model().start()
    gateway = RealGateway(
        work / "gateway", TOKEN, extra_config=fakellm.provider_config(model.url)
    ).start()
    data_dir = work / "mc"
    prepare(data_dir)
    server = await asyncio.to_thread(Server, data_dir, 3391)
    try:
        ready_s = await asyncio.to_thread(gateway.wait_ready)
        await asyncio.sleep(3)
        idle = server.rss_mb()
        code = (
            "from gateways import actions\nfrom missioncontrol.audit import Actor\n"
            f"actions.create_gateway(Actor.system('bench'), name='real', url='{gateway.url}', "
            f"token='{TOKEN}')"
        )
        await asyncio.to_thread(manage, data_dir, "shell", "-c", code)
        started = time.perf_counter()
        while query(data_dir, "SELECT state FROM gateways_gateway")[0][0] != "connected":
            if time.perf_counter() - started > 60:
                raise TimeoutError("the gateway never connected")
            await asyncio.sleep(0.1)
        await asyncio.sleep(3)
        connected = server.rss_mb()
        print(
            f"real gateway up (waited {ready_s:.1f} s after the server); Mission Control connected in "
            f"{time.perf_counter() - started:.1f} s; server RSS {idle:.1f} → {connected:.1f} MB "
            f"({connected - idle:.2f} MB for the connected gateway)"
        )

        # Browsers on the Sessions topic: when each stamp's reply arrives.
        client = await asyncio.to_thread(login, server.url)
        cookie = f"sessionid={client.cookies['sessionid']}"
        seen: list[dict[str, float]] = [{} for _ in range(args.watchers)]
        readies = [asyncio.Event() for _ in range(args.watchers)]

        async def watch(i: int) -> None:
            ws_url = server.url.replace("http://", "ws://") + "/ws/live/?topics=sessions"
            async with websockets.connect(
                ws_url, additional_headers={"Cookie": cookie, "Origin": server.url}, max_queue=None
            ) as ws:
                while json.loads(await ws.recv())["type"] != "ready":
                    pass
                readies[i].set()
                while True:
                    raw = await ws.recv()
                    now = time.time()
                    text = raw if isinstance(raw, str) else raw.decode()
                    if "Reply to t=" in text:
                        for stamp in STAMP.findall(text.split("Reply to ", 1)[1]):
                            seen[i].setdefault(stamp, now)

        watchers = [asyncio.ensure_future(watch(i)) for i in range(args.watchers)]
        for ready in readies:
            await asyncio.wait_for(ready.wait(), 30)

        # The gateway's own view: its final chat events, on a second (operator) connection.
        finals: dict[str, float] = {}
        first_text: dict[str, float] = {}
        done: dict[str, asyncio.Event] = {}

        async def on_event(name: str, payload: Any) -> None:
            if args.debug and name in ("chat", "agent"):
                print("  event", name, json.dumps(payload)[:300])
            if (
                name == "chat"
                and isinstance(payload, dict)
                and "Reply to t=" in json.dumps(payload)
            ):
                # The reply's text first seen from the gateway (a streaming delta, or the final).
                for stamp in STAMP.findall(json.dumps(payload).split("Reply to ", 1)[1]):
                    first_text.setdefault(stamp, time.time())
            if name == "chat" and isinstance(payload, dict) and payload.get("state") == "final":
                now = time.time()
                stamp = str(payload.get("runId") or "")  # the run is named by its idempotency key
                finals.setdefault(stamp, now)
                if stamp in done:
                    done[stamp].set()

        operator = await protocol.open_connection(
            gateway.url,
            token=TOKEN,
            device_token="",
            identity=protocol.Identity.generate(),
            on_event=on_event,
        )
        reader = asyncio.ensure_future(operator.run())
        sent: list[str] = []
        cpu0 = server.cpu_s()
        until = time.monotonic() + args.seconds

        async def session(n: int) -> None:
            key = f"agent:main:bench-{n}"
            while time.monotonic() < until:
                stamp = f"{time.time():.6f}"
                done[stamp] = asyncio.Event()
                sent.append(stamp)
                await operator.request(
                    "chat.send",
                    {"sessionKey": key, "message": f"t={stamp}", "idempotencyKey": stamp},
                    timeout=60,
                )
                try:
                    await asyncio.wait_for(done[stamp].wait(), 60)
                except TimeoutError:
                    print(f"  no final event for a run of {key}")

        began = time.perf_counter()
        await asyncio.gather(*(session(n) for n in range(args.sessions)))
        elapsed = time.perf_counter() - began
        await asyncio.sleep(2)  # the last replies reach the browsers
        cpu = server.cpu_s() - cpu0
        reader.cancel()
        await operator.close()
        for task in watchers:
            task.cancel()

        completed = [s for s in sent if s in finals]
        gateway_ms = [(finals[s] - float(s)) * 1000 for s in completed]
        added = [
            (w[s] - first_text[s]) * 1000
            for w in seen
            for s in completed
            if s in w and s in first_text
        ]
        missing = sum(1 for w in seen for s in completed if s not in w)
        print(
            f"{len(completed)} runs in {elapsed:.1f} s over {args.sessions} sessions "
            f"({len(completed) / elapsed:.1f} runs/s, the gateway's pace on this machine); "
            f"chat.send → the gateway's final event p50 {pct(gateway_ms, 50):.0f} ms, "
            f"p99 {pct(gateway_ms, 99):.0f} ms; the reply's text first sent by the gateway → seen "
            f"in {args.watchers} browsers p50 {pct(added, 50):.1f} ms, p99 {pct(added, 99):.1f} ms; replies missing "
            f"in a browser: {missing}; server CPU {cpu * 1000 / max(1, len(completed)):.1f} ms/run"
        )
    finally:
        server.stop()
        gateway.stop()
        model.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--watchers", type=int, default=2)
    parser.add_argument("--debug", action="store_true")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
