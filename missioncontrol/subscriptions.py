"""Subscriptions to the event log: who may receive what (role, topics, gateway scope), catching a
returning client up from the log (replay, gap repair, resync), the per-process hub that takes
the channel layer's messages for every open stream, and the two stream shapes built on it
(`follow` for the WebSocket consumer, `sse` for the Server-Sent Events views). The log and the
fan-out are missioncontrol/live.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Literal, Protocol

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db.models import Min

from missioncontrol import state
from missioncontrol.live import (
    ALL_GROUP,
    Form,
    LayerMessage,
    current_seq,
    encode,
    encode_data,
    group_for,
)
from missioncontrol.live import (
    topics as registered_topics,
)
from missioncontrol.models import LiveEvent
from missioncontrol.roles import RANK, Role, role_of

logger = logging.getLogger(__name__)


class Resync(Exception):
    """The client cannot be caught up event by event; it must reload its panels."""


def _visible(role: Role, min_role: str) -> bool:
    return RANK[role] >= RANK.get(min_role, RANK["admin"])


def _events_between(
    topics: Iterable[str], after: int, upto: int | None, limit: int
) -> list[LiveEvent]:
    qs = LiveEvent.objects.filter(topic__in=list(topics), seq__gt=after).order_by("seq")
    if upto is not None:
        qs = qs.filter(seq__lte=upto)
    return list(qs[: limit + 1])


# Which gateways a user's events may come from (None: all): set by the gateways app, which owns
# per-gateway grants; this module knows no app.
GatewayScope = Callable[[Any], "frozenset[int] | None"]
_gateway_scope: list[GatewayScope] = []


def register_gateway_scope(scope: GatewayScope) -> None:
    _gateway_scope[:] = [scope]


def gateway_scope(user: Any) -> frozenset[int] | None:
    """The gateway ids whose events `user` may receive (None: every gateway's). Sync (ORM)."""
    return _gateway_scope[0](user) if _gateway_scope else None


# How often an open stream (WebSocket, SSE, an agent's event stream) re-reads the right that
# opened it from fresh rows: sign-out, a password change, deactivation, a role or grant change
# and a key's revocation reach every open stream of that user or key within this, on every
# process (the rows are shared; nothing is cached per process).
ACCESS_CHECK_S = 2.0

# What an open stream asks, every ACCESS_CHECK_S, of the right that opened it: False ends the
# stream; it may re-scope `sub` (role, gateways) on the way.
StillAllowed = Callable[["Subscription"], Awaitable[bool]]


def session_access(session_key: str | None, user_id: int | None) -> tuple[Role, Any] | None:
    """The (role, gateway scope) a browser session has now, read from fresh rows; None when the
    session is gone (signed out), the password changed, the person was deactivated or has no
    role any more. Sync (ORM)."""
    from importlib import import_module

    from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model

    if not session_key or user_id is None:
        return None
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    if str(session.get(SESSION_KEY, "")) != str(user_id):
        return None
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None or session.get(HASH_SESSION_KEY) != user.get_session_auth_hash():
        return None
    role = role_of(user)
    return None if role is None else (role, gateway_scope(user))


def session_still_allowed(session_key: str | None, user_id: int | None) -> StillAllowed:
    """A browser stream's re-check: ends it on sign-out and the rest, re-scopes it on a role
    or grant change."""

    async def check(sub: Subscription) -> bool:
        access = await database_sync_to_async(session_access)(session_key, user_id)
        if access is None:
            return False
        sub.role, sub.gateways = access
        return True

    return check


class Subscription:
    """One client's view of the log: what it has seen and what it may see."""

    def __init__(
        self,
        topics: list[str],
        role: Role,
        form: Form = "browser",
        gateways: frozenset[int] | None = None,
    ) -> None:
        self.topics = [t for t in topics if t in registered_topics()]
        self.role = role
        # Narrowed by per-gateway grants: events of other gateways are skipped (seqs still move).
        self.gateways = gateways
        # Browsers get presented ops; data consumers (agents' streams) get the domain events.
        self.form: Form = form
        self._encode = encode if form == "browser" else encode_data
        self._field: Literal["text", "data"] = "text" if form == "browser" else "data"
        self.last_seq = 0
        self.topic_last: dict[str, int] = {}
        self.limit = settings.MC_LIVE_REPLAY_LIMIT

    def _catch_up(self, since: int | None) -> tuple[int, list[str]]:
        head = current_seq()
        if since is None:
            return head, []
        if since > head:
            raise Resync("client is ahead of the log (database replaced?)")
        oldest = LiveEvent.objects.aggregate(m=Min("seq"))["m"]
        if since < head and (oldest is None or since < oldest - 1):
            raise Resync("the events after the client's seq were pruned")
        events = _events_between(self.topics, since, head, self.limit)
        if len(events) > self.limit:
            raise Resync("too many events missed")
        return head, [self._encode(e) for e in events if self._shows(e.min_role, e.gateway_id)]

    def _shows(self, min_role: str, gateway_id: int | None) -> bool:
        if not _visible(self.role, min_role):
            return False
        return self.gateways is None or gateway_id is None or gateway_id in self.gateways

    async def start(self, since: int | None) -> list[str]:
        """Texts to send first (the events missed since `since`); raises Resync."""
        head, texts = await database_sync_to_async(self._catch_up)(since)
        self.last_seq = head
        self.topic_last = dict.fromkeys(self.topics, head)
        return texts

    def _repair(self, topic: str, after: int, upto: int) -> list[str]:
        events = _events_between([topic], after, upto, self.limit)
        if len(events) > self.limit:
            raise Resync("too many events lost")
        return [self._encode(e) for e in events if self._shows(e.min_role, e.gateway_id)]

    def accept_nowait(self, message: LayerMessage) -> list[str] | None:
        """Texts to send for a message, or None when a gap must first be read from the log."""
        seq, topic = message["seq"], message["topic"]
        if seq <= self.last_seq or topic not in self.topic_last:
            return []
        prev = message["prev"]
        if prev is not None and prev > self.topic_last[topic]:
            return None
        self.topic_last[topic] = seq
        self.last_seq = seq
        shown = self._shows(message["min_role"], message.get("gateway_id"))
        return [message[self._field]] if shown else []

    async def accept(self, message: LayerMessage) -> list[str]:
        """Texts to send for one layer message (with any lost ones first); raises Resync."""
        seq, topic = message["seq"], message["topic"]
        if seq <= self.last_seq or topic not in self.topic_last:
            return []  # already replayed, or not ours
        texts: list[str] = []
        prev = message["prev"]
        if prev is not None and prev > self.topic_last[topic]:
            # The layer dropped events for us (a full queue): fetch them from the log.
            texts = await database_sync_to_async(self._repair)(
                topic, self.topic_last[topic], seq - 1
            )
        self.topic_last[topic] = seq
        self.last_seq = seq
        if self._shows(message["min_role"], message.get("gateway_id")):
            texts.append(message[self._field])
        return texts

    def resync_text(self) -> str:
        return json.dumps({"type": "resync", "topics": self.topics, "seq": self.last_seq})

    def ready_text(self) -> str:
        return json.dumps({"type": "ready", "seq": self.last_seq, "topics": self.topics})


class Listener(Protocol):
    """A local connection the hub delivers to (the WebSocket consumer, an SSE stream)."""

    sub: Subscription

    async def deliver(self, message: LayerMessage) -> None: ...


# How often a hub re-joins its groups (well inside channels-redis's group expiry).
REJOIN_S = 600.0


class Hub:
    """This process's member of every topic group; hands each event to local listeners."""

    def __init__(self) -> None:
        self.listeners: dict[str, set[Listener]] = {topic: set() for topic in registered_topics()}
        self.channel: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.rejoin: asyncio.Task[None] | None = None
        self.started = asyncio.Event()

    async def start(self) -> None:
        layer = get_channel_layer()
        assert layer is not None
        # The layer's default prefix: channels-redis reads every process-local channel of a
        # layer through one shared key per prefix, so a channel of its own prefix beside the
        # consumers' would never be read while a consumer is receiving.
        self.channel = await layer.new_channel()
        for group in self.groups():
            await layer.group_add(group, self.channel)
        self.task = asyncio.create_task(self._pump(layer))
        self.rejoin = asyncio.create_task(self._keep_membership(layer))
        self.started.set()

    async def _keep_membership(self, layer: Any) -> None:
        """Join the groups again now and then: channels-redis drops a group's members after its
        group_expiry (a day by default), which would silently cut a long-running process off
        from every event."""
        assert self.channel is not None
        while True:
            await asyncio.sleep(REJOIN_S)
            try:
                for group in self.groups():
                    await layer.group_add(group, self.channel)
            except Exception:
                logger.exception("live: re-joining the topic groups failed")

    async def _pump(self, layer: Any) -> None:
        assert self.channel is not None
        while True:
            try:
                message = await layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A pump that dies silently cuts this process off from every event: say why
                # and keep receiving (clients repair any gap from the log).
                logger.exception("live: receiving from the channel layer failed")
                await asyncio.sleep(0.2)
                continue
            kind = message.get("type")
            if kind == "live.event":
                await self._deliver(message)
            elif kind == "live.batch":
                for one in message.get("messages", ()):
                    await self._deliver(one)

    async def _deliver(self, message: LayerMessage) -> None:
        # A copy of the set: a listener may leave while we deliver.
        for listener in list(self.listeners.get(message["topic"], ())):
            try:
                await listener.deliver(message)
            except Exception:
                logger.exception("live: delivery to %r failed", listener)

    def groups(self) -> list[str]:
        return [*(group_for(topic) for topic in self.listeners), ALL_GROUP]

    def add(self, listener: Listener) -> None:
        for topic in listener.sub.topics:
            self.listeners[topic].add(listener)

    def remove(self, listener: Listener) -> None:
        for members in self.listeners.values():
            members.discard(listener)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


async def get_hub() -> Hub:
    """The hub of the running event loop (one per process in production), started on first use."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub()
        await hub.start()
    await hub.started.wait()
    return hub


class QueueListener:
    """A streaming client's place in the hub: a bounded queue; overflowing it means resync."""

    def __init__(self, sub: Subscription, size: int = 1000) -> None:
        self.sub = sub
        self.queue: asyncio.Queue[LayerMessage] = asyncio.Queue(maxsize=size)
        self.overflowed = False

    async def deliver(self, message: LayerMessage) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            # A client this slow is told to reload rather than silently losing events.
            self.overflowed = True


async def follow(
    sub: Subscription, since: int | None, keepalive_s: float
) -> AsyncIterator[str | None]:
    """For streaming clients (SSE): the texts missed since `since` (or a resync), "ready",
    then live ones; None after every `keepalive_s` of silence."""
    listener = QueueListener(sub)
    hub = await get_hub()
    hub.add(listener)
    try:
        try:
            texts = await sub.start(since)
        except Resync:
            await sub.start(None)
            texts = [sub.resync_text()]
        for text in texts:
            yield text
        yield sub.ready_text()
        while True:
            try:
                message = await asyncio.wait_for(listener.queue.get(), keepalive_s)
            except TimeoutError:
                yield None
                continue
            if listener.overflowed:
                listener.overflowed = False
                while not listener.queue.empty():
                    listener.queue.get_nowait()
                await sub.start(None)
                yield sub.resync_text()
                continue
            try:
                texts = await sub.accept(message)
            except Resync:
                await sub.start(None)
                texts = [sub.resync_text()]
            for text in texts:
                yield text
    finally:
        hub.remove(listener)


REVOKED_FRAME = 'event: revoked\ndata: {"error": "unauthenticated"}\n\n'


async def sse(
    sub: Subscription,
    since: int | None,
    *,
    still_allowed: StillAllowed,
    frame: Callable[[str], str | None],
    keepalive_s: float,
    check_s: float = ACCESS_CHECK_S,
) -> AsyncIterator[str]:
    """An SSE body: `follow` with the re-check every `check_s` (a refused one ends the
    stream with `event: revoked`), a comment line after `keepalive_s` of silence, and `frame`
    turning each text into its SSE frame (None: not for this client)."""
    quiet_since = checked = time.monotonic()
    async for text in follow(sub, since, check_s):
        now = time.monotonic()
        if now - checked >= check_s:
            checked = now
            if not await still_allowed(sub):
                yield REVOKED_FRAME
                return
        if text is None:
            if now - quiet_since >= keepalive_s:
                quiet_since = now
                yield ": keep-alive\n\n"
            continue
        quiet_since = now
        out = frame(text)
        if out:
            yield out


_SEQ = re.compile(r'"seq":\s*(\d+)')


def seq_of(text: str) -> int | None:
    """The seq an encoded message carries (events, ready and resync all have one)."""
    match = _SEQ.search(text)
    return int(match.group(1)) if match else None


def _reset() -> None:
    for hub in list(_hubs.values()):
        for task in (hub.task, hub.rejoin):
            if task is not None:
                with contextlib.suppress(RuntimeError):  # its loop may be closed already
                    task.cancel()
    _hubs.clear()


state.register("live hubs", _reset)
