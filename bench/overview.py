"""The overview (home page) with a large fleet: 1,000 agents (3 gateways and direct, a mix of
statuses, some stale or offline with work), 10,000 open tasks (200 blocked, 500 in review),
usage records (the costs bench's seed: 1,000,000 by default), an audit trail of the tasks'
creation. Server time of GET / for an operator over loopback to a real `serve`, p50 / p99.

Usage: python bench/overview.py [--records 1000000] [--data-dir DIR (seeded once, reused)]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import Server, login, manage, pct, prepare
from costs import SEED as USAGE_SEED

FLEET = """
import random, time
from django.db import transaction
from django.utils import timezone
from agents.models import Agent
from gateways.models import Gateway
from tasks.models import Task
from missioncontrol.audit import Actor
from tasks import actions as task_actions
rng = random.Random(2)
gateways = list(Gateway.objects.all())
statuses = ["busy"] * 30 + ["idle"] * 55 + ["stale"] * 5 + ["offline"] * 8 + ["error"] * 2
now = timezone.now()
Agent.objects.bulk_create([
    Agent(name=f"fleet-{i}", gateway=gateways[i % 4] if i % 4 < 3 and gateways else None,
          external_id=f"f{i}" if i % 4 < 3 else "", status=rng.choice(statuses), last_seen_at=now,
          model="claude-sonnet-4-5")
    for i in range(950)
], batch_size=500)
agents = list(Agent.objects.values_list("pk", flat=True))
actor = Actor.system("bench")
started = time.perf_counter()
# Tasks through the action in batches (each audited, published), then spread over the columns.
for start in range(0, 10000, 500):
    with transaction.atomic():
        for i in range(start, start + 500):
            task_actions.create_task(actor, title=f"fleet task {i}")
statuses = ["inbox", "backlog", "todo", "in_progress", "review"]
ids = list(Task.objects.values_list("pk", flat=True))
with transaction.atomic():
    for n, pk in enumerate(ids):
        status = "review" if n < 500 else statuses[n % 4]
        Task.objects.filter(pk=pk).update(status=status, assignee_agent_id=rng.choice(agents) if n % 2 else None,
                                          blocked=500 <= n < 700, blocked_reason="waiting" if 500 <= n < 700 else "",
                                          blocked_at=now if 500 <= n < 700 else None)
print(f"FLEET {time.perf_counter() - started:.0f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--data-dir", help="seed here once and reuse it on later runs")
    args = parser.parse_args()
    reuse = bool(args.data_dir) and (Path(args.data_dir) / "seeded-overview").exists()
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="mc-bench-overview-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    prepare(data_dir)
    if not reuse:
        started = time.perf_counter()
        usage = USAGE_SEED.replace("{n}", str(args.records)).replace("{uniform}", "False")
        manage(data_dir, "shell", "-c", usage)
        manage(data_dir, "shell", "-c", FLEET)
        (data_dir / "seeded-overview").write_text(f"{args.records} records\n")
        print(f"seeded in {time.perf_counter() - started:.0f} s")
    server = Server(data_dir, 3397, env={"MC_GATEWAY_CONNECTORS": "0"})
    try:
        client = login(server.url)
        client.get("/")
        times = []
        for _ in range(args.requests):
            t = time.perf_counter()
            response = client.get("/")
            times.append((time.perf_counter() - t) * 1000)
            assert response.status_code == 200, response.status_code
        print(
            f"overview (1,000 agents, 10,000 open tasks, {args.records:,} usage records): "
            f"p50 {pct(times, 50):.0f} ms, p99 {pct(times, 99):.0f} ms"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
