"""The board's part of the overview (an edge): blocked tasks and tasks waiting in Review as
"Needs attention" items, and the board summary panel."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Case, When
from django.urls import reverse
from django.utils import timezone

from missioncontrol import overview
from missioncontrol.http import parse_int
from missioncontrol.models import AuditEvent
from missioncontrol.overview import Attention, Viewer
from tasks.actions import column_counts
from tasks.models import Task


def _gateway(task: Task) -> Any:
    agent = task.assignee_agent
    return agent.gateway if agent is not None and agent.gateway_id else None


def _attention(viewer: Viewer, rows: Any, item: Any) -> list[Attention]:
    """`item(task, gateway)` for each task the viewer sees, up to the viewer's limit."""
    found = []
    rows = rows.filter(viewer.gateway_q("assignee_agent__gateway"))
    for task in rows.select_related("assignee_agent__gateway")[: viewer.limit]:
        gateway = _gateway(task)
        if viewer.sees(gateway.pk if gateway else None):
            found.append(item(task, gateway))
            if len(found) >= viewer.limit:
                break
    return found


def blocked(viewer: Viewer) -> list[Attention]:
    more = reverse("tasks:board") + "?blocked=1"

    def item(task: Task, gateway: Any) -> Attention:
        since = task.blocked_at or task.updated_at
        return Attention(
            key=overview.occurrence("task.blocked", task.pk, since),
            kind="Blocked",
            severity=overview.STUCK,
            title=f"#{task.pk} {task.title}",
            detail=task.blocked_reason,
            url=reverse("tasks:detail", args=[task.pk]),
            since=since,
            gateway=gateway,
            action="Open task",
            more_url=more,
            more_label="blocked tasks",
        )

    rows = (
        Task.objects.filter(blocked=True, archived_at__isnull=True)
        .exclude(status=Task.Status.DONE)
        .order_by("blocked_at", "pk")
    )
    return _attention(viewer, rows, item)


def in_review(viewer: Viewer) -> list[Attention]:
    more = reverse("tasks:list") + "?status=review"

    def item(task: Task, gateway: Any) -> Attention:
        return Attention(
            key=f"task.review:{task.pk}:{task.version}",
            kind="In review",
            severity=overview.WAITING,
            title=f"#{task.pk} {task.title}",
            detail=f"by {task.assignee_display}" if task.assignee_display else "",
            url=reverse("tasks:detail", args=[task.pk]),
            since=task.updated_at,
            gateway=gateway,
            action="Review",
            more_url=more,
            more_label="tasks in review",
        )

    rows = Task.objects.filter(
        status=Task.Status.REVIEW, archived_at__isnull=True, blocked=False
    ).order_by("position", "pk")
    return _attention(viewer, rows, item)


def board_summary(viewer: Viewer) -> dict[str, Any]:
    counts = column_counts()
    cut = timezone.now() - timedelta(hours=1)
    # Moves in the last hour, through two index ranges: the first audit row of the hour (by
    # time), then task.moved rows from it (by verb and id) — never a scan of the whole trail.
    first = (
        AuditEvent.objects.filter(created_at__gte=cut).order_by("id").values_list("id", flat=True)
    ).first()
    moved = (
        AuditEvent.objects.filter(verb="task.moved", id__gte=first).count()
        if first is not None
        else 0
    )
    columns = [(status, label, counts.get(status, 0)) for status, label in Task.Status.choices]
    open_ = sum(n for status, n in counts.items() if status != Task.Status.DONE)
    return {"columns": columns, "moved_last_hour": moved, "open": open_}


def find_tasks(viewer: Viewer, text: str) -> list[overview.Found]:
    rows = Task.objects.filter(archived_at__isnull=True)
    pk = parse_int(text.lstrip("#"))
    rows = rows.filter(pk=pk) if pk is not None else rows.search(text)
    labels = dict(Task.Status.choices)
    # Open work first, then done; the latest changed first within each.
    done_last = Case(When(status=Task.Status.DONE, then=1), default=0)
    return [
        overview.Found(
            "Task", f"#{t.pk} {t.title}", reverse("tasks:detail", args=[t.pk]), labels[t.status]
        )
        for t in rows.order_by(done_last, "-updated_at", "-id")[:6]
    ]


def register() -> None:
    overview.register_search("tasks", find_tasks)
    overview.register_attention("tasks.blocked", blocked, topics=("board",), notify="run")
    overview.register_attention("tasks.review", in_review, topics=("board",), notify="review")
    overview.register_panel(
        overview.Panel("board", 40, "tasks/_overview_board.html", board_summary),
        topics=("board",),
    )
