"""The webhook outbox (core): every published event a subscribed endpoint wants becomes a
Delivery row in the publishing transaction itself, so nothing owed is lost if the process dies
after commit, and nothing is sent for a change that rolled back. With no endpoint enabled it
costs no query (the endpoint list is cached per process)."""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from missioncontrol.cached import Reloaded
from missioncontrol.models import LiveEvent
from webhooks.models import Delivery, Endpoint

# The event types an endpoint can subscribe to (docs/events.md has their fields): every domain
# event but NOT_SENT, plus the two derived from `gateway.state_changed` and the test.
# tests/missioncontrol/test_event_catalogue.py keeps this, the apps' registered types and the
# catalogue's text equal.
NOT_SENT = {
    "agent.seen": "every heartbeat",
    "session.message": "transcript lines, streamed",
    "audit.recorded": "the activity feed's copy of other events",
    "webhook.deliveries_changed": "deliveries themselves (one would feed itself)",
    "run.progress": "a run's live progress, coalesced for browsers",
    "notification.messages_changed": "notification messages themselves (their history pages)",
}
CATALOGUE: dict[str, str] = {
    "task.created": "a task was created",
    "task.updated": "a task's fields were edited",
    "task.moved": "a task went to another column",
    "task.reordered": "a task moved within its column",
    "task.blocked": "a task was blocked, with a reason",
    "task.unblocked": "a task was unblocked",
    "task.claimed": "an agent took an unassigned task",
    "task.archived": "a task was taken off the board",
    "task.commented": "a comment was added to a task",
    "task.deleted": "a task was deleted for good",
    "task.cost_changed": "what the work on tasks cost moved",
    "task.dispatched": "a task was handed to its agent (a run was queued)",
    "run.started": "an agent started a run",
    "run.waiting_changed": "a task a queued run waits for was done (or reopened): `run.waiting_on` is what it still waits for",
    "run.released": "an agent gave a run back before it ended: queued again",
    "run.succeeded": "a run succeeded: its reply is on the task, which moved on",
    "run.failed": "a run failed: the task is blocked with the reason",
    "run.aborted": "an operator aborted a run",
    "run.lost": "a run's agent stopped reporting and its lease ran out",
    "pipeline.saved": "an admin created a pipeline or saved a new version of it",
    "pipeline.run_started": "a pipeline run started",
    "pipeline.step_started": "a pipeline step's task was handed to its agent",
    "pipeline.step_finished": "a pipeline step succeeded, failed, was skipped or cancelled",
    "pipeline.run_finished": "a pipeline run ended (succeeded, failed or cancelled)",
    "pipeline.run_changed": "a pipeline run changed otherwise (a retry, an approval asked, run again)",
    "approval.requested": "a pipeline step waits for a person's approval",
    "approval.resolved": "an approval was answered (by a person or its timeout)",
    "agent_ask.requested": "an agent asks a person before it goes on (over MCP)",
    "agent_ask.resolved": "an agent's question was answered (approved, rejected) or expired",
    "agent.registered": "an agent registered itself",
    "agent.created": "someone created an agent",
    "agent.status_changed": "an agent's status changed",
    "session.changed": "a gateway session appeared, changed or went",
    "session.run_ended": "a run in a gateway session ended",
    "gateway.added": "an admin added a gateway",
    "gateway.updated": "an admin changed a gateway",
    "gateway.deleted": "an admin deleted a gateway",
    "gateway.state_changed": "a gateway's connection state, error or health changed",
    "gateway.grant_changed": "an admin granted someone a gateway, or took it away",
    "exec_approval.requested": "a gateway's agent asks to run a command (an exec approval)",
    "exec_approval.resolved": "an exec approval was answered (here, on its gateway, or by its expiry)",
    "gateway.connected": "a gateway's connection came up",
    "gateway.disconnected": "a gateway's connection was lost or refused",
    "cron.late": "a scheduled job's expected run did not come within its grace period",
    "cron.failed": "a scheduled job failed its threshold of runs in a row",
    "cron.recovered": "a late or failing scheduled job ran fine again",
    "cron.run_started": "a scheduled job's run started",
    "cron.run_finished": "a scheduled job's run finished (ok, failed or skipped)",
    "cron.job_changed": "a scheduled job appeared or changed (schedule, state, health)",
    "cron.job_removed": "a scheduled job was removed",
    "usage.recorded": "usage was stored (at most one a second per process)",
    "budget.threshold_crossed": "a budget reached one of its thresholds",
    "budget.pause_lifted": "an admin let a spent budget's agents work on",
    "budget.alert_acknowledged": "a budget alert was acknowledged",
    "budget.saved": "an admin added or changed a budget",
    "budget.deleted": "an admin deleted a budget",
    "webhook.endpoint_saved": "an admin added or changed an endpoint",
    "webhook.endpoint_deleted": "an admin deleted an endpoint",
    "webhook.endpoint_disabled": "an endpoint kept failing and was disabled",
    "webhook.test": "a test an admin sent (to one endpoint)",
    "notification.channel_saved": "a notification channel was added or changed",
    "notification.channel_deleted": "a notification channel was deleted",
    "notification.channel_disabled": "a notification channel kept failing and was disabled",
}
TEST = "webhook.test"


def _load() -> list[tuple[int, tuple[str, ...]]]:
    return [
        (pk, tuple(types))
        for pk, types in Endpoint.objects.filter(enabled=True).values_list("pk", "event_types")
    ]


# The enabled endpoints and their patterns: this process forgets them on any change, others
# within a second.
_endpoints = Reloaded("webhook endpoints", _load, ttl_s=1.0)


class Wakeup:
    """Set after a commit that queued deliveries (from any thread: commits run on database
    threads); the dispatcher loop of this process listens and looks at once."""

    def __init__(self) -> None:
        self._flag = threading.Event()
        self._listeners: list[Callable[[], None]] = []

    def set(self) -> None:
        self._flag.set()
        for listener in list(self._listeners):
            listener()

    def clear(self) -> None:
        self._flag.clear()

    def is_set(self) -> bool:
        return self._flag.is_set()

    def listen(self, listener: Callable[[], None]) -> Callable[[], None]:
        """`listener()` on every set (quick, thread-safe); returns what stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)


woken = Wakeup()


def webhook_types(event: LiveEvent) -> list[str]:
    """The webhook types an event is delivered as: its own, if in the catalogue, and for a
    gateway's state change `gateway.connected` / `gateway.disconnected` when it came up or
    went down."""
    types = [event.type] if event.type in CATALOGUE and event.type != TEST else []
    if event.type == "gateway.state_changed":
        payload: dict[str, Any] = event.payload or {}
        after = (payload.get("gateway") or {}).get("state")
        before = payload.get("before")
        if after == "connected" and before != "connected":
            types.append("gateway.connected")
        elif before == "connected" and after != "connected":
            types.append("gateway.disconnected")
    return types


def body(event_type: str, when: Any, data: dict[str, Any]) -> dict[str, Any]:
    """What a delivery sends: {type, timestamp, data} (the domain event's fields)."""
    return {
        "type": event_type,
        "timestamp": when.isoformat(),
        "data": {k: v for k, v in data.items() if k != "type"},
    }


def matches(patterns: tuple[str, ...] | list[str], event_type: str) -> bool:
    return any(fnmatch.fnmatchcase(event_type, p) for p in patterns)


def enqueue(events: list[LiveEvent]) -> None:
    """The live log's sink: a Delivery for each event × enabled endpoint that wants it, in the
    caller's transaction."""
    endpoints = _endpoints.get()
    if not endpoints:
        return
    now = timezone.now()
    deliveries = [
        Delivery(
            endpoint_id=pk,
            event_seq=event.seq,
            event_type=event_type,
            payload=body(event_type, event.created_at, event.payload or {}),
            next_attempt_at=now,
            created_at=now,
        )
        for event in events
        for event_type in webhook_types(event)
        for pk, patterns in endpoints
        if matches(patterns, event_type)
    ]
    if deliveries:
        Delivery.objects.bulk_create(deliveries)
        transaction.on_commit(woken.set)
