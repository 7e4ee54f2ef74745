"""Cold start of `serve` to the first 200 (migrations applied) and idle RSS.

Usage: python bench/startup.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from common import Server, prepare


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="mc-bench-startup-"))
    prepare(data_dir)
    starts, rss = [], []
    for i in range(5):
        server = Server(data_dir, 3390 + i)
        starts.append(server.ready_after)
        time.sleep(5)
        rss.append(server.rss_mb())
        server.stop()
    print(
        f"cold start to first 200: median {statistics.median(starts) * 1000:.0f} ms, max {max(starts) * 1000:.0f} ms"
    )
    print(f"idle RSS after 5 s: median {statistics.median(rss):.1f} MB, max {max(rss):.1f} MB")


if __name__ == "__main__":
    main()
