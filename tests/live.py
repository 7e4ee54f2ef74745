"""Real servers for end-to-end tests: `manage.py serve` as a subprocess on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ManagedProcess:
    """A `manage.py` command as a subprocess on the test database, logging to a file."""

    name = "process"

    def __init__(self, db_path: str | None, extra_env: dict[str, str] | None = None) -> None:
        self.db_path = db_path
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(os.environ.get("MC_DATA_DIR", "/tmp")) / f"{self.name}.log"

    def spawn(self, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        full = dict(os.environ)
        full.update(
            {
                "DJANGO_SETTINGS_MODULE": "tests.settings",
                "DJANGO_ALLOW_ASYNC_UNSAFE": "",
                "PYTHONUNBUFFERED": "1",
                **(env or {}),
            }
        )
        if self.db_path is not None:
            url = self.db_path if "://" in self.db_path else f"sqlite:///{self.db_path}"
            full["DATABASE_URL"] = url
        full.update(self.extra_env)
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=full,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        return self.proc

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        code = self.proc.returncode
        self.proc = None
        return code

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


class ServerProcess(ManagedProcess):
    """`manage.py serve` on 127.0.0.1:<port>, sharing the test database file."""

    def __init__(
        self,
        db_path: str | None,
        port: int | None = None,
        extra_env: dict[str, str] | None = None,
        setup: bool = False,
        workers: bool = True,
    ) -> None:
        # setup=False: the test database is the tests' (migrated by pytest, its users theirs).
        self.setup = setup
        # workers=False: `serve --no-workers`, the loops running in a WorkersProcess (scale-out).
        self.workers = workers
        self.port = port or free_port()
        self.name = f"serve-{self.port}"
        super().__init__(db_path, extra_env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> ServerProcess:
        args = ["serve", "--port", str(self.port)]
        args += [] if self.setup else ["--skip-setup"]
        args += [] if self.workers else ["--no-workers"]
        proc = self.spawn(args, {"MC_PORT": str(self.port)})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}: {self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not answer in {timeout}s: {self.output()}")


class WorkersProcess(ManagedProcess):
    """`manage.py run_workers`: the background loops alone (the scale-out profile)."""

    def __init__(self, db_path: str, extra_env: dict[str, str] | None = None) -> None:
        self.name = f"workers-{os.getpid()}-{free_port()}"
        super().__init__(db_path, extra_env)

    def start(self, timeout: float = 15.0) -> WorkersProcess:
        proc = self.spawn(["run_workers"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"workers exited with {proc.returncode}: {self.output()}")
            if "workers running" in self.output():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"workers did not start in {timeout}s: {self.output()}")


def login(url: str, username: str, password: str = PASSWORD) -> httpx.Client:
    """An HTTP client signed in to a real server through its login form."""
    client = httpx.Client(base_url=url, timeout=10)
    client.get("/login/")
    r = client.post(
        "/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
    )
    assert r.status_code == 302, r.text
    return client


def live_socket(url: str, sessionid: str, query: str) -> Any:
    """A browser-like WebSocket to `/ws/live/?<query>` of a real server, signed in by cookie."""
    return websockets.connect(
        url.replace("http://", "ws://") + f"/ws/live/?{query}",
        additional_headers={"Cookie": f"sessionid={sessionid}", "Origin": url},
    )


def _scale_out_profile() -> bool:
    from django.conf import settings
    from django.db import connection

    backend = str(settings.CHANNEL_LAYERS["default"]["BACKEND"])
    return connection.vendor == "postgresql" and backend.startswith("channels_redis")


def once(profile: str, why: str) -> pytest.MarkDecorator:
    """A test whose subject does not depend on the database or the channel layer (layout,
    markup, parsing, a gateway's protocol, a browser's transport) runs in one profile only when
    `./mc test` runs both (MC_TEST_ONCE_IN_ONE=1); every test runs when one profile runs alone.
    `profile` ("sqlite" or "postgres") is chosen to balance the two profiles' time: they run at
    once on the machine's two cores, and the suite takes as long as the longer one."""
    from django.db import connection

    vendor = {"sqlite": "sqlite", "postgres": "postgresql"}[profile]
    split = os.environ.get("MC_TEST_ONCE_IN_ONE") == "1"
    return pytest.mark.skipif(
        split and connection.vendor != vendor, reason=f"{why}: once, in the {profile} profile"
    )


# Tests of several processes sharing PostgreSQL and Redis (skipped on the SQLite run).
SCALE_OUT_ONLY = pytest.mark.skipif(
    not _scale_out_profile(), reason="the scale-out profile (PostgreSQL + Redis) only"
)
