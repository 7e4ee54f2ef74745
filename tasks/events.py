"""The task domain events: what tasks/actions.py publishes on the `board` topic.

Each event is domain data (ids, fields, before/after, actor), never presentation: the browser
presenter (tasks/presenters.py), agents' event streams and webhooks all read these. The
catalogue with every field is docs/events.md.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from missioncontrol.audit import Actor, ActorData
from tasks.models import Task


class AssigneeData(TypedDict):
    type: Literal["user", "agent"]
    id: int
    name: str


class TaskData(TypedDict):
    """A task as an event carries it (everything its card shows, plus its place)."""

    id: int
    title: str
    status: str
    priority: str
    labels: list[str]
    due_date: str | None
    assignee: AssigneeData | None
    blocked: bool
    blocked_reason: str
    comment_count: int
    cost_usd: str  # what the work on it cost so far (9 decimals)
    version: int
    archived: bool
    url: str
    run_state: str  # its latest run's state ("" if never dispatched)
    run_progress: str  # what the agent of its running run is doing now
    waiting_count: int  # how many of the tasks it waits for are not Done yet


class Change(TypedDict):
    before: Any
    after: Any


class BoardData(TypedDict):
    """Where the card now sits: the task below it in its column (None: at the end, or gone),
    and the counts of the columns the change touched."""

    next_task_id: int | None
    column_counts: dict[str, int]


TaskChangedType = Literal[
    "task.created",
    "task.updated",
    "task.moved",
    "task.reordered",
    "task.blocked",
    "task.unblocked",
    "task.claimed",
    "task.archived",
]


class TaskChanged(TypedDict):
    """A task was created or changed; `changes` holds each changed field's before/after."""

    type: TaskChangedType
    actor: ActorData
    task: TaskData
    changes: dict[str, Change]
    board: BoardData


class TaskDeleted(TypedDict):
    """A task was deleted for good; `task` is how it was."""

    type: Literal["task.deleted"]
    actor: ActorData
    task: TaskData
    board: BoardData


class CommentAuthor(TypedDict):
    type: Literal["user", "agent"]
    name: str
    agent_id: int | None


class CommentData(TypedDict):
    id: int
    author: CommentAuthor
    body: str
    created_at: str


class TaskCommented(TypedDict):
    type: Literal["task.commented"]
    actor: ActorData
    task: TaskData
    comment: CommentData
    board: BoardData


class TaskCost(TypedDict):
    id: int
    cost_usd: str


class TaskCostChanged(TypedDict):
    """What the work on these tasks cost so far changed (usage named them): at most one such
    event a second per process, for every task whose cost moved in it."""

    type: Literal["task.cost_changed"]
    tasks: list[TaskCost]


TaskEvent = TaskChanged | TaskDeleted | TaskCommented | TaskCostChanged
# Fields whose change an event reports (the description's text is included: it is the task).
TRACKED = (
    "title",
    "description",
    "status",
    "priority",
    "labels",
    "due_date",
    "assignee",
    "blocked",
    "blocked_reason",
    "archived",
)


def task_data(task: Task) -> TaskData:
    """The event form of a task (its assignee's name as loaded: joined in on the move path)."""
    assignee: AssigneeData | None = None
    if task.assignee_agent_id:
        assignee = {"type": "agent", "id": task.assignee_agent_id, "name": task.assignee_display}
    elif task.assignee_user_id:
        assignee = {"type": "user", "id": task.assignee_user_id, "name": task.assignee_display}
    return {
        "id": task.pk,
        "title": task.title,
        "status": task.status,
        "priority": task.priority_name,
        "labels": task.label_list,
        "due_date": task.due_date.isoformat() if task.due_date else None,
        "assignee": assignee,
        "blocked": task.blocked,
        "blocked_reason": task.blocked_reason,
        "comment_count": task.comment_count,
        "cost_usd": f"{task.cost:.9f}",
        "version": task.version,
        "archived": task.archived_at is not None,
        "url": f"/tasks/{task.pk}/",
        "run_state": task.run_state,
        "run_progress": task.run_progress,
        "waiting_count": task.waiting_count,
    }


def tracked(task: Task) -> dict[str, Any]:
    """The fields events report changes of, as events show them."""
    data = task_data(task)
    return {
        **{k: data[k] for k in TRACKED if k in data},  # type: ignore[literal-required]
        "description": task.description,
    }


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Change]:
    """Each field whose value differs, with both values."""
    return {
        k: {"before": before.get(k), "after": after[k]}
        for k in after
        if before.get(k) != after.get(k)
    }


def changed(
    event_type: TaskChangedType,
    actor: Actor,
    task: Task,
    delta: dict[str, Change],
    board: BoardData,
) -> TaskChanged:
    return {
        "type": event_type,
        "actor": actor.as_dict(),
        "task": task_data(task),
        "changes": delta,
        "board": board,
    }
