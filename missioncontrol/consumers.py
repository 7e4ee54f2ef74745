"""The browser's live connection: /ws/live/?topics=board,activity&since=<seq>."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs

from channels.auth import get_user
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from missioncontrol import live
from missioncontrol.roles import role_of

# How often a connection re-checks that its user still holds a role (and is still signed in).
RECHECK_S = 30.0


def parse_live_query(query: str) -> tuple[list[str], int | None]:
    """Topics and the client's last seq from a query string; a bad seq means 'none'."""
    params = parse_qs(query)
    topics = [t for raw in params.get("topics", []) for t in raw.split(",") if t]
    since_raw = (params.get("since") or [""])[0]
    since = int(since_raw) if since_raw.isdigit() else None
    return topics, since


class LiveConsumer(AsyncWebsocketConsumer):
    """Sends a page the events of its topics; never writes to the database."""

    sub: live.Subscription

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
        self.sub = live.Subscription(topics, role)
        self.checked_at = time.monotonic()
        await self.accept()
        # Join the groups before reading the log: an event committed in between comes both
        # ways and the duplicate is dropped by seq, but none can fall between the two.
        for topic in self.sub.topics:
            await self.channel_layer.group_add(live.group_for(topic), self.channel_name)
        try:
            texts = await self.sub.start(since)
        except live.Resync:
            await self.sub.start(None)
            await self.send(text_data=self.sub.resync_text())
            texts = []
        for text in texts:
            await self.send(text_data=text)
        await self.send(text_data=self.sub.ready_text())

    async def disconnect(self, code: int) -> None:
        sub = getattr(self, "sub", None)
        if sub is not None:
            for topic in sub.topics:
                await self.channel_layer.group_discard(live.group_for(topic), self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            message = json.loads(text_data or "{}")
        except ValueError:
            return
        if isinstance(message, dict) and message.get("type") == "ping":
            await self.send(text_data='{"type":"pong"}')

    async def _still_allowed(self) -> bool:
        if time.monotonic() - self.checked_at < RECHECK_S:
            return True
        self.checked_at = time.monotonic()
        user = await get_user(self.scope)
        role = await database_sync_to_async(role_of)(user)
        if role is None:
            await self.close(code=4403)
            return False
        self.sub.role = role
        return True

    async def live_event(self, message: dict[str, Any]) -> None:
        if not await self._still_allowed():
            return
        try:
            texts = await self.sub.accept(message)  # type: ignore[arg-type]
        except live.Resync:
            await self.sub.start(None)
            await self.send(text_data=self.sub.resync_text())
            return
        for text in texts:
            await self.send(text_data=text)
