"""The one way anything reaches a browser: publish inside a transaction, fan out after commit.

`publish()` writes a `LiveEvent` row (global order: `seq`) and schedules the fan-out with
`transaction.on_commit`, so a rolled-back change sends nothing. The event is encoded to JSON
once, at publish time. Each process runs one `Hub` that is the only member of the topic groups:
the channel layer carries an event once per process (not once per browser), and the hub hands
the same text to every local connection, whose work is a seq check and a socket write.
`Subscription` holds the per-client rules (replay from a seq, gap repair, resync) for both the
WebSocket consumer and the SSE stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, NotRequired, Protocol, TypedDict

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import channel_layers, get_channel_layer
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from missioncontrol import state
from missioncontrol.db import bulk
from missioncontrol.models import LiveEvent
from missioncontrol.roles import RANK, Role, role_of

logger = logging.getLogger(__name__)

# The `gateway_id` of an event (and an audit row) about data summed over every gateway, such as
# a budget over everything: users narrowed to some gateways never see it (no gateway has this
# id); None means "no gateway's data" (everyone who may see the topic sees it).
EVERY_GATEWAY = 0

# Topics a page can subscribe to, registered by the apps (`register_topic`) in their ready():
# each is one Channels group (group_for()). This module knows no app.
_topics: dict[str, None] = {}
Topic = str

# Presenters: an app's edge that turns one of its event types into what browsers apply (DOM
# ops). Called after commit, once per event, from the event's data alone, so a replay to a
# returning tab renders exactly what the live push did.
Presenter = Callable[[dict[str, Any]], "BrowserPayload"]
_presenters: dict[str, Presenter] = {}


# Sinks: consumers that take the events in the publishing transaction itself (the webhook
# outbox), so an event and what is owed for it commit, or roll back, together.
Sink = Callable[[list[LiveEvent]], None]
_sinks: list[Sink] = []


def register_sink(sink: Sink) -> None:
    """Call `sink(events)` with every batch published, inside its transaction (idempotent)."""
    if sink not in _sinks:
        _sinks.append(sink)


def register_topic(name: str, *event_types: str) -> None:
    """Make `name` a topic pages may subscribe to (idempotent), with the event types its app
    publishes there (register_events)."""
    _topics[name] = None
    register_events(name, *event_types)


# Every domain event type, with the topic it is published on: the catalogue's code side (docs/
# events.md is its text; tests/missioncontrol/test_event_catalogue.py keeps them equal).
_event_types: dict[str, Topic] = {}


def register_events(topic: Topic, *event_types: str) -> None:
    """An app's event types on a topic (an app may publish on a topic another app owns)."""
    for event_type in event_types:
        _event_types[event_type] = topic


def event_types() -> dict[str, Topic]:
    """Every registered domain event type → its topic."""
    return dict(_event_types)


def topics() -> tuple[str, ...]:
    """Every registered topic."""
    return tuple(_topics)


def presents(*event_types: str) -> Callable[[Presenter], Presenter]:
    """Decorator: register a presenter for these event types (one presenter per type)."""

    def decorator(fn: Presenter) -> Presenter:
        for event_type in event_types:
            _presenters[event_type] = fn
        return fn

    return decorator


class Op(TypedDict):
    """One DOM change the client applies; every op is idempotent (a replayed event is harmless)."""

    op: Literal["upsert", "remove", "text", "attr"]
    id: str
    html: NotRequired[str]
    parent: NotRequired[str]
    before: NotRequired[str | None]
    first: NotRequired[bool]
    limit: NotRequired[int]
    text: NotRequired[str]
    name: NotRequired[str]
    value: NotRequired[str]


class BrowserPayload(TypedDict, total=False):
    """What a presenter makes of an event for browsers."""

    ops: list[Op]


class EventMessage(TypedDict):
    """What a browser receives for one event: the presenter's DOM ops."""

    type: Literal["event"]
    seq: int
    prev: int | None
    topic: str
    event: str
    payload: BrowserPayload


class DataMessage(TypedDict):
    """What a data consumer (an agent's SSE stream, webhooks) receives: the domain event."""

    type: Literal["event"]
    seq: int
    prev: int | None
    topic: str
    event: str
    data: dict[str, Any]


class LayerMessage(TypedDict):
    """What travels through the channel layer: both encodings, already made, plus routing facts."""

    type: Literal["live.event"]
    seq: int
    prev: int | None
    topic: str
    min_role: str
    gateway_id: int | None
    text: str
    data: str


Form = Literal["browser", "data"]


def group_for(topic: str) -> str:
    """The Channels group that carries a topic."""
    return f"live.{topic}"


def current_seq() -> int:
    """The newest seq in the log (0 when empty)."""
    return LiveEvent.objects.aggregate(m=Max("seq"))["m"] or 0


def present(event: LiveEvent) -> BrowserPayload:
    """The browser payload of an event (its presenter's, or nothing to apply)."""
    presenter = _presenters.get(event.type)
    if presenter is None:
        return {}
    try:
        return presenter(event.payload)
    except Exception:
        # The event is committed; a client that misses its ops catches up on its next resync.
        logger.exception("live: presenting %s #%s failed", event.type, event.seq)
        return {}


# Browser texts by seq: made once at commit, reused by replays and gap repairs.
_TEXTS_KEPT = 4096
_texts: OrderedDict[int, str] = OrderedDict()
_texts_lock = threading.Lock()


def encode(event: LiveEvent) -> str:
    """The browser message of an event (rendered once per event and kept a while)."""
    with _texts_lock:
        text = _texts.get(event.seq)
    if text is not None:
        return text
    message: EventMessage = {
        "type": "event",
        "seq": event.seq,
        "prev": event.prev_seq,
        "topic": event.topic,
        "event": event.type,
        "payload": present(event),
    }
    text = json.dumps(message, separators=(",", ":"))
    with _texts_lock:
        _texts[event.seq] = text
        while len(_texts) > _TEXTS_KEPT:
            _texts.popitem(last=False)
    return text


def encode_data(event: LiveEvent) -> str:
    """The data message of an event (the domain event as stored)."""
    message: DataMessage = {
        "type": "event",
        "seq": event.seq,
        "prev": event.prev_seq,
        "topic": event.topic,
        "event": event.type,
        "data": event.payload,
    }
    return json.dumps(message, separators=(",", ":"), default=str)


def publish(
    topic: Topic,
    event: Mapping[str, Any],
    *,
    min_role: Role = "viewer",
    gateway_id: int | None = None,
) -> LiveEvent:
    """Append a domain event (a TypedDict with its `type`) to the log; after commit, present it
    and send it to the topic's subscribers."""
    return publish_many(topic, [event], min_role=min_role, gateway_id=gateway_id)[0]


# PostgreSQL: publishers are serialised so that seq order is commit order, as SQLite's single
# writer gives; the lock is taken once per transaction (the outbox remembers) and held to commit.
PUBLISH_LOCK = 7243001


def publish_many(
    topic: Topic,
    events: Sequence[Mapping[str, Any]],
    *,
    min_role: Role = "viewer",
    gateway_id: int | None = None,
) -> list[LiveEvent]:
    """publish() for several events of one topic, in order, in as few statements as the
    database allows (PostgreSQL: lock once, seqs from one nextval query, one INSERT)."""
    if topic not in _topics:
        raise ValueError(f"unknown live topic {topic!r}")
    if not connection.in_atomic_block:
        raise RuntimeError("live.publish() must run inside the action's transaction")
    if not events:
        return []
    outbox = _transaction_outbox()
    postgres = connection.vendor == "postgresql"
    now = timezone.now()
    created = connection.ops.adapt_datetimefield_value(now)
    table = LiveEvent._meta.db_table
    rows = [
        LiveEvent(
            type=event["type"],
            topic=topic,
            payload=dict(event),
            min_role=min_role,
            gateway_id=gateway_id,
            created_at=now,
        )
        for event in events
    ]
    with connection.cursor() as cursor:
        if postgres and not outbox.locked:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PUBLISH_LOCK])
            outbox.locked = True
        # The newest seq on the topic: known already if this transaction published on it (it
        # holds the write lock, so nobody else did since).
        prev = outbox.last.get(topic)
        if prev is None:
            cursor.execute(
                f"SELECT seq FROM {table} WHERE topic = %s ORDER BY seq DESC LIMIT 1",  # noqa: S608 - placeholders only
                [topic],
            )
            found = cursor.fetchone()
            prev = found[0] if found else None
        if postgres:
            # Every row's seq before the INSERT, so each row can name its predecessor.
            cursor.execute(
                f"SELECT nextval(pg_get_serial_sequence('{table}', 'seq')) "  # noqa: S608 - fixed name
                "FROM generate_series(1, %s)",
                [len(rows)],
            )
            seqs = sorted(found[0] for found in cursor.fetchall())
            values = []
            for row, seq in zip(rows, seqs, strict=True):
                row.seq, row.prev_seq, prev = seq, prev, seq
                values.append(_row_params(row, created, with_seq=True))
            for sql_values, params in bulk.values_chunks(values, 8):
                cursor.execute(
                    f"INSERT INTO {table} (seq, type, topic, prev_seq, gateway_id, min_role, "  # noqa: S608 - placeholders only
                    f"payload, created_at) VALUES {sql_values}",
                    params,
                )
        else:
            # SQLite: in-process statements, no round trips to save; RETURNING (SQLite >= 3.35)
            # gives each row's seq for the next row's prev.
            for row in rows:
                row.prev_seq = prev
                cursor.execute(
                    f"INSERT INTO {table} (type, topic, prev_seq, gateway_id, min_role, "  # noqa: S608 - placeholders only
                    "payload, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING seq",
                    _row_params(row, created, with_seq=False),
                )
                row.seq = prev = cursor.fetchone()[0]
    for row in rows:
        row._state.adding = False
    outbox.last[topic] = rows[-1].seq
    outbox.events.extend(rows)
    for sink in _sinks:
        sink(rows)
    return rows


def _row_params(row: LiveEvent, created: Any, *, with_seq: bool) -> tuple[Any, ...]:
    params = (
        row.type,
        row.topic,
        row.prev_seq,
        row.gateway_id,
        row.min_role,
        _PAYLOAD.get_db_prep_save(row.payload, connection),
        created,
    )
    return (row.seq, *params) if with_seq else params


_PAYLOAD = LiveEvent._meta.get_field("payload")


# Test capture (capture_broadcasts), fan-out tasks kept alive, and per-thread pending batch.
_sent: list[LayerMessage] | None = None
_pending: set[asyncio.Task[None]] = set()
_outbox = threading.local()


def layer_message(event: LiveEvent) -> LayerMessage:
    """An event as the channel layer carries it (presented here: after commit)."""
    return {
        "type": "live.event",
        "seq": event.seq,
        "prev": event.prev_seq,
        "topic": event.topic,
        "min_role": event.min_role,
        "gateway_id": event.gateway_id,
        "text": encode(event),
        "data": encode_data(event),
    }


class _Outbox:
    """A transaction's events, presented and sent in one go after it commits (one loop hop,
    outside the write transaction), and the newest seq it published per topic."""

    def __init__(self) -> None:
        self.events: list[LiveEvent] = []
        self.last: dict[str, int] = {}
        self.locked = False  # PostgreSQL: this transaction holds PUBLISH_LOCK

    def __call__(self) -> None:
        _fan_out([layer_message(event) for event in self.events])


def _transaction_outbox() -> _Outbox:
    outbox: _Outbox | None = getattr(_outbox, "current", None)
    # Still pending on this connection? (A rollback discards the callback, and with it the batch.)
    if outbox is None or all(entry[1] is not outbox for entry in connection.run_on_commit):
        outbox = _outbox.current = _Outbox()
        transaction.on_commit(outbox)
    return outbox


# Every hub is a member of every topic's group and of this one: a commit's events travel as one
# "live.batch" message here (one group_send, a few Redis round trips, instead of one per event:
# half the event loop's time on the PostgreSQL + Redis move path went to per-event sends).
ALL_GROUP = "live.all"


async def _send_all(layer: Any, messages: list[LayerMessage]) -> None:
    if len(messages) == 1:
        await layer.group_send(group_for(messages[0]["topic"]), messages[0])
    elif messages:
        await layer.group_send(ALL_GROUP, {"type": "live.batch", "messages": messages})


def fan_out_on(loop: asyncio.AbstractEventLoop) -> None:
    """This (non-async) thread's commits are fanned out on `loop` without waiting for delivery
    (the group-commit writers: async_to_sync would start a thread and a loop per commit)."""
    _outbox.loop = loop


_last_send: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = (
    weakref.WeakKeyDictionary()
)


def _send_in_order(
    loop: asyncio.AbstractEventLoop, layer: Any, messages: list[LayerMessage]
) -> None:
    """On `loop`: send after the previous batch sent from this loop (seq order on every layer)."""
    previous = _last_send.get(loop)

    async def send() -> None:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        await _send_all(layer, messages)

    task = loop.create_task(send())
    _last_send[loop] = task
    _pending.add(task)
    task.add_done_callback(_pending.discard)


def _fan_out(messages: list[LayerMessage]) -> None:
    if _sent is not None:
        _sent.extend(messages)
    layer = get_channel_layer()
    if layer is None or not messages:
        return
    try:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        home = getattr(_outbox, "loop", None)
        if loop is not None:
            # Committed from code running inside an event loop's thread: schedule, don't block.
            _send_in_order(loop, layer, messages)
        elif home is not None and not home.is_closed():
            home.call_soon_threadsafe(_send_in_order, home, layer, messages)
        else:
            async_to_sync(_send_all)(layer, messages)
    except Exception:
        # Delivery is best effort: the rows are committed and clients repair gaps from the log.
        logger.exception("live: fan-out of seq %s failed", [m["seq"] for m in messages])


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
        self.topics = [t for t in topics if t in _topics]
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
        self.listeners: dict[str, set[Listener]] = {topic: set() for topic in _topics}
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
    with _texts_lock:
        _texts.clear()
    for hub in list(_hubs.values()):
        for task in (hub.task, hub.rejoin):
            if task is not None:
                with contextlib.suppress(RuntimeError):  # its loop may be closed already
                    task.cancel()
    _hubs.clear()
    _last_send.clear()
    # A fresh channel layer too: channels-redis lets one event loop at a time receive on a layer
    # object, and a finished test's loop may still hold it.
    channel_layers.backends.clear()


state.register("live hubs and texts", _reset)


class capture_broadcasts:
    """Test helper: collect every message fanned out inside the `with` block."""

    def __enter__(self) -> list[LayerMessage]:
        global _sent
        _sent = []
        return _sent

    def __exit__(self, *exc: object) -> None:
        global _sent
        _sent = None
