"""A small fake OpenClaw gateway (unit tests only): a WebSocket server that speaks protocol 4's
handshake — and checks the device signature as the real one does — then answers methods from a
table. Tests steer it: refuse connects with a given error, grant fewer scopes, answer out of
order, send malformed frames, go silent. The real gateway is tested in test_real_gateway.py."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from websockets.asyncio.server import Server, ServerConnection, serve

from gateways.protocol import GatewayError

TOKEN = "fake-token-0123456789"

# The params schemas of the methods we call, as the real gateway checks them (closed objects:
# an unknown property is INVALID_REQUEST). Made by data/openclaw_params.mjs from the npm
# package the real-gateway tests install; made again when that version changes.
PARAMS = json.loads((Path(__file__).parent / "data" / "openclaw_params.json").read_text())


def refusal(method: str, params: Any) -> str | None:
    """Why the real gateway would refuse these params (None: it would take them)."""
    schema = PARAMS["params"].get(method)
    if schema is None:
        return None
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft7Validator(schema).iter_errors({} if params is None else params)
    )
    if error is None:
        return None
    return f"invalid {method} params: {error.message}"


def checked[T](answer: Callable[..., T]) -> Callable[..., T]:
    """A stand-in for `commands.call` that refuses, as the real gateway does, the params the
    gateway's schema refuses (INVALID_REQUEST), and otherwise answers with `answer`."""

    def call(gateway_id: int, method: str, params: Any = None, **kwargs: Any) -> T:
        invalid = refusal(method, params)
        if invalid is not None:
            raise GatewayError({"code": "INVALID_REQUEST", "message": invalid})
        return answer(gateway_id, method, params, **kwargs)

    return call


def _unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class FakeGateway:
    token: str = TOKEN
    scopes: list[str] | None = None  # None: grant what was asked
    protocol: int = 4
    tick_ms: int = 30000
    refuse: dict[str, Any] | None = None  # an error object for the connect answer
    methods: dict[str, Any] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    version: str = "2026.9.6"
    server: Server | None = None
    connections: list[ServerConnection] = field(default_factory=list)
    connects: int = 0
    signatures_ok: int = 0
    requests: list[tuple[str, Any]] = field(default_factory=list)
    answering: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.methods = {
            "health": {
                "ok": True,
                "agents": [{"agentId": "main"}],
                "sessions": {"count": 2},
                "eventLoop": {"delayP99Ms": 3.5, "degraded": False},
            },
            "status": {"runtimeVersion": self.version, "processMemory": {"rssBytes": 812_000_000}},
            "agents.list": {
                "defaultId": "main",
                "agents": [
                    {
                        "id": "main",
                        "model": {"primary": "fakellm/fake-1"},
                        "agentRuntime": {"id": "pi"},
                        "workspace": "/secret/host/path",
                    },
                    {"id": "helper", "model": {"primary": "fakellm/fake-2"}},
                ],
            },
            "sessions.list": {"count": 0, "sessions": []},
            "chat.send": {"status": "started", "runId": "run-1"},
            "chat.abort": {"ok": True, "aborted": True, "runIds": []},
            "sessions.reset": {"ok": True},
            **self.methods,
        }

    @property
    def url(self) -> str:
        assert self.server is not None
        port = next(iter(self.server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/"

    async def start(self, port: int = 0) -> FakeGateway:
        self.server = await serve(self._handle, "127.0.0.1", port)
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for connection in list(self.connections):
                await connection.close()
            await self.server.wait_closed()

    async def drop_all(self) -> None:
        """Close every connection (as a gateway restart would)."""
        for connection in list(self.connections):
            await connection.close(code=1012)

    async def send_event(self, event: str, payload: Any) -> None:
        for connection in list(self.connections):
            await connection.send(json.dumps({"type": "event", "event": event, "payload": payload}))

    async def _handle(self, ws: ServerConnection) -> None:
        nonce, ts = str(uuid.uuid4()), 1795460637261
        await ws.send(
            json.dumps(
                {
                    "type": "event",
                    "event": "connect.challenge",
                    "payload": {"nonce": nonce, "ts": ts, "capabilities": []},
                }
            )
        )
        try:
            connect = json.loads(await ws.recv())
        except websockets.ConnectionClosed:
            return
        self.connects += 1
        params = connect["params"]
        answer: dict[str, Any] = {"type": "res", "id": connect["id"]}
        error = self.refuse
        if error is None and params["auth"].get("token") != self.token:
            error = {
                "code": "INVALID_REQUEST",
                "message": "unauthorized: gateway token mismatch",
                "details": {
                    "code": "AUTH_TOKEN_MISMATCH",
                    "recommendedNextStep": "update_auth_credentials",
                },
            }
        if error is None and not self._signature_ok(params, nonce, ts):
            error = {"code": "INVALID_REQUEST", "message": "device signature invalid"}
        if error is not None:
            await ws.send(json.dumps({**answer, "ok": False, "error": error}))
            await ws.close()
            return
        self.signatures_ok += 1
        granted = params["scopes"] if self.scopes is None else self.scopes
        await ws.send(
            json.dumps(
                {
                    **answer,
                    "ok": True,
                    "payload": {
                        "type": "hello-ok",
                        "protocol": self.protocol,
                        "server": {"version": self.version, "connId": str(uuid.uuid4())},
                        "features": {"methods": sorted(self.methods), "events": ["tick", "health"]},
                        "snapshot": {"uptimeMs": 5000, "configPath": "/secret/openclaw.json"},
                        "auth": {"method": "token", "role": "operator", "scopes": granted},
                        "policy": {"tickIntervalMs": self.tick_ms, "maxPayload": 26214400},
                    },
                }
            )
        )
        self.connections.append(ws)
        try:
            async for raw in ws:
                frame = json.loads(raw)
                task = asyncio.ensure_future(self._answer(ws, frame))
                self.answering.add(task)
                task.add_done_callback(self.answering.discard)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.connections.remove(ws)

    def _signature_ok(self, params: dict[str, Any], nonce: str, ts: int) -> bool:
        device = params.get("device") or {}
        try:
            raw = _unb64u(device["publicKey"])
            client = params["client"]
            text = "|".join(
                [
                    "v3",
                    device["id"],
                    client["id"],
                    client["mode"],
                    params["role"],
                    ",".join(params["scopes"]),
                    str(ts),
                    params["auth"].get("token") or "",
                    nonce,
                    client["platform"].lower(),
                    "",
                ]
            )
            Ed25519PublicKey.from_public_bytes(raw).verify(
                _unb64u(device["signature"]), text.encode()
            )
        except Exception:
            return False
        import hashlib

        return device["id"] == hashlib.sha256(raw).hexdigest() and device["nonce"] == nonce

    async def _answer(self, ws: ServerConnection, frame: dict[str, Any]) -> None:
        method = str(frame.get("method"))
        self.requests.append((method, frame.get("params")))
        await asyncio.sleep(self.delays.get(method, 0))
        invalid = refusal(method, frame.get("params"))
        if invalid is not None:
            reply = {
                "type": "res",
                "id": frame["id"],
                "ok": False,
                "error": {"code": "INVALID_REQUEST", "message": invalid},
            }
        elif method not in self.methods:
            reply = {
                "type": "res",
                "id": frame["id"],
                "ok": False,
                "error": {"code": "FORBIDDEN", "message": "missing scope: operator.admin"},
            }
        else:
            result = self.methods[method]
            result = result(frame.get("params")) if callable(result) else result
            reply = {"type": "res", "id": frame["id"], "ok": True, "payload": result}
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.send(json.dumps(reply))
