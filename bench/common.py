"""Helpers for the benchmarks: a real `manage.py serve` on a data dir of its own.

Profiles: SQLite (the default: the database lives in the data dir) or PostgreSQL + Redis when
`MC_BENCH_PG` (a server URL, e.g. postgres://mc@127.0.0.1:5432) and `MC_BENCH_REDIS` are set
(`./mc bench --profile postgres` starts both): each data dir then gets a database of its own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
ADMIN = ("bench-admin", "bench-password-123")


PG = os.environ.get("MC_BENCH_PG", "").rstrip("/")
REDIS = os.environ.get("MC_BENCH_REDIS", "")
PROFILE = "postgres" if PG else "sqlite"


def _db_name(data_dir: Path) -> str:
    return "bench_" + "".join(c if c.isalnum() else "_" for c in data_dir.name.lower())


def db_env(data_dir: Path) -> dict[str, str]:
    """The environment that points a process at this data dir's database (and Redis)."""
    if not PG:
        return {"MC_DATA_DIR": str(data_dir)}
    return {
        "MC_DATA_DIR": str(data_dir),
        "DATABASE_URL": f"{PG}/{_db_name(data_dir)}",
        "CHANNEL_LAYER_URL": REDIS,
    }


def query(data_dir: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows of one statement on the data dir's database (`%s` placeholders on both)."""
    if not PG:
        import sqlite3

        con = sqlite3.connect(data_dir / "mission-control.sqlite3")
        try:
            rows = con.execute(sql.replace("%s", "?"), params).fetchall()
            con.commit()
            return rows
        finally:
            con.close()
    import psycopg

    with psycopg.connect(f"{PG}/{_db_name(data_dir)}", autocommit=True) as con:
        cur = con.execute(sql, params)
        return cur.fetchall() if cur.description else []


def _fresh_database(data_dir: Path) -> None:
    import psycopg

    name = _db_name(data_dir)
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        con.execute(f'CREATE DATABASE "{name}"')


def manage(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full = {**os.environ, **db_env(data_dir), **(env or {})}
    return subprocess.run(
        [PY, "manage.py", *args], cwd=ROOT, env=full, check=True, capture_output=True, text=True
    ).stdout


def prepare(data_dir: Path) -> None:
    """Migrate, create the bench admin, collect static files."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if PG and not (data_dir / ".bench-db").exists():
        _fresh_database(data_dir)
        (data_dir / ".bench-db").touch()
    manage(data_dir, "migrate", "--noinput", "-v", "0")
    manage(
        data_dir, "ensure_admin", env={"MC_ADMIN_USERNAME": ADMIN[0], "MC_ADMIN_PASSWORD": ADMIN[1]}
    )
    # As serve does it (with its stamp), so the measured server starts without collecting again.
    manage(
        data_dir,
        "shell",
        "-c",
        "from missioncontrol import setup; setup.collect_static(setup.static_stamp())",
    )


def _log() -> Any:
    """Where servers write: MC_BENCH_LOG (a file, appended to) or nowhere."""
    path = os.environ.get("MC_BENCH_LOG")
    return open(path, "ab") if path else subprocess.DEVNULL


def start_workers(data_dir: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`manage.py run_workers` beside `serve --no-workers` processes."""
    return subprocess.Popen(
        [PY, "manage.py", "run_workers"],
        cwd=ROOT,
        env={**os.environ, **db_env(data_dir), **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class Server:
    def __init__(
        self,
        data_dir: Path,
        port: int,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.data_dir, self.port = data_dir, port
        self.url = f"http://127.0.0.1:{port}"
        full = {**os.environ, **db_env(data_dir), "MC_PORT": str(port), **(env or {})}
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            command or [PY, "manage.py", "serve"],
            cwd=ROOT,
            env=full,
            stdout=_log(),
            stderr=subprocess.STDOUT,
        )
        self.ready_after = self._wait()

    def _wait(self, timeout: float = 30) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - self.started
            except OSError:
                time.sleep(0.005)
        raise RuntimeError("server did not start")

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the server has used so far: a cost per operation that
        the load generator's share of the two cores does not distort."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


def login(url: str, username: str = ADMIN[0], password: str = ADMIN[1]) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30)
    client.get("/login/")
    client.post(
        "/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
        headers={"Referer": f"{url}/login/"},
    )
    assert "sessionid" in client.cookies, "login failed"
    return client


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> str:
    return f"p50 {pct(values, 50):.1f} ms, p99 {pct(values, 99):.1f} ms, mean {statistics.fmean(values):.1f} ms (n={len(values)})"


class Receiver:
    """A minimal HTTP/1.1 server on its own loop: answers 200 (or never, when dead) and notes
    when each request arrived."""

    def __init__(self, dead: bool = False) -> None:
        self.dead = dead
        self.arrivals: list[float] = []
        self.bodies: list[bytes] = []
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                if self.dead:
                    await asyncio.sleep(3600)
                self.arrivals.append(time.time())
                self.bodies.append(body)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[bytes, bytes]:
    """One HTTP/1.1 request on a keep-alive connection, raw (a client library's own CPU would
    eat into the two cores the server runs on): (the status line, the body)."""
    writer.write(request)
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return status_line, await reader.readexactly(length)


async def closed_loop(
    port: int, request_of: Any, seconds: float, concurrency: int
) -> tuple[int, int, list[float]]:
    """`concurrency` clients, each on its own keep-alive connection, sending `request_of(k, n)`
    (client k's n-th request, raw bytes) the moment the previous one is answered, for `seconds`:
    (answered 2xx, other answers, latencies in ms)."""
    done = errors = 0
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(k: int) -> None:
        nonlocal done, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        n = 0
        while time.perf_counter() < deadline:
            n += 1
            t = time.perf_counter()
            status_line, _body = await exchange(reader, writer, request_of(k, n))
            latencies.append((time.perf_counter() - t) * 1000)
            if status_line.split()[1].startswith(b"2"):
                done += 1
            else:
                errors += 1
        writer.close()

    await asyncio.gather(*(client(k) for k in range(concurrency)))
    return done, errors, latencies
