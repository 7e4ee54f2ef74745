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
import json
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NotRequired, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import channel_layers, get_channel_layer
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from missioncontrol import state
from missioncontrol.db import bulk
from missioncontrol.models import LiveEvent
from missioncontrol.roles import Role

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


# Fan-out tasks kept alive, and per-thread pending batch.
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


def _caller_loop_stopped() -> bool:
    """This thread runs sync_to_async work for a loop that is no longer running."""
    from asgiref.sync import SyncToAsync

    main = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    return main is not None and (main.is_closed() or not main.is_running())


def _fan_out(messages: list[LayerMessage]) -> None:
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
        elif _caller_loop_stopped():
            # A thread a loop handed this work to (sync_to_async) whose loop has stopped since
            # (its task was cancelled at shutdown; the thread ran on): async_to_sync would wait
            # forever for that loop, and with it every later call on this thread. Nobody on
            # that loop listens any more; the rows are committed and the log has the events.
            logger.info("live: seq %s not fanned out: its loop stopped", messages[0]["seq"])
        else:
            async_to_sync(_send_all)(layer, messages)
    except Exception:
        # Delivery is best effort: the rows are committed and clients repair gaps from the log.
        logger.exception("live: fan-out of seq %s failed", [m["seq"] for m in messages])


def _reset() -> None:
    with _texts_lock:
        _texts.clear()
    _last_send.clear()
    # A fresh channel layer too: channels-redis lets one event loop at a time receive on a layer
    # object, and a finished test's loop may still hold it.
    channel_layers.backends.clear()


state.register("live hubs and texts", _reset)
