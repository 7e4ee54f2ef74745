"""Webhook dispatch against a real `serve`: deliveries queued through the outbox (tasks created
with an endpoint subscribed), sent by the server's dispatcher to a receiver on loopback.

1. Throughput: N deliveries to one fast receiver (an asyncio HTTP server answering 200 at
   once): deliveries/s from the first to the last received.
2. One dead endpoint beside it (accepts the connection, never answers: each attempt waits out
   the 10 s timeout): the fast endpoint's delivery latency (queued → received) with and without.

Usage: python bench/webhooks.py [--deliveries 3000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, Receiver, Server, manage, pct, prepare

sys.path.insert(0, str(ROOT))

SEED = """
from django.db import transaction
from missioncontrol.audit import Actor
from webhooks import actions
from webhooks.models import Endpoint
from tasks import actions as task_actions
actor = Actor.system("bench")
for url, types in {endpoints}:
    actions.save_endpoint(actor, Endpoint(url=url, event_types=types))
# Queued in batches: one transaction of 100 events each, the outbox row beside each event.
for start in range(0, {n}, 100):
    with transaction.atomic():
        for i in range(start, min({n}, start + 100)):
            task_actions.create_task(actor, title=f"bench {{i}}")
print("QUEUED")
"""


def run(n: int, with_dead: bool, port: int) -> tuple[float, list[float]]:
    data_dir = Path(tempfile.mkdtemp(prefix="mc-bench-webhooks-"))
    prepare(data_dir)
    fast = Receiver()
    endpoints = [(fast.url, ["task.created"])]
    dead = Receiver(dead=True) if with_dead else None
    if dead is not None:
        endpoints.append((dead.url, ["task.created"]))
    env = {"MC_WEBHOOK_ALLOW_PRIVATE": "1", "MC_GATEWAY_CONNECTORS": "0"}
    # Queued before the server starts: the dispatcher then drains a backlog (throughput), and
    # each delivery's queue time is its row's created_at.
    manage(data_dir, "shell", "-c", SEED.format(endpoints=endpoints, n=n), env=env)
    from common import query

    created = {
        int(pk): ts for pk, ts in query(data_dir, "SELECT id, created_at FROM webhooks_delivery")
    }
    assert len(created) == n * (2 if with_dead else 1), len(created)
    server = Server(data_dir, port, env=env)
    try:
        started = time.time()
        deadline = started + 120
        while len(fast.arrivals) < n and time.time() < deadline:
            time.sleep(0.05)
        took = (fast.arrivals[-1] - fast.arrivals[0]) if len(fast.arrivals) > 1 else 0.0
        rate = (len(fast.arrivals) - 1) / took if took else 0.0
        latencies = [(t - started) * 1000 for t in fast.arrivals]
        return rate, latencies
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=3000)
    args = parser.parse_args()
    rate, latencies = run(args.deliveries, False, 3396)
    print(
        f"throughput: {args.deliveries:,} deliveries to one receiver at {rate:,.0f}/s "
        f"(all received {latencies[-1] / 1000:.1f} s after the server answered)"
    )
    small = 200
    _rate, alone = run(small, False, 3397)
    _rate, beside = run(small, True, 3398)
    print(
        f"one dead endpoint beside it ({small} events each; the dead one never answers): the "
        f"live endpoint's last delivery {alone[-1]:,.0f} ms alone vs {beside[-1]:,.0f} ms with it "
        f"(p50 {pct(alone, 50):,.0f} vs {pct(beside, 50):,.0f} ms from server start)"
    )


if __name__ == "__main__":
    main()
