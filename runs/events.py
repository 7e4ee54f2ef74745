"""The runs' domain events, on the board's topic (who sees a card sees its run). Each carries
the run and the task as the card now shows it, so the presenter renders from the event alone.
The catalogue with every field is docs/events.md."""

from __future__ import annotations

from typing import Literal, TypedDict

from missioncontrol.audit import Actor, ActorData
from runs.models import Run
from tasks import events as task_events
from tasks.models import Task

RunEventType = Literal[
    "task.dispatched",
    "run.started",
    "run.waiting_changed",
    "run.released",
    "run.progress",
    "run.succeeded",
    "run.failed",
    "run.aborted",
    "run.lost",
]


class RunData(TypedDict):
    id: int
    task_id: int
    attempt: int
    agent: str
    state: str
    land_in: str
    created_at: str
    started_at: str | None
    ended_at: str | None
    progress: str
    error_kind: str
    error: str
    input_tokens: int
    output_tokens: int
    cost_usd: str
    url: str
    waiting_on: list[int]  # a queued run's task's blockers not Done yet (it waits for them)


class RunChanged(TypedDict):
    """A run was dispatched, started, moved on or ended (`run.progress`: the browser only,
    coalesced; not sent to webhooks)."""

    type: RunEventType
    actor: ActorData
    run: RunData
    task: task_events.TaskData
    board: task_events.BoardData


def run_data(run: Run) -> RunData:
    return {
        "id": run.pk,
        "task_id": run.task_id,
        "attempt": run.attempt,
        "agent": run.agent_name,
        "state": run.state,
        "land_in": run.land_in,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "ended_at": run.ended_at.isoformat() if run.ended_at else None,
        "progress": run.progress,
        "error_kind": run.error_kind,
        "error": run.error,
        "input_tokens": run.input_tokens,
        "output_tokens": run.output_tokens,
        "cost_usd": f"{run.cost:.9f}",
        "url": f"/tasks/{run.task_id}/#run-{run.pk}",
        "waiting_on": _waiting_on(run),
    }


def _waiting_on(run: Run) -> list[int]:
    """The open tasks a queued run waits for. Its task at hand (a dispatch has it) says when it
    waits for none (Task.waiting_count): no query then."""
    if run.state != Run.State.QUEUED:
        return []
    if Run.task.is_cached(run) and run.task.waiting_count == 0:
        return []
    return sorted(Task.objects.waiting_on(run.task_id).values_list("pk", flat=True))


def changed(
    event_type: RunEventType,
    actor: Actor,
    run: Run,
    task: task_events.TaskData,
    board: task_events.BoardData,
) -> RunChanged:
    return {
        "type": event_type,
        "actor": actor.as_dict(),
        "run": run_data(run),
        "task": task,
        "board": board,
    }
