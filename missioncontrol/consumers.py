"""The browser's live connection: /ws/live/?topics=board,activity&since=<seq>."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from missioncontrol import live, subscriptions
from missioncontrol.http import parse_int
from missioncontrol.roles import role_of

logger = logging.getLogger(__name__)


def parse_live_query(query: str) -> tuple[list[str], int | None]:
    """Topics and the client's last seq from a query string; a bad seq means 'none'."""
    params = parse_qs(query)
    topics = [t for raw in params.get("topics", []) for t in raw.split(",") if t]
    since_raw = (params.get("since") or [""])[0]
    since = parse_int(since_raw)
    return topics, since


class LiveConsumer(AsyncWebsocketConsumer):
    """Sends a page the events of its topics; never writes to the database.

    Events arrive from the process's subscriptions.Hub (not through a channel of its own), so the
    per-connection cost of an event is a seq check and one socket write.
    """

    # No channel of its own: events come from the process's hub, the one receiver on the layer
    # (with channels-redis, every connection blocking on a channel of its own cost a Redis read
    # per browser, and their read time-outs dropped connections). An alias that names no
    # layer makes Channels skip it.
    channel_layer_alias = "mc-no-layer"
    sub: subscriptions.Subscription
    hub: subscriptions.Hub | None = None
    # While not None, events wait here: during the initial replay and while a gap is repaired.
    pending: list[Any] | None = None

    async def connect(self) -> None:
        headers = dict(self.scope.get("headers", []))
        host = headers.get(b"host", b"").decode("latin-1")
        domain, _port = split_domain_port(host)
        if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
            await self.close(code=4400)
            return
        user = self.scope.get("user")
        role = await database_sync_to_async(role_of)(user)
        if role is None:
            await self.close(code=4401)
            return
        topics, since = parse_live_query(self.scope.get("query_string", b"").decode("latin-1"))
        scope = await database_sync_to_async(subscriptions.gateway_scope)(user)
        self.sub = subscriptions.Subscription(topics, role, gateways=scope)
        session = self.scope.get("session")
        self.still_allowed = subscriptions.session_still_allowed(
            getattr(session, "session_key", None), getattr(user, "pk", None)
        )
        await self.accept()
        # Listen before reading the log: an event committed in between arrives both ways and
        # the duplicate is dropped by seq, but none can fall between the two.
        self.pending = []
        self.hub = await subscriptions.get_hub()
        self.hub.add(self)
        try:
            texts = await self.sub.start(since)
        except subscriptions.Resync:
            await self.sub.start(None)
            texts = [self.sub.resync_text()]
        for text in texts:
            await self.send(text_data=text)
        await self._drain()
        await self.send(text_data=self.sub.ready_text())
        self.recheck = asyncio.create_task(self._recheck_access())

    async def disconnect(self, code: int) -> None:
        if self.hub is not None:
            self.hub.remove(self)
        task = getattr(self, "recheck", None)
        if task is not None:
            task.cancel()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            message = json.loads(text_data or "{}")
        except ValueError:
            return
        if isinstance(message, dict) and message.get("type") == "ping":
            await self.send(text_data='{"type":"pong"}')

    async def deliver(self, message: live.LayerMessage) -> None:
        """Called by the hub for each event of our topics."""
        if self.pending is not None:
            self.pending.append(message)
            return
        texts = self.sub.accept_nowait(message)
        if texts is None:
            # Events were lost on the way: read them from the log off the hub's path.
            self.pending = [message]
            self.repair = asyncio.create_task(self._drain())
            return
        for text in texts:
            await self.send(text_data=text)

    async def _drain(self) -> None:
        """Send what waited in `pending` (repairing gaps from the log), then go direct."""
        try:
            while self.pending:
                message = self.pending.pop(0)
                try:
                    texts = await self.sub.accept(message)
                except subscriptions.Resync:
                    self.pending = []
                    await self.sub.start(None)
                    texts = [self.sub.resync_text()]
                for text in texts:
                    await self.send(text_data=text)
        finally:
            self.pending = None

    async def _recheck_access(self) -> None:
        """The connection ends with the right that opened it: every subscriptions.ACCESS_CHECK_S it
        re-reads the session, person, role and grants from fresh rows (the scope's user and
        session are a snapshot of the handshake); sign-out, a password change, deactivation
        or the last role gone close it, a changed role or grants re-scope it."""
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(subscriptions.ACCESS_CHECK_S)
                try:
                    allowed = await self.still_allowed(self.sub)
                except Exception:
                    # The right could not be read (the database away, a lock timeout): never
                    # left open on rights nobody checked. 1011, not 4403: the page reconnects
                    # and is asked again at the handshake.
                    logger.exception("live socket: the access re-check failed; closing it")
                    await self.close(code=1011)
                    return
                if not allowed:
                    await self.close(code=4403)
                    return


class SameOriginOnly:
    """WebSocket handshakes only from this site's own origin: scheme, host **and port** as the
    browser reached us (the Host header), or one of MC_CSRF_TRUSTED_ORIGINS behind a proxy.
    A page on another port of the same host gets the session cookie too (SameSite is per
    site, not per origin), so comparing the host alone is not enough."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not self.allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.app(scope, receive, send)

    @staticmethod
    def allowed(scope: dict[str, Any]) -> bool:
        headers = dict(scope.get("headers", []))
        origin = headers.get(b"origin", b"").decode("latin-1").rstrip("/").lower()
        host = headers.get(b"host", b"").decode("latin-1").lower()
        if not origin or not host:
            return False
        domain, _port = split_domain_port(host)
        if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
            return False
        scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
        own = f"{scheme}://{host}"
        # Browsers leave the default port out of Origin; Host may carry it.
        own_defaults = {own, own.removesuffix(":443" if scheme == "https" else ":80")}
        trusted = {o.rstrip("/").lower() for o in settings.CSRF_TRUSTED_ORIGINS}
        return origin in own_defaults or origin in trusted
