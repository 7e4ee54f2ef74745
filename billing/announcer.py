"""The `usage.recorded` announcer: usage committed anywhere in this process is counted (after
commit) and announced at most once a second as one event — by the ingest writer's chores where
heartbeats land, and by its loop (billing/loops.py) where the gateway connectors run — with the
tasks whose cost it moved set again from the task rollup."""

from __future__ import annotations

import threading
import time
from typing import Literal, TypedDict

from django.db import connection, transaction

from billing import prices, reports
from missioncontrol import live, state
from tasks import actions as task_actions


class UsageRecorded(TypedDict):
    """Usage stored since the last such event (at most one a second per process): what the
    cost pages reload on; `cost_usd` is what it added."""

    type: Literal["usage.recorded"]
    records: int
    cost_usd: str


_pending_lock = threading.Lock()
_pending = [0, 0]  # records, nano-dollars: committed, not yet announced
_pending_tasks: set[int] = set()  # tasks whose cost those records moved
_announced = [0.0]  # monotonic time of the last announcement
ANNOUNCE_EVERY_S = 1.0


def note_usage(
    records: int, nanos: int, tasks: set[int] | None = None, *, late: bool = False
) -> None:
    """Count committed usage for the next costs event, and the tasks it named (after commit: a
    rolled-back batch never moved a number); `late` usage (an import, a backfill) makes this
    process forget the closed spans' costs it keeps."""

    def add() -> None:
        with _pending_lock:
            _pending[0] += records
            _pending[1] += nanos
            _pending_tasks.update(tasks or ())
        if late:
            reports.forget_closed()

    if connection.in_atomic_block:
        transaction.on_commit(add)
    else:
        add()


def announce_usage() -> bool:
    """Publish one `usage.recorded` event for the usage committed since the last one, at most
    once a second. Called by the ingest writer's chores (web processes, where heartbeats land)
    and by a loop (where the gateway connectors run): whichever comes first."""
    with _pending_lock:
        records, nanos = _pending
        if not (records or nanos) or time.monotonic() - _announced[0] < ANNOUNCE_EVERY_S:
            return False
        _pending[0] = _pending[1] = 0
        _announced[0] = time.monotonic()
        tasks = sorted(_pending_tasks)
        _pending_tasks.clear()
    with transaction.atomic():
        event: UsageRecorded = {
            "type": "usage.recorded",
            "records": records,
            "cost_usd": str(prices.from_nanos(nanos)),
        }
        live.publish("costs", event)
    if tasks:
        # Each task's total read again from the task rollup (not added up here): exact
        # whichever process recorded which part, and a reprice's totals stand.
        found = reports.task_costs(tasks)
        task_actions.set_costs({t: found.get(t, 0) for t in tasks})
    return True


def _reset_pending() -> None:
    with _pending_lock:
        _pending[0] = _pending[1] = 0
        _pending_tasks.clear()
        _announced[0] = 0.0


state.register("usage announcements", _reset_pending)
