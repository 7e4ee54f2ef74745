"""Memory of a serving process under a long mixed load, after requests that fail on purpose
(issue #30 §0: one streaming response that raised before its first byte killed daphne's
connection-reaping loop, and every later request leaked ~12 KB until restart).

A real `serve` with the tests' fault routes (tests/fault_urls.py): warm up, fail every way a
response can, then N more requests, each on a new connection (the leak was per connection):
pages signed in, the sign-in page, /healthz, and a failing stream every 500. RSS is sampled
along the way; daphne's tracked connections are read at the end.

Usage: python bench/memory.py [--requests 50000] [--threads 4]
"""

from __future__ import annotations

import argparse
import http.client
import os
import tempfile
import threading
import time
from pathlib import Path

import httpx

# The fault routes live in the tests' settings overlay (product code has none).
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
os.environ["MC_TEST_FAULT_ROUTES"] = "1"

from common import Server, login, prepare

FAULTS = ("stream-before", "stream-after", "stream-sync", "csv-after", "view-raises")
# (path, signed in): cheap and heavy routes, anonymous and signed in.
PAGES = (("/healthz", False), ("/login/", False), ("/agents/", True), ("/healthz", True))


def load(url: str, cookies: dict[str, str], count: int, offset: int, errors: list[str]) -> None:
    port = int(url.rsplit(":", 1)[1])
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    for i in range(offset, offset + count):
        if i % 500 == 0:
            path, signed_in, want = f"/__fault__/{FAULTS[(i // 500) % len(FAULTS)]}/", False, None
        else:
            (path, signed_in), want = PAGES[i % len(PAGES)], 200
        # A new connection every time: connections are what the dead loop never freed.
        con = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            con.request("GET", path, headers={"Cookie": cookie} if signed_in else {})
            r = con.getresponse()
            r.read()
            if want is not None and r.status != want:
                errors.append(f"{path}: {r.status}")
        except (OSError, http.client.HTTPException) as e:
            errors.append(f"{path}: {type(e).__name__}")
        finally:
            con.close()


def run(
    server: Server, cookies: dict[str, str], total: int, threads: int, errors: list[str]
) -> float:
    started = time.perf_counter()
    share = total // threads
    workers = [
        threading.Thread(target=load, args=(server.url, cookies, share, n * share, errors))
        for n in range(threads)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="mc-bench-memory-"))
    prepare(data_dir)
    server = Server(data_dir, 3395, env={"MC_GATEWAY_CONNECTORS": "0"})
    try:
        client = login(server.url)
        cookies = {"sessionid": client.cookies["sessionid"]}
        errors: list[str] = []
        run(server, cookies, 5_000, args.threads, errors)  # warm-up: caches, pools, code paths
        for fault in FAULTS * 4:
            httpx.get(f"{server.url}/__fault__/{fault}/", timeout=30)
        time.sleep(2)
        before = server.rss_mb()
        samples = [before]
        step = args.requests // 10
        took = 0.0
        for _ in range(10):
            took += run(server, cookies, step, args.threads, errors)
            samples.append(server.rss_mb())
        time.sleep(2.5)  # daphne reaps finished connections once a second
        tracked = httpx.get(f"{server.url}/__fault__/connections/", timeout=30).json()
        print(
            f"{step * 10:,} requests (new connection each, {args.threads} threads, a failing "
            f"response every 500) after 20 failed ones: RSS {before:.1f} → {samples[-1]:.1f} MB "
            f"({samples[-1] - before:+.1f} MB; peak {max(samples):.1f}); "
            f"{step * 10 / took:.0f} req/s; connections still tracked "
            f"{tracked['connections']}; unexpected answers {len(errors)}"
        )
        print("RSS every 10 %: " + " ".join(f"{s:.1f}" for s in samples))
        if errors:
            print("first unexpected: " + "; ".join(errors[:5]))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
