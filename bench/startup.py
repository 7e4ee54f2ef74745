"""Start-up to the first 200: a first start on an empty data dir (migrations, the first admin,
static files collected and compressed), and a returning user's restart on a set-up data dir
with idle RSS — `manage.py serve` (its own set-up checks included) and `./mc serve` (the
README's command: virtualenv check, then the same).

Usage: python bench/startup.py   (Python's bytecode cache on, as ./mc runs it)
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from common import ROOT, Server, prepare


def first_starts(n: int = 3) -> None:
    took = []
    for i in range(n):
        empty = Path(tempfile.mkdtemp(prefix="mc-bench-first-"))
        env = {"MC_ADMIN_PASSWORD": "bench-password-123", "MC_GATEWAY_CONNECTORS": "0"}
        server = Server(empty, 3385 + i, env=env)
        took.append(server.ready_after)
        server.stop()
    print(
        f"first start on an empty data dir to first 200: median "
        f"{statistics.median(took) * 1000:,.0f} ms, max {max(took) * 1000:,.0f} ms (of {n})"
    )


def main() -> None:
    first_starts()
    data_dir = Path(tempfile.mkdtemp(prefix="mc-bench-startup-"))
    prepare(data_dir)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    Server(data_dir, 3389).stop()  # the first start writes the stamp and the bytecode cache
    for label, command in (
        ("manage.py serve", None),
        ("./mc serve", [str(ROOT / "mc"), "serve"]),
    ):
        starts, rss = [], []
        for i in range(5):
            server = Server(data_dir, 3390 + i, command=command)
            starts.append(server.ready_after)
            time.sleep(5)
            rss.append(server.rss_mb())
            server.stop()
        print(
            f"{label}: restart to first 200: median {statistics.median(starts) * 1000:.0f} ms, "
            f"max {max(starts) * 1000:.0f} ms; idle RSS after 5 s: median "
            f"{statistics.median(rss):.1f} MB"
        )


if __name__ == "__main__":
    main()
