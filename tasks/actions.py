"""Every write to tasks and comments: one transaction, an audit row, a live event.

Views, the agent API and commands call these; nothing else writes to tasks.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F, Max, Min
from django.template.loader import render_to_string
from django.utils import timezone

from agents.models import Agent
from missioncontrol import audit, live
from missioncontrol.audit import Actor
from tasks.cards import render_card
from tasks.models import POSITION_STEP, Comment, Task

MAX_LABELS = 10
LABEL_RE = re.compile(r"^[\w.:-]{1,32}$")


class TaskError(ValidationError):
    """Bad input for a task action: a message per field (shown as form errors / 400)."""


class AlreadyClaimed(Exception):
    """Someone else holds the task (409)."""


class StaleTask(Exception):
    """The task changed since the client saw it (409): the client should take the new state."""

    def __init__(self, task: Task) -> None:
        super().__init__(f"Task #{task.pk} was changed by someone else.")
        self.task = task


@dataclass(frozen=True)
class Assignee:
    user_id: int | None = None
    agent_id: int | None = None


# --- Parsing helpers shared by forms and the API ---------------------------------------------


def parse_labels(raw: str | list[str] | None) -> str:
    """Labels as the stored ",a,b," form; raises TaskError for bad ones."""
    if raw is None:
        return ""
    items = raw if isinstance(raw, list) else re.split(r"[,\s]+", raw)
    labels: list[str] = []
    for item in items:
        label = str(item).strip().lower().lstrip("#")
        if not label:
            continue
        if not LABEL_RE.match(label):
            raise TaskError(
                {
                    "labels": [
                        f"“{label[:40]}” is not a label: use up to 32 letters, digits, '-', '_', '.', ':'."
                    ]
                }
            )
        if label not in labels:
            labels.append(label)
    if len(labels) > MAX_LABELS:
        raise TaskError({"labels": [f"At most {MAX_LABELS} labels."]})
    return f",{','.join(labels)}," if labels else ""


def parse_assignee(raw: str | None) -> Assignee:
    """'user:<id>' / 'agent:<id>' / '' to an Assignee; raises TaskError if it does not exist."""
    if not raw:
        return Assignee()
    kind, _, ident = raw.partition(":")
    if not ident.isdigit() or kind not in {"user", "agent"}:
        raise TaskError({"assignee": ["Choose a person or an agent from the list."]})
    pk = int(ident)
    if kind == "user":
        if not get_user_model().objects.filter(pk=pk, is_active=True).exists():
            raise TaskError({"assignee": ["That person does not exist (any more)."]})
        return Assignee(user_id=pk)
    if not Agent.objects.filter(pk=pk).exists():
        raise TaskError({"assignee": ["That agent does not exist (any more)."]})
    return Assignee(agent_id=pk)


def _check_status(status: str) -> str:
    if status not in Task.Status.values:
        raise TaskError({"status": [f"“{status}” is not a column."]})
    return status


def _clean_title(title: str) -> str:
    title = (title or "").strip()
    if not title:
        raise TaskError({"title": ["A task needs a title."]})
    if len(title) > 200:
        raise TaskError({"title": ["Keep the title under 200 characters."]})
    return title


# --- Positions ----------------------------------------------------------------------------


def _renumber(status: str) -> None:
    """Spread a column's positions POSITION_STEP apart (inside the caller's transaction)."""
    ids = list(Task.objects.on_board().in_column(status).values_list("id", flat=True))
    for index, task_id in enumerate(ids, start=1):
        Task.objects.filter(pk=task_id).update(position=index * POSITION_STEP)


def _position_before(status: str, before_id: int | None, moving_id: int | None) -> int:
    """A position that puts a task just above `before_id` (or at the end) in `status`."""
    column = Task.objects.on_board().filter(status=status)
    if moving_id is not None:
        column = column.exclude(pk=moving_id)
    if before_id is None:
        last = column.aggregate(m=Max("position"))["m"]
        return (last or 0) + POSITION_STEP
    before = column.filter(pk=before_id).values_list("position", flat=True).first()
    if before is None:
        raise TaskError(
            {"before": ["That card is no longer in this column; the board has been refreshed."]}
        )
    above = column.filter(position__lt=before).aggregate(m=Max("position"))["m"]
    low = above if above is not None else before - 2 * POSITION_STEP
    if before - low >= 2:
        return (low + before) // 2
    # No integer left between the neighbours: renumber the column, then take the midpoint.
    _renumber(status)
    return _position_before(status, before_id, moving_id)


def _top_position(status: str) -> int:
    first = Task.objects.on_board().filter(status=status).aggregate(m=Min("position"))["m"]
    return (first if first is not None else POSITION_STEP) - POSITION_STEP


# --- Broadcast ------------------------------------------------------------------------------


def column_counts(statuses: list[str] | None = None) -> dict[str, int]:
    qs = Task.objects.on_board()
    if statuses:
        qs = qs.filter(status__in=statuses)
    counts = dict.fromkeys(statuses or Task.Status.values, 0)
    for row in qs.values("status").annotate(n=Count("id")).order_by():
        counts[row["status"]] = row["n"]
    return counts


def _next_card_id(task: Task) -> int | None:
    return (
        Task.objects.on_board()
        .filter(status=task.status)
        .filter(position__gt=task.position)
        .order_by("position", "id")
        .values_list("id", flat=True)
        .first()
    )


def _publish_card(event: str, task_id: int, statuses: set[str]) -> None:
    """Tell every board where the card now is (or that it is gone) and the new counts."""
    ops: list[live.Op] = []
    task = Task.objects.for_cards().filter(pk=task_id, archived_at__isnull=True).first()
    if task is None:
        ops.append({"op": "remove", "id": f"task-{task_id}"})
    else:
        html = str(render_card(task))
        ops.append(
            {
                "op": "upsert",
                "id": f"task-{task.pk}",
                "parent": f"col-{task.status}-list",
                "before": f"task-{nxt}" if (nxt := _next_card_id(task)) else None,
                "html": html,
            }
        )
        statuses.add(task.status)
    for status, count in column_counts(sorted(statuses)).items():
        ops.append({"op": "text", "id": f"count-{status}", "text": str(count)})
    live.publish(event, "board", {"task": task_id, "ops": ops})


def _snapshot(task: Task) -> dict[str, Any]:
    return {
        "title": task.title,
        "status": task.status,
        "priority": task.get_priority_display(),
        "labels": task.label_list,
        "due_date": task.due_date.isoformat() if task.due_date else None,
        "assignee": str(task.assignee) if task.assignee else None,
        "blocked": task.blocked,
        "blocked_reason": task.blocked_reason,
    }


def _diff(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


def _lock(task_id: int) -> Task:
    # select_for_update: row lock on PostgreSQL; on SQLite the IMMEDIATE transaction already
    # holds the database's single write lock.
    try:
        return (
            Task.objects.select_for_update()
            .select_related("assignee_user", "assignee_agent")
            .get(pk=task_id)
        )
    except Task.DoesNotExist:
        raise TaskError({"task": ["That task does not exist (any more)."]}) from None


def _check_version(task: Task, expected: int | None) -> None:
    if expected is not None and task.version != expected:
        raise StaleTask(task)


# --- Actions --------------------------------------------------------------------------------


def create_task(
    actor: Actor,
    *,
    title: str,
    description: str = "",
    status: str = Task.Status.INBOX,
    priority: int = Task.Priority.NORMAL,
    labels: str | list[str] | None = None,
    due_date: datetime.date | None = None,
    assignee: str | Assignee | None = None,
) -> Task:
    """Create a task at the bottom of its column (Inbox unless chosen)."""
    title = _clean_title(title)
    _check_status(status)
    if priority not in Task.Priority.values:
        raise TaskError({"priority": ["Choose urgent, high, normal or low."]})
    stored_labels = parse_labels(labels)
    who = assignee if isinstance(assignee, Assignee) else parse_assignee(assignee)
    with transaction.atomic():
        task = Task.objects.create(
            title=title,
            description=description or "",
            status=status,
            position=_top_position(status)
            if status == Task.Status.DONE
            else _position_before(status, None, None),
            priority=priority,
            labels=stored_labels,
            due_date=due_date,
            assignee_user_id=who.user_id,
            assignee_agent_id=who.agent_id,
            created_by_id=actor.user_id,
            completed_at=timezone.now() if status == Task.Status.DONE else None,
        )
        shown = {k: v for k, v in _snapshot(task).items() if v not in (None, "", [], False)}
        audit.record(actor, "task.created", task, after=shown)
        _publish_card("task.created", task.pk, {task.status})
    return task


def move_task(
    actor: Actor,
    task_id: int,
    *,
    to_status: str,
    before_id: int | None = None,
    expected_version: int | None = None,
) -> Task:
    """Put a task in `to_status` just above `before_id` (or at the end; Done: at the top)."""
    _check_status(to_status)
    with transaction.atomic():
        task = _lock(task_id)
        if task.archived_at is not None:
            raise TaskError({"task": ["That task is archived."]})
        _check_version(task, expected_version)
        if before_id == task.pk:
            raise TaskError({"before": ["A card cannot go above itself."]})
        old_status = task.status
        if to_status == Task.Status.DONE and before_id is None and old_status != Task.Status.DONE:
            position = _top_position(to_status)
        else:
            position = _position_before(to_status, before_id, task.pk)
        completed_at = task.completed_at
        if to_status == Task.Status.DONE and old_status != Task.Status.DONE:
            completed_at = timezone.now()
        elif to_status != Task.Status.DONE:
            completed_at = None
        Task.objects.filter(pk=task.pk).update(
            status=to_status,
            position=position,
            completed_at=completed_at,
            version=F("version") + 1,
            updated_at=timezone.now(),
        )
        task.refresh_from_db()
        verb = "task.moved" if old_status != to_status else "task.reordered"
        audit.record(actor, verb, task, before={"status": old_status}, after={"status": to_status})
        _publish_card(verb, task.pk, {old_status, to_status})
    return task


EDITABLE = ("title", "description", "priority", "labels", "due_date", "assignee", "status")


def update_task(
    actor: Actor, task_id: int, changes: dict[str, Any], *, expected_version: int | None = None
) -> Task:
    """Change any of EDITABLE; a status change moves the card to the end of that column."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise TaskError({k: ["This field cannot be changed here."] for k in sorted(unknown)})
    fields: dict[str, Any] = {}
    if "title" in changes:
        fields["title"] = _clean_title(changes["title"])
    if "description" in changes:
        fields["description"] = changes["description"] or ""
    if "priority" in changes:
        if changes["priority"] not in Task.Priority.values:
            raise TaskError({"priority": ["Choose urgent, high, normal or low."]})
        fields["priority"] = changes["priority"]
    if "labels" in changes:
        fields["labels"] = parse_labels(changes["labels"])
    if "due_date" in changes:
        fields["due_date"] = changes["due_date"]
    if "assignee" in changes:
        who = (
            changes["assignee"]
            if isinstance(changes["assignee"], Assignee)
            else parse_assignee(changes["assignee"])
        )
        fields["assignee_user_id"] = who.user_id
        fields["assignee_agent_id"] = who.agent_id
    new_status = _check_status(changes["status"]) if "status" in changes else None
    with transaction.atomic():
        task = _lock(task_id)
        _check_version(task, expected_version)
        before = _snapshot(task)
        old_status = task.status
        if new_status is not None and new_status != old_status:
            fields["status"] = new_status
            fields["position"] = (
                _top_position(new_status)
                if new_status == Task.Status.DONE
                else _position_before(new_status, None, task.pk)
            )
            fields["completed_at"] = timezone.now() if new_status == Task.Status.DONE else None
        if fields:
            Task.objects.filter(pk=task.pk).update(
                **fields, version=F("version") + 1, updated_at=timezone.now()
            )
        task = Task.objects.for_cards().get(pk=task.pk)
        old, new = _diff(before, _snapshot(task))
        if new:
            audit.record(actor, "task.updated", task, before=old, after=new)
            _publish_card("task.updated", task.pk, {old_status, task.status})
    return task


def set_blocked(
    actor: Actor,
    task_id: int,
    *,
    blocked: bool,
    reason: str = "",
    expected_version: int | None = None,
) -> Task:
    """Mark a task blocked (a reason is required) or unblock it."""
    reason = (reason or "").strip()
    if blocked and not reason:
        raise TaskError({"blocked_reason": ["Say what it is blocked on."]})
    if len(reason) > 500:
        raise TaskError({"blocked_reason": ["Keep the reason under 500 characters."]})
    with transaction.atomic():
        task = _lock(task_id)
        _check_version(task, expected_version)
        if task.blocked == blocked and (not blocked or task.blocked_reason == reason):
            return task
        Task.objects.filter(pk=task.pk).update(
            blocked=blocked,
            blocked_reason=reason if blocked else "",
            version=F("version") + 1,
            updated_at=timezone.now(),
        )
        task.refresh_from_db()
        verb = "task.blocked" if blocked else "task.unblocked"
        audit.record(actor, verb, task, after={"blocked_reason": reason} if blocked else None)
        _publish_card(verb, task.pk, {task.status})
    return task


def add_comment(actor: Actor, task_id: int, body: str, *, agent: Agent | None = None) -> Comment:
    """A comment by a person (actor.user_id) or an agent (`agent`)."""
    body = (body or "").strip()
    if not body:
        raise TaskError({"body": ["Write something first."]})
    if len(body) > 20000:
        raise TaskError({"body": ["Keep comments under 20,000 characters."]})
    with transaction.atomic():
        task = _lock(task_id)
        comment = Comment.objects.create(
            task=task,
            author_user_id=actor.user_id,
            author_agent=agent,
            author_label=actor.label,
            body=body,
        )
        Task.objects.filter(pk=task.pk).update(
            comment_count=F("comment_count") + 1, updated_at=timezone.now()
        )
        audit.record(actor, "task.commented", task)
        html = render_to_string("tasks/detail.html#comment", {"comment": comment})
        live.publish(
            "comment.created",
            "board",
            {
                "task": task.pk,
                "ops": [
                    {
                        "op": "upsert",
                        "id": f"comment-{comment.pk}",
                        "parent": f"comments-{task.pk}",
                        "html": html,
                    }
                ],
            },
        )
        _publish_card("task.commented", task.pk, {task.status})
    return comment


def claim_task(actor: Actor, task_id: int, *, agent_id: int) -> Task:
    """An agent takes an unassigned task (or confirms it holds it); atomic under races."""
    with transaction.atomic():
        task = _lock(task_id)
        if task.assignee_agent_id == agent_id:
            return task
        # Conditional update: of two agents claiming at once, exactly one matches.
        taken = Task.objects.filter(
            pk=task.pk,
            assignee_agent__isnull=True,
            assignee_user__isnull=True,
            archived_at__isnull=True,
        ).update(assignee_agent_id=agent_id, version=F("version") + 1, updated_at=timezone.now())
        if taken != 1:
            raise AlreadyClaimed(f"Task #{task.pk} is already assigned to {task.assignee}.")
        task = Task.objects.for_cards().get(pk=task.pk)
        audit.record(actor, "task.claimed", task, after={"assignee": str(task.assignee)})
        _publish_card("task.claimed", task.pk, {task.status})
    return task


def archive_task(actor: Actor, task_id: int) -> Task:
    """Take a task off the board (kept, and listed under archived)."""
    with transaction.atomic():
        task = _lock(task_id)
        if task.archived_at is None:
            Task.objects.filter(pk=task.pk).update(
                archived_at=timezone.now(), version=F("version") + 1, updated_at=timezone.now()
            )
            task.refresh_from_db()
            audit.record(actor, "task.archived", task)
            _publish_card("task.archived", task.pk, {task.status})
    return task


def delete_task(actor: Actor, task_id: int) -> None:
    """Delete a task and its comments for good (admins only; the audit row remains)."""
    with transaction.atomic():
        task = _lock(task_id)
        status = task.status
        audit.record(actor, "task.deleted", task, before=_snapshot(task))
        task.delete()
        _publish_card("task.deleted", task_id, {status})
