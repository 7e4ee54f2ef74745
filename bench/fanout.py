"""Fan-out latency: publish (LiveEvent.created_at) to receipt, for N WebSocket clients.

Each client is a real browser-like WebSocket with a session cookie, subscribed to the board.
Events are real board moves made over HTTP; latency is measured from the event row's
created_at (written inside the action's transaction) to the client's receipt.

Usage: python bench/fanout.py [--clients 50 200 500] [--events 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import datetime
from pathlib import Path

import websockets
from common import Server, login, manage, pct, prepare, query


async def run_round(
    url: str,
    cookie: str,
    n_clients: int,
    n_events: int,
    client,
    task_ids: list[int],
    server: Server,
) -> dict:
    received: list[list[tuple[int, float]]] = [[] for _ in range(n_clients)]
    ready = asyncio.Event()
    ready_count = 0
    ws_url = url.replace("http://", "ws://") + "/ws/live/?topics=board"
    headers = {"Cookie": cookie, "Origin": url}

    async def one(i: int) -> None:
        nonlocal ready_count
        async with websockets.connect(
            ws_url, additional_headers=headers, max_queue=None, open_timeout=60
        ) as ws:
            while True:
                msg = json.loads(await ws.recv())
                if msg["type"] == "ready":
                    break
            ready_count += 1
            if ready_count == n_clients:
                ready.set()
            while len(received[i]) < n_events:
                raw = await ws.recv()
                t = time.time()
                msg = json.loads(raw)
                if msg["type"] == "event":
                    received[i].append((msg["seq"], t))

    tasks = [asyncio.create_task(one(i)) for i in range(n_clients)]
    await asyncio.wait_for(ready.wait(), 120)
    rss = server.rss_mb()
    statuses = ["todo", "in_progress"]
    for k in range(n_events):
        tid = task_ids[k % len(task_ids)]
        await asyncio.to_thread(
            client.post,
            f"/tasks/{tid}/move/",
            data={"status": statuses[k % 2]},
            headers={"X-CSRFToken": client.cookies["csrftoken"]},
        )
        await asyncio.sleep(0.1)
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    except TimeoutError:
        got = sorted(len(r) for r in received)
        raise TimeoutError(
            f"{n_clients} clients: {sum(g < n_events for g in got)} short of {n_events} events "
            f"(fewest {got[0]}); seqs seen by a short one: "
            f"{next(([s for s, _t in r] for r in received if len(r) < n_events), [])}"
        ) from None
    return {"received": received, "rss_connected": rss}


def created_at(data_dir: Path) -> dict[int, float]:
    out = {}
    for seq, ts in query(data_dir, "SELECT seq, created_at FROM missioncontrol_liveevent"):
        if isinstance(ts, str):  # SQLite: naive UTC text
            ts = datetime.fromisoformat(ts if "+" in ts else ts + "+00:00")
        out[seq] = ts.timestamp()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, nargs="+", default=[50, 200, 500])
    parser.add_argument("--events", type=int, default=10)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="mc-bench-fanout-"))
    prepare(data_dir)
    manage(data_dir, "seed_demo", "--open", "20", "--done", "0", "-v", "0")
    server = Server(data_dir, 3380)
    try:
        client = login(server.url)
        cookie = f"sessionid={client.cookies['sessionid']}"
        task_ids = [r[0] for r in query(data_dir, "SELECT id FROM tasks_task ORDER BY id LIMIT 10")]
        print(f"idle RSS: {server.rss_mb():.1f} MB")
        for n in args.clients:
            result = asyncio.run(
                run_round(server.url, cookie, n, args.events, client, task_ids, server)
            )
            stamps = created_at(data_dir)
            lat = [(t - stamps[seq]) * 1000 for per in result["received"] for seq, t in per]
            print(
                f"{n:4d} clients x {args.events} events: p50 {pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms, "
                f"max {max(lat):.1f} ms, deliveries {len(lat)}/{n * args.events}, RSS with clients connected {result['rss_connected']:.1f} MB"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
