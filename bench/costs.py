"""Costs with a million usage records: written through the app's own action (priced and rolled
up as heartbeats write them), then

1. the Costs page: response time of its views (7 days by model, 30 days by agent / gateway /
   day / task, one gateway, one agent), measured from a client on loopback;
2. the records CSV of the whole million, streamed: time, and the server's RSS growth meanwhile
   (it must not hold the rows);
3. `manage.py reprice --for-real` over all of them after a price override for half.

Usage: python bench/costs.py [--records 1000000] [--requests 30] [--data-dir DIR] [--pages-only]
(`--data-dir` keeps the seeded data for the next run, which then only migrates it; `--pages-only`
measures the pages and nothing else.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import ROOT, Server, login, manage, pct, prepare, query

sys.path.insert(0, str(ROOT))

SEED = """
import random, time
from datetime import timedelta
from django.db import transaction
from django.utils import timezone
from agents.models import Agent
from billing.actions import UsageItem, record_usage
from gateways import actions as ga
from missioncontrol.audit import Actor
actor = Actor.system("bench")
gateways = [ga.create_gateway(actor, name=f"gw-{g}", url=f"ws://127.0.0.1:{9 + g}/", enabled=False) for g in range(3)]
agents = [Agent.objects.create(name=f"agent-{a}", gateway=gateways[a % 4] if a % 4 < 3 else None,
          external_id=f"a{a}" if a % 4 < 3 else "") for a in range(50)]
models = [("claude-sonnet-4-5", "anthropic"), ("claude-3-5-haiku", "anthropic"), ("gpt-4o", "openai"),
          ("gpt-4o-mini", "openai"), ("o3", "openai"), ("gemini-2.5-pro", "google"),
          ("claude-opus-4-1", "anthropic"), ("llama-local", "ollama")]
rng = random.Random(1)
now = timezone.now()
N = {n}
UNIFORM = {uniform}
# A fleet as it runs: each agent mostly on its own model (80 %, else a second one), on one task
# for two hours at a time (70 % of calls name it); calls spread over 60 days. UNIFORM: every call's agent, model, task
# and time drawn at random (the rollups' worst case: hardly two calls share an hour's row).
primary = [(rng.randrange(len(models)), rng.randrange(len(models))) for _ in agents]
started = time.perf_counter()
for start in range(0, N, 5000):
    items = []
    for i in range(start, min(N, start + 5000)):
        a = rng.randrange(50)
        if UNIFORM:
            m, p = models[rng.randrange(len(models))]
            t = rng.choice((None, None, None, rng.randint(1, 400)))
        else:
            m, p = models[primary[a][0] if rng.random() < 0.8 else primary[a][1]]
            t = None
        at = now - timedelta(seconds=rng.randint(0, 60 * 86400))
        if not UNIFORM:
            # An agent's calls come in working sessions: it is on a task for a while.
            t = (a * 7 + int(at.timestamp()) // 7200) % 400 + 1 if rng.random() < 0.7 else None
        # Sessions as they come: a gateway agent's main session (and a cron run's own, one a
        # day), a direct agent's run (one per two hours).
        if a % 4 < 3:
            s = f"agent:a{a}:main" if rng.random() < 0.9 else f"agent:a{a}:cron:{int(at.timestamp()) // 86400}"
        else:
            s = f"run-{a}-{int(at.timestamp()) // 7200}"
        items.append(UsageItem(agents[a].pk, m, rng.randint(100, 20000),
                     rng.randint(10, 3000), at,
                     provider=p, cache_read_tokens=rng.choice((0, 0, rng.randint(0, 50000))),
                     client_id=f"b{i}", task_id=t, session=s))
    with transaction.atomic():
        record_usage(items)
print(f"SEEDED {N / (time.perf_counter() - started):.0f}")
"""

VIEWS = [
    ("7 days by model (default)", "/costs/"),
    ("30 days by agent", "/costs/?range=30d&by=agent"),
    ("30 days by gateway", "/costs/?range=30d&by=gateway"),
    ("30 days by day", "/costs/?range=30d&by=day"),
    ("30 days by task", "/costs/?range=30d&by=task"),
    ("30 days by session", "/costs/?range=30d&by=session"),
    ("30 days, one gateway", "/costs/?range=30d&gateway=1&by=model"),
    ("30 days, one agent", "/costs/?range=30d&agent=agent-7&by=model"),
    # A browser in another time zone: local days are not UTC days (the chart reads hours).
    ("30 days by day, Europe/Paris", "/costs/?range=30d&by=day"),
    ("30 days by task, Asia/Kolkata", "/costs/?range=30d&by=task"),
]


def anon_mb(server: Server) -> float:
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument(
        "--uniform", action="store_true", help="every call's agent/model/task at random"
    )
    parser.add_argument("--data-dir", help="seed here once and reuse it on later runs")
    parser.add_argument("--pages-only", action="store_true", help="measure the pages only")
    args = parser.parse_args()
    reuse = bool(args.data_dir) and (Path(args.data_dir) / "seeded").exists()
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="mc-bench-costs-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    if reuse:
        prepare(data_dir)  # migrations and static files changed since it was seeded
        print(f"reusing {data_dir} ({(data_dir / 'seeded').read_text().strip()})")
    else:
        prepare(data_dir)
        started = time.perf_counter()
        seed = SEED.replace("{n}", str(args.records)).replace("{uniform}", str(args.uniform))
        out = manage(data_dir, "shell", "-c", seed)
        rate = next(line.split()[1] for line in out.splitlines() if line.startswith("SEEDED"))
        rollups = query(data_dir, "SELECT COUNT(*) FROM billing_usagerollup")[0][0]
        what = (
            f"{'uniform random' if args.uniform else 'fleet-like'} data: "
            f"{args.records:,} usage records written through record_usage (priced, rolled up) in "
            f"{time.perf_counter() - started:.0f} s ({rate}/s); {rollups:,} rollup rows"
        )
        (data_dir / "seeded").write_text(what + "\n")
        print(what)
    server = Server(data_dir, 3395, env={"MC_GATEWAY_CONNECTORS": "0"})
    try:
        client = login(server.url)
        for label, path in VIEWS:
            zone = label.rsplit(", ", 1)[-1]
            client.cookies.set("mc_tz", zone if "/" in zone else "UTC")
            client.get(path)  # warm
            times = []
            for _ in range(args.requests):
                t = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - t) * 1000)
                assert response.status_code == 200, (path, response.status_code)
            print(f"page {label}: p50 {pct(times, 50):.0f} ms, p99 {pct(times, 99):.0f} ms")

        if args.pages_only:
            return
        # 2. The whole million as CSV, streamed.
        rss0, anon0 = server.rss_mb(), anon_mb(server)
        peak = [rss0, anon0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], server.rss_mb())
                peak[1] = max(peak[1], anon_mb(server))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        t = time.perf_counter()
        rows = size = 0
        with client.stream("GET", "/costs/records.csv?range=all") as response:
            first_byte = (time.perf_counter() - t) * 1000
            for chunk in response.iter_bytes():
                size += len(chunk)
                rows += chunk.count(b"\n")
        took = time.perf_counter() - t
        done.set()
        sampler.join()
        print(
            f"records CSV: {rows - 1:,} rows, {size / 1e6:.0f} MB in {took:.1f} s "
            f"({(rows - 1) / took:,.0f} rows/s), first byte {first_byte:.0f} ms; server memory "
            f"(anonymous: the heap, not the database file SQLite maps) {anon0:.0f} → peak "
            f"{peak[1]:.0f} MB (+{peak[1] - anon0:.0f} MB), RSS {rss0:.0f} → {peak[0]:.0f} MB"
        )
    finally:
        server.stop()

    # 3. A price for the Claude models, then every record repriced.
    manage(
        data_dir,
        "shell",
        "-c",
        "from billing.models import PriceOverride; PriceOverride.objects.create("
        "model_pattern='claude-*', input_per_mtok=1, output_per_mtok=5, effective_from='2000-01-01')",
    )
    t = time.perf_counter()
    out = manage(data_dir, "reprice", "--for-real")
    print(
        f"reprice --for-real of {args.records:,} records: {time.perf_counter() - t:.1f} s; {out.strip().splitlines()[-1]}"
    )


if __name__ == "__main__":
    main()
