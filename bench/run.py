"""Every benchmark, one command: `./mc bench [--profile sqlite|postgres] [--quick]`.

Runs each script in bench/ against real `manage.py serve` processes on loopback (their own data
dirs and, on the PostgreSQL profile, their own databases on the server `./mc bench` started),
prints what each reports, and writes a dated section (machine, versions, every figure) at the
top of docs/benchmarks.md. `--quick` runs shorter and smaller (a smoke run, not for the record).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from common import PG, PROFILE, PY, ROOT

DOC = ROOT / "docs" / "benchmarks.md"


def speed_probe() -> float:
    """Seconds for a 20-million-step Python loop: this VM's speed varies by up to 2× from hour
    to hour, so every table says how fast the machine was when it was made."""
    started = time.perf_counter()
    total = 0
    for i in range(20_000_000):
        total += i
    return time.perf_counter() - started


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    import django

    versions = [f"CPython {platform.python_version()}", f"Django {django.get_version()}"]
    if PROFILE == "postgres":
        import psycopg

        with psycopg.connect(f"{PG}/postgres") as con:
            versions.append("PostgreSQL " + con.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
        versions.append("Redis " + redis.stdout.split("v=")[1].split()[0])
    else:
        import sqlite3

        versions.append(f"SQLite {sqlite3.sqlite_version} (WAL)")
    return f"{os.cpu_count()} vCPU ({cpu}), {mem:.0f} GiB; " + ", ".join(versions)


ONLY: set[str] = set()  # --only: these scripts and no others (a partial run is never recorded)


def run(label: str, script: str, *args: str) -> tuple[str, list[str]]:
    if ONLY and script.removesuffix(".py") not in ONLY:
        return label, ["(not run: --only)"]
    print(f"--- {label}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(
        [PY, str(ROOT / "bench" / script), *args], cwd=ROOT, capture_output=True, text=True
    )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0:
        lines.append(f"FAILED (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    for line in lines:
        print("   ", line, flush=True)
    print(f"    ({time.perf_counter() - started:.0f} s)", flush=True)
    return label, lines


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a short smoke run (not recorded)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--only", action="append", default=[], help="run only this script (e.g. webhooks)"
    )
    args = parser.parse_args()
    ONLY.update(args.only)
    seconds = "3" if args.quick else "10"
    board = ["--open", "500", "--done", "1000"] if args.quick else []
    probe = speed_probe()
    started = datetime.now(UTC)
    print(f"profile {PROFILE}; speed probe {probe:.2f} s", flush=True)
    results = [
        run(
            f"heartbeats, {c} client(s), 200 agents",
            "heartbeat.py",
            "--clients",
            str(c),
            "--seconds",
            seconds,
        )
        for c in (1, 8, 32)
    ]
    if PROFILE == "postgres":
        results.append(
            run(
                "heartbeats, 32 clients, two `serve --no-workers` + `run_workers`",
                "heartbeat.py",
                "--servers",
                "2",
                "--seconds",
                seconds,
            )
        )
    if not args.quick:
        results.append(
            run(
                "heartbeats, 32 clients, with 1,000,000 usage records + 1,000,000 events",
                "heartbeat.py",
                "--preload",
                "--seconds",
                seconds,
            )
        )
    results.append(
        run("board: page, Chromium first screen, moves at 8 clients", "board.py", *board)
    )
    results.append(
        run(
            "dispatch: people's tokens, 8 clients",
            "runs.py",
            *(["--tasks", "1000", "--seconds", "3"] if args.quick else []),
        )
    )
    results.append(
        run(
            "dispatch: 100/s offered (open loop)",
            "runs.py",
            "--rate",
            "100",
            *(["--tasks", "300", "--seconds", "2"] if args.quick else []),
        )
    )
    results.append(
        run(
            "dispatch → the gateway's agent request, 10 synthetic gateways",
            "dispatch_gateway.py",
            *(["--gateways", "2", "--rate", "10", "--seconds", "2"] if args.quick else []),
        )
    )
    results.append(
        run(
            "task page: 50 attempts, 10,000 run events",
            "task_page.py",
            *(["--attempts", "10", "--progress", "20", "--requests", "10"] if args.quick else []),
        )
    )
    results.append(
        run(
            "pipelines: a 50-step run's page, a step's end → the next, the scheduler's tick",
            "pipelines.py",
            *(["--scheduled", "100", "--requests", "10", "--ticks", "20"] if args.quick else []),
        )
    )
    results.append(
        run(
            "MCP server: tool calls at 8 sessions (back to back, paced), 100 sessions held",
            "mcp_server.py",
            *(["--calls", "40", "--sessions", "20"] if args.quick else []),
        )
    )
    results.append(
        run(
            "task create: the board's form and the task API, 8 clients, 10k open / 50k done",
            "task_create.py",
            *(["--open", "1000", "--done", "1000", "--seconds", "3"] if args.quick else []),
        )
    )
    results.append(
        run(
            "notifications: a transition → its message (p99), 10,000 people's rules for one item",
            "notifications.py",
            *(["--transitions", "8", "--people", "2000"] if args.quick else []),
        )
    )
    results.append(
        run(
            "fan-out to 50/200/500 WebSockets",
            "fanout.py",
            *(["--clients", "50", "200"] if args.quick else []),
        )
    )
    results.append(
        run(
            "gateways: 10 synthetic gateways × 200 sessions (memory, re-sync, 1,000 events/s)",
            "gateways.py",
            *(["--seconds", "3"] if args.quick else []),
        )
    )
    results.append(
        run(
            "a real OpenClaw gateway (npm), 20 sessions running chats on a local model",
            "real_gateway.py",
            *(["--seconds", "5", "--sessions", "5"] if args.quick else []),
        )
    )
    results.append(
        run(
            "costs: 1,000,000 usage records (pages, records CSV, reprice)",
            "costs.py",
            *(["--records", "100000", "--requests", "5"] if args.quick else []),
        )
    )
    results.append(
        run(
            "webhooks: deliveries/s to one receiver; a dead endpoint beside a live one",
            "webhooks.py",
            *(["--deliveries", "600"] if args.quick else []),
        )
    )
    results.append(
        run(
            "crons: 10,000 jobs (lateness check, pages, check-ins)",
            "crons.py",
            *(["--jobs", "2000", "--requests", "5"] if args.quick else []),
        )
    )
    results.append(
        run(
            "overview: 1,000 agents, 10,000 open tasks, 1,000,000 usage records",
            "overview.py",
            *(["--records", "100000", "--requests", "5"] if args.quick else []),
        )
    )
    results.append(
        run(
            "memory under a mixed load after failing responses (new connection per request)",
            "memory.py",
            *(["--requests", "5000"] if args.quick else []),
        )
    )
    results.append(run("restart to first 200, idle RSS", "startup.py"))
    failed = [label for label, lines in results if any(line.startswith("FAILED") for line in lines)]
    if failed:
        print(f"not written: {', '.join(failed)} failed")
        return 1
    if not (args.quick or args.no_write or ONLY):
        write(started, probe, results)
    return 0


def write(started: datetime, probe: float, results: list[tuple[str, list[str]]]) -> None:
    title = "SQLite" if PROFILE == "sqlite" else "PostgreSQL + Redis"
    rows = "\n".join(
        f"| {label} | {'<br>'.join(line.replace('|', '/') for line in lines)} |"
        for label, lines in results
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    section = (
        f"## `./mc bench --profile {PROFILE}` ({title}) — {started:%Y-%m-%d %H:%M} UTC, "
        f"commit `{commit}`\n\n"
        f"Machine: {machine()}. Speed probe (a 20 M-step loop in the venv's Python, taken "
        f"first): {probe:.2f} s; compare it with other sections' before comparing figures.\n\n"
        "| what | figures (as each script printed them) |\n|---|---|\n"
        f"{rows}\n\n"
    )
    text = DOC.read_text()
    first = text.index("\n## ") + 1
    DOC.write_text(text[:first] + section + text[first:])
    print(f"written to {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
