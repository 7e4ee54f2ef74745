"""The notifications' evaluator (an edge: a clock and the event log, turned into actions): it
looks at Needs attention as a whole when something the overview listens to changed (a commit
of this process at once; another process's within POLL_S, read from the event log) and every
EVALUATE_EVERY_S regardless, records the transitions, and flushes what is due."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from channels.db import database_sync_to_async
from django.db import transaction

from missioncontrol import overview
from missioncontrol.models import LiveEvent
from missioncontrol.supervisor import register_loop
from notifications import actions, rules
from webhooks.outbox import Wakeup

db = database_sync_to_async
POLL_S = 1.0  # other processes' events, and transitions coming due
EVALUATE_EVERY_S = 30.0  # a full look even when nothing announced a change
SETTLE_S = 0.2  # after a change, let the rest of its burst land (fifty agents: one message)
MIN_GAP_S = 1.0  # a fleet that never stops changing costs at most one look a second
# Events that never raise or clear an item (heartbeats, streamed text, progress, spend ticks,
# comments, the activity feed's copies): on a busy fleet they come many times a second.
CHATTY = frozenset(
    {
        "agent.seen",
        "session.message",
        "run.progress",
        "task.cost_changed",
        "task.commented",
        "task.reordered",
        "usage.recorded",
        "audit.recorded",
        "webhook.deliveries_changed",
        "notification.messages_changed",
    }
)

changed = Wakeup()  # set after a commit of this process that published on a watched topic


def sink(events: list[Any]) -> None:
    """The live log's sink: a commit that touches what the overview shows wakes the
    evaluator (registered by the app when this process evaluates)."""
    watched = set(overview.topics())
    if any(event.topic in watched and event.type not in CHATTY for event in events):
        transaction.on_commit(changed.set)


def newest_seq() -> int:
    row = LiveEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
    return int(row or 0)


def watched_since(seq: int) -> int | None:
    """The newest event after `seq` on a watched topic (another process's change), or None."""
    row = (
        LiveEvent.objects.filter(seq__gt=seq, topic__in=overview.topics())
        .exclude(type__in=CHATTY)
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )
    return int(row) if row is not None else None


def evaluate_now() -> actions.Evaluated | None:
    """One look at Needs attention — at the kinds some rule wants (none: no look at all, the
    way most installations start) — its transitions recorded."""
    wanted = rules.wanted_kinds()
    if not wanted:
        return None
    standing, failed = overview.standing(kinds=wanted)
    return actions.evaluate(standing, failed)


async def evaluator_loop() -> None:
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()

    def poke() -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(wake.set)

    stop = changed.listen(poke)
    seq = await db(newest_seq)()
    looked = 0.0
    try:
        while True:
            wake.clear()
            local = changed.is_set()
            changed.clear()
            newer = await db(watched_since)(seq)
            if newer is not None:
                seq = newer
            if local or newer is not None or time.monotonic() - looked >= EVALUATE_EVERY_S:
                await asyncio.sleep(max(SETTLE_S, looked + MIN_GAP_S - time.monotonic()))
                changed.clear()
                seq = max(seq, await db(newest_seq)())
                looked = time.monotonic()
                await db(evaluate_now)()
            await db(actions.flush)()
            if changed.is_set():
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), POLL_S)
    finally:
        stop()


def register() -> None:
    register_loop("notification-evaluator", evaluator_loop, restart="always")
