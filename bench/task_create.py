"""Task creation at scale (#32): 8 closed-loop clients on a board of 10,000 open + 50,000 done
tasks, through the board's own New task form (htmx: the create and the blank form sent back)
and through the operators' task API (`POST /api/v1/tasks`, a person's token). Creates per
second, latency, and the server's CPU per create (the load generator shares the two cores).

Usage: python bench/task_create.py [--open 10000] [--done 50000] [--seconds 10] [--data-dir D]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

from common import ADMIN, Server, closed_loop, login, manage, prepare, query, summary


async def creates_per_second(
    port: int,
    headers: str,
    body_of: Callable[[int, int], tuple[str, str, bytes]],
    seconds: float,
    concurrency: int = 8,
) -> tuple[int, int, list[float]]:
    """8 closed-loop clients POSTing `body_of(k, n)` (path, content type, body)."""

    def request_of(k: int, n: int) -> bytes:
        path, content_type, body = body_of(k, n)
        return (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    return await closed_loop(port, request_of, seconds, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--open", type=int, default=10000)
    parser.add_argument("--done", type=int, default=50000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--data-dir", default="")
    args = parser.parse_args()
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="mc-bench-create-"))
    prepare(data_dir)
    have = query(data_dir, "SELECT count(*) FROM tasks_task")[0][0]
    if have < args.open + args.done:
        manage(data_dir, "seed_demo", "--open", str(args.open), "--done", str(args.done), "-v", "0")
    token = (
        manage(data_dir, "create_api_token", ADMIN[0], "--name", "bench").strip().splitlines()[-1]
    )
    # One token drives far past the per-key rate limit: off, as for the other API benches.
    server = Server(data_dir, 3371, env={"MC_BENCH_NO_RATE_LIMIT": "1"})
    try:
        client = login(server.url)
        csrf, session = client.cookies["csrftoken"], client.cookies["sessionid"]
        form_headers = (
            f"Cookie: sessionid={session}; csrftoken={csrf}\r\nX-CSRFToken: {csrf}\r\n"
            f"Origin: http://127.0.0.1:{server.port}\r\nHX-Request: true\r\n"
        )

        def form_body(k: int, n: int) -> tuple[str, str, bytes]:
            fields = {"title": f"bench form {k}-{n}", "status": "inbox", "priority": "2"}
            return "/tasks/new/", "application/x-www-form-urlencoded", urlencode(fields).encode()

        api_headers = f"Authorization: Bearer {token}\r\n"

        def api_body(k: int, n: int) -> tuple[str, str, bytes]:
            return (
                "/api/v1/tasks",
                "application/json",
                json.dumps({"title": f"bench api {k}-{n}"}).encode(),
            )

        for label, headers, body_of in (
            ("the board's New task form (htmx)", form_headers, form_body),
            ("the task API (POST /api/v1/tasks)", api_headers, api_body),
        ):
            asyncio.run(creates_per_second(server.port, headers, body_of, 1.0))  # warm-up
            cpu = server.cpu_s()
            done, errors, lat = asyncio.run(
                creates_per_second(server.port, headers, body_of, args.seconds)
            )
            cpu_ms = (server.cpu_s() - cpu) * 1000 / max(1, done + errors)
            print(
                f"task create through {label}, 8 clients: {done / args.seconds:.0f}/s, "
                f"{errors} errors, latency {summary(lat)}, server CPU {cpu_ms:.1f} ms/create"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
