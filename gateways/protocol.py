"""The OpenClaw gateway protocol (v4), client side: handshake, requests, events, liveness.

Pure protocol over one WebSocket: no database, no Django. `gateways/connector.py` drives it and
turns what it learns into actions. See ../shared/openclaw/PROTOCOL.md (measured against a real
gateway): `connect.challenge` → `connect` (client `gateway-client`/`backend`, token auth, an
Ed25519 device signature over the challenge) → `hello-ok`; then `req`/`res` frames matched by
`id` (responses come out of order) and `event` frames; a `tick` every `tickIntervalMs`.

Every way a connect can fail ends as a `Refused` with the connector state it means and the
remedy in plain words, so the gateway page can say exactly what to do.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.asyncio.client import ClientConnection

logger = logging.getLogger(__name__)

PROTOCOL = 4
CLIENT_ID = "gateway-client"  # a closed enum on the gateway: custom ids are refused
CLIENT_MODE = "backend"  # ephemeral: not listed in presence, no presence broadcasts
ROLE = "operator"
# Only what we use: read for everything shown, write for chat send/abort, admin for reset and
# cron runs, approvals for exec approvals (added in #28: a remote gateway paired before asks
# for pairing again, once). The caps make Mission Control one of the gateway's approval
# clients: it is sent `exec.approval.requested` (without them a request no client takes is
# denied at once as "no route").
SCOPES = ("operator.read", "operator.write", "operator.admin", "operator.approvals")
CAPS = ("exec-approvals",)
VERSION = "1.0.0"
PLATFORM = "linux"
HANDSHAKE_TIMEOUT_S = 15.0
REQUEST_TIMEOUT_S = 20.0
MAX_FRAME = 32 * 1024 * 1024  # hello-ok policy.maxPayload is 25 MiB

# States (gateways.models.Gateway.State values; repeated here to keep this module Django-free).
CONNECTING, CONNECTED, PAIRING_REQUIRED = "connecting", "connected", "pairing_required"
AUTH_FAILED, PROTOCOL_MISMATCH, UNREACHABLE = "auth_failed", "protocol_mismatch", "unreachable"

# Features and the methods each needs (hello-ok.features.methods is the capability list). The
# list is a discovery list, not exhaustive: OpenClaw 2026.9.6 answers `sessions.usage` without
# listing it (observed), so each feature names methods the list does carry.
FEATURES: dict[str, tuple[str, ...]] = {
    "agents": ("agents.list",),
    "sessions": ("sessions.list",),
    "live sessions": ("sessions.subscribe",),
    "transcripts": ("chat.history",),
    "send message": ("chat.send",),
    "dispatch runs": ("agent",),
    "abort run": ("chat.abort",),
    "reset session": ("sessions.reset",),
    "usage": ("usage.cost",),
    "health": ("health",),
    "status": ("status",),
    "crons": ("cron.list", "cron.runs"),
    "run cron now": ("cron.run",),
    "exec approvals": ("exec.approval.list", "approval.resolve", "approval.get"),
}
# And the scopes each needs (hello-ok.auth.scopes are the live effective scopes).
FEATURE_SCOPES: dict[str, str] = {
    "send message": "operator.write",
    "dispatch runs": "operator.write",
    "abort run": "operator.write",
    "reset session": "operator.admin",
    "run cron now": "operator.admin",
    "exec approvals": "operator.approvals",
}


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Identity:
    """An Ed25519 device identity: `device_id` = hex SHA-256 of the raw public key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.key = key
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public_key = b64u(raw)
        self.device_id = hashlib.sha256(raw).hexdigest()

    @classmethod
    def generate(cls) -> Identity:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private(cls, private_b64u: str) -> Identity:
        raw = base64.urlsafe_b64decode(private_b64u + "=" * (-len(private_b64u) % 4))
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    def private_b64u(self) -> str:
        return b64u(
            self.key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        )

    def sign(self, text: str) -> str:
        return b64u(self.key.sign(text.encode()))


def signed_text(identity: Identity, secret: str, nonce: str, ts: int) -> str:
    """The v3 string the gateway verifies (PROTOCOL.md 1.3); deviceFamily absent → trailing |."""
    return "|".join(
        [
            "v3",
            identity.device_id,
            CLIENT_ID,
            CLIENT_MODE,
            ROLE,
            ",".join(SCOPES),
            str(ts),
            secret,
            nonce,
            PLATFORM,
            "",
        ]
    )


def connect_request(
    identity: Identity, token: str, device_token: str, nonce: str, ts: int
) -> dict[str, Any]:
    """The `connect` request frame answering a challenge."""
    secret = token or device_token
    auth = {"token": token} if token else {"deviceToken": device_token} if device_token else {}
    return {
        "type": "req",
        "id": str(uuid.uuid4()),
        "method": "connect",
        "params": {
            "minProtocol": PROTOCOL,
            "maxProtocol": PROTOCOL,
            "client": {
                "id": CLIENT_ID,
                "version": VERSION,
                "platform": PLATFORM,
                "mode": CLIENT_MODE,
                "displayName": "Mission Control",
            },
            "role": ROLE,
            "scopes": list(SCOPES),
            "caps": list(CAPS),
            "auth": auth,
            "device": {
                "id": identity.device_id,
                "publicKey": identity.public_key,
                "signature": identity.sign(signed_text(identity, secret, nonce, ts)),
                "signedAt": ts,
                "nonce": nonce,
            },
        },
    }


class GatewayError(Exception):
    """A `res` with ok:false: the gateway's code, message and details."""

    def __init__(self, error: Any) -> None:
        error = error if isinstance(error, dict) else {"message": str(error)}
        self.code = str(error.get("code") or "ERROR")
        self.message = str(error.get("message") or self.code)
        details = error.get("details")
        self.details: dict[str, Any] = details if isinstance(details, dict) else {}
        self.retryable = bool(error.get("retryable"))
        super().__init__(f"{self.code}: {self.message}")

    @property
    def detail_code(self) -> str:
        return str(self.details.get("code") or "")


@dataclass
class Refused(Exception):
    """A connect that did not reach a usable hello: the state it means, why, and what to do."""

    state: str
    detail: str
    remedy: str
    pairing_request_id: str = ""
    retry_s: float | None = None  # a hint for the back-off (None: the usual one)

    def __str__(self) -> str:
        return f"{self.state}: {self.detail}"


def refusal(error: GatewayError, device_id: str) -> Refused:
    """What a failed `connect` means for the operator (PROTOCOL.md 1.4 and 4.4)."""
    code, sub = error.code, error.detail_code
    text = error.message[:300]
    if sub == "PAIRING_REQUIRED" or (code == "NOT_PAIRED" and error.details.get("requestId")):
        request_id = str(error.details.get("requestId") or "")
        return Refused(
            PAIRING_REQUIRED,
            text,
            f"Approve pairing request {request_id} on the gateway host: "
            f"`openclaw devices approve {request_id}` (requests expire after 5 minutes; a new "
            "one is made on the next attempt). Mission Control reconnects by itself once approved.",
            pairing_request_id=request_id,
            retry_s=5.0,
        )
    if sub in {"AUTH_TOKEN_MISMATCH", "AUTH_TOKEN_MISSING", "AUTH_PASSWORD_MISMATCH"} or (
        "token" in text.lower() and ("mismatch" in text.lower() or "invalid" in text.lower())
    ):
        return Refused(
            AUTH_FAILED,
            text,
            "The gateway rejected the token: copy gateway.auth.token from the gateway's config "
            "(or its OPENCLAW_GATEWAY_TOKEN) and update it here.",
        )
    if sub == "DEVICE_IDENTITY_REQUIRED" or code == "NOT_PAIRED":
        return Refused(
            AUTH_FAILED,
            text,
            f"The gateway did not accept this installation's device ({device_id[:12]}…): "
            "check `openclaw devices list` on the gateway host and approve or re-pair it.",
        )
    if "protocol" in text.lower() or "PROTOCOL" in sub:
        return Refused(
            PROTOCOL_MISMATCH,
            text,
            f"This gateway does not speak protocol {PROTOCOL}: upgrade it (or Mission Control) "
            "so both speak the same version (OpenClaw 2026.9 and later speak 4).",
        )
    if error.retryable or code == "UNAVAILABLE":
        return Refused(
            UNREACHABLE,
            text,
            "The gateway is starting or busy; Mission Control retries by itself.",
            retry_s=(error.details.get("retryAfterMs") or 2000) / 1000,
        )
    return Refused(
        AUTH_FAILED,
        text,
        "The gateway refused the connection; its message above says why.",
    )


def unreachable(url: str, exc: BaseException) -> Refused:
    reason = str(exc) or type(exc).__name__
    return Refused(
        UNREACHABLE,
        f"{type(exc).__name__}: {reason}"[:300],
        f"Nothing answered at {url}: check that the gateway runs (`openclaw gateway run`), the "
        "URL and port (default 18789), and that this server can reach that host.",
    )


@dataclass
class Hello:
    """What hello-ok told us, trimmed to what Mission Control uses."""

    protocol: int
    version: str
    methods: frozenset[str]
    scopes: tuple[str, ...]
    tick_s: float
    device_token: str
    auth_method: str
    snapshot: dict[str, Any] = field(default_factory=dict)

    def missing_features(self) -> dict[str, str]:
        """{feature: why it is off} for features the gateway lacks or did not grant."""
        missing: dict[str, str] = {}
        for feature, methods in FEATURES.items():
            lacking = [m for m in methods if m not in self.methods]
            if lacking:
                missing[feature] = f"the gateway has no {', '.join(lacking)}"
        for feature, scope in FEATURE_SCOPES.items():
            if feature not in missing and scope not in self.scopes:
                missing[feature] = f"the gateway did not grant {scope}"
        return missing


def parse_hello(payload: Any) -> Hello:
    if not isinstance(payload, dict) or payload.get("type") != "hello-ok":
        raise Refused(PROTOCOL_MISMATCH, "the answer to connect was not hello-ok", _UPGRADE)
    protocol = payload.get("protocol")
    if protocol != PROTOCOL:
        raise Refused(PROTOCOL_MISMATCH, f"the gateway answered with protocol {protocol}", _UPGRADE)
    features = payload.get("features") or {}
    auth = payload.get("auth") or {}
    policy = payload.get("policy") or {}
    server = payload.get("server") or {}
    tick_ms = policy.get("tickIntervalMs") or 30000
    snapshot = payload.get("snapshot")
    return Hello(
        protocol=PROTOCOL,
        version=str(server.get("version") or ""),
        methods=frozenset(m for m in features.get("methods") or [] if isinstance(m, str)),
        scopes=tuple(s for s in auth.get("scopes") or [] if isinstance(s, str)),
        tick_s=max(1.0, float(tick_ms) / 1000),
        device_token=str(auth.get("deviceToken") or ""),
        auth_method=str(auth.get("method") or ""),
        snapshot=snapshot if isinstance(snapshot, dict) else {},
    )


_UPGRADE = (
    f"Mission Control speaks OpenClaw protocol {PROTOCOL}: upgrade the gateway (or Mission "
    "Control) so both speak the same version."
)

EventHandler = Callable[[str, Any], Awaitable[None]]


class Dead(Exception):
    """The connection went silent (no frame for 2× the tick interval) or closed."""


class Connection:
    """A connected gateway: `request()` from anywhere, `run()` reads frames until it dies."""

    def __init__(self, ws: ClientConnection, hello: Hello, on_event: EventHandler) -> None:
        self.ws = ws
        self.hello = hello
        self.on_event = on_event
        self.pending: dict[str, asyncio.Future[Any]] = {}
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.malformed = 0

    async def request(
        self, method: str, params: dict[str, Any] | None = None, timeout: float = REQUEST_TIMEOUT_S
    ) -> Any:
        """The payload of `method`'s answer; GatewayError on ok:false, TimeoutError, Dead."""
        frame_id = str(uuid.uuid4())
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[frame_id] = future
        try:
            await self.ws.send(
                json.dumps(
                    {"type": "req", "id": frame_id, "method": method, "params": params or {}}
                )
            )
            return await asyncio.wait_for(future, timeout)
        except websockets.ConnectionClosed as closed:
            raise Dead(f"connection closed: {closed}") from None
        finally:
            self.pending.pop(frame_id, None)

    async def run(self) -> None:
        """Read frames: answers to their requests, events to the handler. Returns never; raises
        Dead when the socket closes or stays silent for 2× the tick interval.

        Events are handed over through a queue to one handler task, in order: a handler may
        make requests of its own, whose answers this reader must be free to read."""
        silence = 2 * self.hello.tick_s
        handler = asyncio.ensure_future(self._handle_events())
        try:
            while True:
                try:
                    raw = await asyncio.wait_for(self.ws.recv(), silence)
                except TimeoutError:
                    raise Dead(f"no frame for {silence:.0f} s (2× the tick interval)") from None
                except websockets.ConnectionClosed as closed:
                    raise Dead(f"connection closed: {closed}") from None
                self._dispatch(raw)
        finally:
            handler.cancel()
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(Dead("connection lost before the answer"))

    async def _handle_events(self) -> None:
        while True:
            name, payload = await self.events.get()
            try:
                await self.on_event(name, payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                # One bad event must not drop the connection (and every other event with it).
                logger.exception("gateway event %s could not be handled", name)

    def _dispatch(self, raw: str | bytes) -> None:
        try:
            frame = json.loads(raw)
            kind = frame["type"]
        except (ValueError, TypeError, KeyError):
            self.malformed += 1
            logger.warning(
                "gateway sent a malformed frame (%d so far): %.200r", self.malformed, raw
            )
            return
        if kind == "res":
            future = self.pending.get(str(frame.get("id")))
            if future is None or future.done():
                return  # an answer nobody waits for any more (timed out)
            if frame.get("ok"):
                future.set_result(frame.get("payload"))
            else:
                future.set_exception(GatewayError(frame.get("error")))
        elif kind == "event":
            name = frame.get("event")
            if not isinstance(name, str):
                self.malformed += 1
                return
            self.events.put_nowait((name, frame.get("payload")))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()


async def open_connection(
    url: str,
    *,
    token: str,
    device_token: str,
    identity: Identity,
    on_event: EventHandler,
    open_timeout: float = 10.0,
) -> Connection:
    """Connect and authenticate; a usable Connection, or Refused saying why not."""
    try:
        ws = await websockets.connect(
            url,
            open_timeout=open_timeout,
            max_size=MAX_FRAME,
            # The gateway's tick is the liveness check (PROTOCOL.md); pings add a second one.
            ping_interval=20,
            ping_timeout=20,
            # Closing waits this long at most for the gateway's close frame (stop, restart).
            close_timeout=2,
            compression=None,
        )
    except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
        raise unreachable(url, exc) from None
    try:
        return await _handshake(ws, token, device_token, identity, on_event)
    except BaseException:
        with contextlib.suppress(Exception):
            await ws.close()
        raise


async def _handshake(
    ws: ClientConnection,
    token: str,
    device_token: str,
    identity: Identity,
    on_event: EventHandler,
) -> Connection:
    early: list[tuple[str, Any]] = []
    try:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
            challenge = json.loads(await ws.recv())
            if challenge.get("type") != "event" or challenge.get("event") != "connect.challenge":
                raise Refused(PROTOCOL_MISMATCH, "the gateway sent no connect.challenge", _UPGRADE)
            payload = challenge.get("payload") or {}
            request = connect_request(
                identity, token, device_token, str(payload["nonce"]), int(payload["ts"])
            )
            await ws.send(json.dumps(request))
            while True:
                frame = json.loads(await ws.recv())
                if frame.get("type") == "event":
                    early.append((frame.get("event"), frame.get("payload")))
                    continue
                if frame.get("type") == "res" and frame.get("id") == request["id"]:
                    break
    except TimeoutError:
        raise Refused(
            UNREACHABLE,
            f"no answer to the handshake within {HANDSHAKE_TIMEOUT_S:.0f} s",
            "The gateway accepted the socket but did not finish the handshake: check that the "
            "URL points at the OpenClaw gateway itself (not a proxy page).",
        ) from None
    except websockets.ConnectionClosed as closed:
        raise Refused(
            UNREACHABLE,
            f"the gateway closed the connection during the handshake ({closed})",
            "Check the gateway's log; behind a proxy, check that it forwards WebSockets.",
        ) from None
    except (ValueError, KeyError, TypeError) as bad:
        raise Refused(
            PROTOCOL_MISMATCH, f"the handshake frames were not understood ({bad})", _UPGRADE
        ) from None
    if not frame.get("ok"):
        raise refusal(GatewayError(frame.get("error")), identity.device_id)
    hello = parse_hello(frame.get("payload"))
    if "operator.read" not in hello.scopes:
        raise Refused(
            PAIRING_REQUIRED,
            f"connected, but the gateway granted no read scope (scopes: {list(hello.scopes)})",
            "The gateway treats this connection as remote and unpaired: approve this device on "
            "the gateway host (`openclaw devices list`, then `openclaw devices approve <id>`), "
            "or reach the gateway over loopback.",
            retry_s=10.0,
        )
    connection = Connection(ws, hello, on_event)
    for name, event_payload in early:
        if isinstance(name, str):
            connection.events.put_nowait((name, event_payload))
    return connection


# --- Paged reads ---------------------------------------------------------------------------------

SESSION_PAGE = 200
HISTORY_PAGE = 1000  # the gateway's own cap on one chat.history page (CHAT_HISTORY_MAX_ENTRIES)
MAX_SESSIONS = 5000
MAX_HISTORY_PAGES = 1000  # a million messages a session: a bound, should a gateway loop


async def list_sessions(connection: Connection, limit: int = MAX_SESSIONS) -> list[dict[str, Any]]:
    """Every session (`sessions.list`, SESSION_PAGE a request), up to `limit`."""
    sessions: list[dict[str, Any]] = []
    offset = 0
    while len(sessions) < limit:
        page = await connection.request(
            "sessions.list",
            {"limit": SESSION_PAGE, "offset": offset, "includeLastMessage": True},
        )
        if not isinstance(page, dict):
            break
        listed = page.get("sessions")
        rows = [r for r in listed if isinstance(r, dict)] if isinstance(listed, list) else []
        sessions += rows
        if page.get("hasMore") is not True or not rows:
            break
        # The gateway says where the next page starts; one that does not move on ends the list.
        after = page.get("nextOffset")
        after = after if type(after) is int and after > offset else offset + len(rows)
        offset = after
    return sessions


async def history_pages(
    connection: Connection, session_key: str, page: int = HISTORY_PAGE
) -> AsyncIterator[list[dict[str, Any]]]:
    """A session's transcript (`chat.history`), newest page first, each page oldest message
    first. Offsets count back from the newest message; the gateway says where the next page
    starts (`nextOffset`) while `hasMore` (read in OpenClaw 2026.9.6's handler)."""
    offset = 0
    for _ in range(MAX_HISTORY_PAGES):
        answer = await connection.request(
            "chat.history", {"sessionKey": session_key, "limit": page, "offset": offset}
        )
        if not isinstance(answer, dict):
            return
        messages = [m for m in answer.get("messages") or [] if isinstance(m, dict)]
        yield messages
        following = answer.get("nextOffset")
        if not answer.get("hasMore") or not messages or not isinstance(following, int):
            return
        if following <= offset:
            return  # never ask for the same page twice
        offset = following
