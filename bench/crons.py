"""Cron monitoring at fleet scale: 10,000 scheduled jobs over 5 gateways (and 200 direct
checks), 20 runs each for a few hundred.

1. The lateness check (the supervisor's pass every MC_CRON_CHECK_S): its time when nothing is
   due (the common case: one index range), and when 1,000 jobs become late at once (each a row
   change, a live event, an alert, an audit row).
2. The Crons page (the first 1,000 jobs, urgency first) and a job's page (100 runs, chart,
   streaks) served by a real `serve`: p50 / p99.
3. Check-ins through the real server: sequential round trips, p50 / p99.

Usage: python bench/crons.py [--jobs 10000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
from common import Server, login, manage, pct, prepare, query

SEED = """
import time
from datetime import timedelta
from django.db import transaction
from django.utils import timezone
from crons import actions
from crons.models import Job, Run
from gateways import actions as gateway_actions
from gateways.models import Gateway
from missioncontrol.audit import Actor
actor = Actor.system("bench")
now = timezone.now()
ms = lambda d: int(d.timestamp() * 1000)
per = {n} // 5
for g in range(5):
    gateway = gateway_actions.create_gateway(actor, name=f"gw{g}", url=f"ws://127.0.0.1:{9000 + g}/")
    Gateway.objects.filter(pk=gateway.pk).update(state="connected")
    items = []
    for i in range(per):
        # Every job is expected within the next 1-3 hours; 1,000 of them (the first 200 of
        # each gateway) within 20 minutes, so the bench can make those late at once.
        soon = i < 200
        items.append({
            "id": f"job-{g}-{i}",
            "name": f"job {g}-{i}",
            "agentId": "main",
            "schedule": {"kind": "cron", "expr": f"{i % 60} * * * *"} if i % 2 else {"kind": "every", "everyMs": 3_600_000},
            "payload": {"kind": "command"},
            "state": {
                "nextRunAtMs": ms(now + timedelta(minutes=20 if soon else 60 + i % 120)),
                "lastRunAtMs": ms(now - timedelta(minutes=40)),
                "lastRunStatus": "ok" if i % 7 else "error",
                "lastDurationMs": 1000 + i,
            },
        })
    started = time.perf_counter()
    actions.sync_gateway_jobs(gateway.pk, items, complete=True)
    print(f"SYNC {per} {time.perf_counter() - started:.2f}")
for i in range(200):
    actions.create_check(actor, {"name": f"check {i}", "kind": "every", "every_s": 3600, "grace_s": 300})
with transaction.atomic():
    jobs = list(Job.objects.filter(source="gateway")[:300])
    Run.objects.bulk_create([
        Run(job=job, run_key=str(k), status="failed" if k % 5 == 0 else "ok",
            started_at=now - timedelta(hours=k), duration_ms=1000 + 37 * k, summary="done")
        for job in jobs for k in range(20)
    ])
print("SEEDED")
"""

CHECK = """
import time, statistics
from datetime import timedelta
import time_machine
from django.utils import timezone
from crons import actions
times = []
for _ in range(50):
    t = time.perf_counter(); changed = actions.check_health(); times.append((time.perf_counter() - t) * 1000)
    assert changed == 0, changed
times.sort()
print(f"IDLE {times[len(times)//2]:.2f} {times[int(len(times)*0.99)]:.2f}")
with time_machine.travel(timezone.now() + timedelta(minutes=26), tick=True):
    t = time.perf_counter(); changed = actions.check_health(); took = time.perf_counter() - t
print(f"BURST {changed} {took:.2f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="mc-bench-crons-"))
    prepare(data_dir)
    out = manage(data_dir, "shell", "-c", SEED.replace("{n}", str(args.jobs)))
    syncs = [line.split() for line in out.splitlines() if line.startswith("SYNC")]
    per, took = int(syncs[0][1]), max(float(s[2]) for s in syncs)
    print(f"sync: a gateway's {per:,} jobs from cron.list (first sight) in ≤ {took:.2f} s")
    out = manage(data_dir, "shell", "-c", CHECK)
    idle = next(line.split() for line in out.splitlines() if line.startswith("IDLE"))
    burst = next(line.split() for line in out.splitlines() if line.startswith("BURST"))
    print(f"lateness check, nothing due ({args.jobs:,} jobs): p50 {idle[1]} ms, p99 {idle[2]} ms")
    print(f"lateness check, {burst[1]} jobs late at once: {float(burst[2]):.2f} s")
    job = query(data_dir, "SELECT job_id FROM crons_run GROUP BY job_id LIMIT 1")[0][0]
    check = query(data_dir, "SELECT token FROM crons_job WHERE source = 'direct' LIMIT 1")[0][0]
    server = Server(data_dir, 3396, env={"MC_GATEWAY_CONNECTORS": "0", "MC_CRON_CHECK_S": "3600"})
    try:
        client = login(server.url)
        for label, path in (
            ("Crons page (the first 100 of 10,200 jobs)", "/crons/"),
            ("a job's page (100 runs)", f"/crons/{job}/"),
        ):
            client.get(path)
            times = []
            for _ in range(args.requests):
                t = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - t) * 1000)
                assert response.status_code == 200, (path, response.status_code)
            print(f"page {label}: p50 {pct(times, 50):.0f} ms, p99 {pct(times, 99):.0f} ms")
        times = []
        token = str(check).replace("-", "") if "-" not in str(check) else str(check)
        if len(token) == 32:
            token = f"{token[:8]}-{token[8:12]}-{token[12:16]}-{token[16:20]}-{token[20:]}"
        with httpx.Client(base_url=server.url, timeout=10) as anon:
            for _ in range(10):  # within the check's burst of 10
                t = time.perf_counter()
                response = anon.post(f"/api/v1/checkins/{token}", content=b"ok")
                times.append((time.perf_counter() - t) * 1000)
                assert response.status_code == 200, response.text
        print(f"check-in round trip: p50 {pct(times, 50):.1f} ms, p99 {pct(times, 99):.1f} ms")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
