"""The board's presenter: task events (tasks/events.py) as DOM ops for browsers.

Runs after commit, once per event, from the event's data alone (no query), so a tab that
replays missed events gets exactly the ops the live push had. Cards are rendered through the
card cache (tasks/cards.py): a move never renders a card again.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any, get_args

from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from missioncontrol import live
from missioncontrol.templatetags.mc import money
from tasks import events
from tasks.cards import card_key, render_keyed
from tasks.models import Comment, Task

_PRIORITY = {label.lower(): value for value, label in Task.Priority.choices}


def card_task(data: events.TaskData) -> Task:
    """An unsaved Task carrying what the card shows (never saved)."""
    assignee: dict[str, Any] = dict(data["assignee"] or {})
    task = Task(
        pk=data["id"],
        title=data["title"],
        status=data["status"],
        priority=_PRIORITY.get(data["priority"], Task.Priority.NORMAL),
        labels=f",{','.join(data['labels'])}," if data["labels"] else "",
        due_date=datetime.date.fromisoformat(data["due_date"]) if data["due_date"] else None,
        assignee_user_id=assignee.get("id") if assignee.get("type") == "user" else None,
        assignee_agent_id=assignee.get("id") if assignee.get("type") == "agent" else None,
        blocked=data["blocked"],
        blocked_reason=data["blocked_reason"],
        comment_count=data["comment_count"],
        cost_nanos=cost_nanos(data),
        version=data["version"],
        run_state=data.get("run_state", ""),
        run_progress=data.get("run_progress", ""),
        waiting_count=data.get("waiting_count", 0),
    )
    task.assignee_name = assignee.get("name", "")  # type: ignore[attr-defined]
    return task


def cost_nanos(data: events.TaskData) -> int:
    """The task's cost in nano-dollars (0 in events logged before tasks carried one)."""
    return int(Decimal(data.get("cost_usd") or 0).scaleb(9))


def card_html(data: events.TaskData) -> str:
    """The card from the event's data (a Task is built only when the card cache misses)."""
    assignee: dict[str, Any] = dict(data["assignee"] or {})
    kind = assignee.get("type")
    key = card_key(
        data["id"],
        data["title"],
        _PRIORITY.get(data["priority"], Task.Priority.NORMAL),
        data["blocked"],
        data["blocked_reason"],
        f",{','.join(data['labels'])}," if data["labels"] else "",
        assignee.get("id") if kind == "agent" else None,
        assignee.get("id") if kind == "user" else None,
        assignee.get("name", ""),
        datetime.date.fromisoformat(data["due_date"]) if data["due_date"] else None,
        data["status"] == Task.Status.DONE,
        data["comment_count"],
        cost_nanos(data),
        data.get("run_state", ""),
        data.get("run_progress", ""),
        data.get("waiting_count", 0),
    )
    return render_keyed(key, data["version"], data["status"], lambda: card_task(data))


def card_ops(data: events.TaskData, board: events.BoardData, gone: bool = False) -> list[live.Op]:
    """Where the card now is (or that it left the board), and the touched columns' counts."""
    ops: list[live.Op]
    if gone or data["archived"]:
        ops = [{"op": "remove", "id": f"task-{data['id']}"}]
    else:
        nxt = board["next_task_id"]
        ops = [
            {
                "op": "upsert",
                "id": f"task-{data['id']}",
                "parent": f"col-{data['status']}-list",
                "before": f"task-{nxt}" if nxt else None,
                "html": str(card_html(data)),
            }
        ]
    ops += [
        {"op": "text", "id": f"count-{status}", "text": f"{n:,}"}
        for status, n in board["column_counts"].items()
    ]
    return ops


@live.presents(*get_args(events.TaskChangedType))
def task_changed(event: dict[str, Any]) -> live.BrowserPayload:
    return {"ops": card_ops(event["task"], event["board"])}


@live.presents("task.deleted")
def task_deleted(event: dict[str, Any]) -> live.BrowserPayload:
    return {"ops": card_ops(event["task"], event["board"], gone=True)}


@live.presents("task.commented")
def task_commented(event: dict[str, Any]) -> live.BrowserPayload:
    data: events.CommentData = event["comment"]
    comment = Comment(
        pk=data["id"],
        task_id=event["task"]["id"],
        author_label=data["author"]["name"],
        author_agent_id=data["author"]["agent_id"],
        body=data["body"],
        created_at=_when(data["created_at"]),
    )
    html = render_to_string("tasks/detail.html#comment", {"comment": comment})
    ops: list[live.Op] = [
        {
            "op": "upsert",
            "id": f"comment-{data['id']}",
            "parent": f"comments-{event['task']['id']}",
            "html": html,
        }
    ]
    return {"ops": ops + card_ops(event["task"], event["board"])}


@live.presents("task.cost_changed")
def task_cost_changed(event: dict[str, Any]) -> live.BrowserPayload:
    ops: list[live.Op] = [
        {"op": "text", "id": f"cost-task-{t['id']}", "text": money(Decimal(t["cost_usd"]))}
        for t in event["tasks"]
    ]
    return {"ops": ops}


def _when(text: str) -> datetime.datetime:
    return parse_datetime(text) or timezone.now()
