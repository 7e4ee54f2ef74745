"""`/mcp/`: the MCP server's HTTP edge, in the ASGI composition root (missioncontrol/asgi.py).

Each request is checked here, before the SDK sees it, as every agent-key route is: the host
allowlist (400), a foreign Origin (403: no other site's page may call it), the credential
(`Authorization: Bearer` — an agent's key, or a person's API token; none or a bad one: 401 JSON
in the product's error shape), the per-key rate limit (429). The principal is then bound for the
request's tools, and the request goes to the official SDK's Streamable HTTP transport.

Stateless (`stateless_http`, JSON answers): no session lives in a process, so every web process
of the scale-out profile answers any request, a revoked key or token is refused on its very next
request, and a hundred clients cost no memory between their calls. The SDK's transport runs in
a task group that the ASGI lifespan protocol starts; daphne has no lifespan, so this edge drives
the SDK app's lifespan itself, once per event loop, on the first request.

The SDK and everything under it (pydantic models, starlette) are imported on the first request
to `/mcp/`: a server nobody asks over MCP never loads them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from agents import keys
from mcpserver import threads
from mcpserver.principal import Principal, bind, unbind
from missioncontrol import tokens
from missioncontrol.errors import ActionError, Forbidden, Unauthenticated
from missioncontrol.fastpath.http import Receive, Scope, Send, error, header, host_allowed, refuse

logger = logging.getLogger("mcpserver")

PREFIX = "/mcp"
NO_CREDENTIAL = (
    "Send an agent's key (mc_…) or a person's API token (mct_…) as 'Authorization: Bearer …'."
)


def _person(authorization: str | None) -> Principal:
    from missioncontrol.roles import role_of

    user = tokens.authenticate(authorization)  # viewer at least; each tool asks for more
    return Principal("person", user.get_username(), user=user, role=role_of(user))


async def authenticate(scope: Scope) -> Principal:
    """Who sends this request (raises Unauthenticated, Forbidden or RateLimited)."""
    authorization = header(scope, b"authorization")
    if tokens.is_token(tokens.bearer(authorization)):
        return await threads.run(_person, authorization)
    if not tokens.bearer(authorization) and not header(scope, b"x-api-key"):
        raise Unauthenticated(NO_CREDENTIAL)
    key = await keys.aauthenticate(authorization, header(scope, b"x-api-key"))
    assert key.agent_name is not None
    return Principal("agent", key.agent_name, key=key)


def _same_origin(scope: Scope) -> bool:
    origin = header(scope, b"origin")
    if not origin:
        return True
    return urlsplit(origin).netloc == (header(scope, b"host") or "")


class _Lifespan:
    """The SDK app's lifespan, driven as an ASGI server would: started once, kept running."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.stop = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._run(), name="mcp-lifespan")

    async def _run(self) -> None:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "lifespan.startup"}
            await self.stop.wait()
            return {"type": "lifespan.shutdown"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete" and not self.started.done():
                self.started.set_result(None)
            elif message["type"] == "lifespan.startup.failed" and not self.started.done():
                self.started.set_exception(RuntimeError(message.get("message", "")))

        try:
            await self.app(
                {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send
            )
        except Exception as failed:
            if not self.started.done():
                self.started.set_exception(failed)
            logger.exception("mcp: the SDK's lifespan failed")


class Endpoint:
    """The ASGI app for `/mcp` and `/mcp/`: checks, then the SDK's transport."""

    def __init__(self) -> None:
        self._running: dict[asyncio.AbstractEventLoop, tuple[Any, _Lifespan]] = {}
        self._lock: asyncio.Lock | None = None

    async def _sdk_app(self) -> Any:
        loop = asyncio.get_running_loop()
        found = self._running.get(loop)
        if found is None:
            if self._lock is None or self._lock._loop not in (None, loop):  # type: ignore[attr-defined]
                self._lock = asyncio.Lock()
            async with self._lock:
                found = self._running.get(loop)
                if found is None:
                    from mcp.server.transport_security import TransportSecuritySettings

                    from mcpserver.server import build

                    app = build().streamable_http_app(
                        streamable_http_path=PREFIX,
                        stateless_http=True,
                        json_response=True,
                        max_request_body_size=settings.MC_API_MAX_BODY,
                        # Host and Origin are checked here, against ALLOWED_HOSTS.
                        transport_security=TransportSecuritySettings(
                            enable_dns_rebinding_protection=False
                        ),
                    )
                    lifespan = _Lifespan(app)
                    await lifespan.started
                    found = (app, lifespan)
                    self._running = {
                        lp: v for lp, v in self._running.items() if not lp.is_closed()
                    } | {loop: found}
        return found[0]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not host_allowed(scope):
            await error(send, 400, "Unknown host.")
            return
        if not _same_origin(scope):
            await refuse(send, Forbidden("Calls from another site's pages are refused."))
            return
        try:
            principal = await authenticate(scope)
        except ActionError as refused:
            await refuse(send, refused)
            return
        bound = bind(principal)
        try:
            app = await self._sdk_app()
            await app({**scope, "path": PREFIX, "raw_path": PREFIX.encode()}, receive, send)
        finally:
            unbind(bound)


class WithMcp:
    """`/mcp` and `/mcp/` to the MCP endpoint, everything else to `app`."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.endpoint = Endpoint()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in (PREFIX, PREFIX + "/"):
            await self.endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)
