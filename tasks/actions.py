"""Every write to tasks and comments: one transaction, an audit row, a live event.

Views, the agent API and commands call these; nothing else writes to tasks.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Count, F
from django.utils import timezone

from agents.models import Agent
from missioncontrol import audit, live
from missioncontrol.audit import Actor
from missioncontrol.db import bulk
from missioncontrol.errors import ActionError, Conflict, Forbidden, Invalid, NotFound
from missioncontrol.http import parse_int
from tasks import events
from tasks.models import POSITION_STEP, Comment, Task

MAX_LABELS = 10
LABEL_RE = re.compile(r"^[\w.:-]{1,32}$")


def stale(task: Task) -> Conflict:
    """The task changed since the client saw it (409): the answer carries the current state."""
    return Conflict(
        "Someone else changed this task just now; the board shows the latest state.",
        task={"id": task.pk, "status": task.status, "version": task.version},
    )


@dataclass(frozen=True)
class Assignee:
    user_id: int | None = None
    agent_id: int | None = None


# --- Parsing helpers shared by forms and the API ---------------------------------------------


def parse_labels(raw: str | list[str] | None) -> str:
    """Labels as the stored ",a,b," form; raises Invalid for bad ones."""
    if raw is None:
        return ""
    items = raw if isinstance(raw, list) else re.split(r"[,\s]+", raw)
    labels: list[str] = []
    for item in items:
        label = str(item).strip().lower().lstrip("#")
        if not label:
            continue
        if not LABEL_RE.match(label):
            raise Invalid(
                {
                    "labels": [
                        f"“{label[:40]}” is not a label: use up to 32 letters, digits, '-', '_', '.', ':'."
                    ]
                }
            )
        if label not in labels:
            labels.append(label)
    if len(labels) > MAX_LABELS:
        raise Invalid({"labels": [f"At most {MAX_LABELS} labels."]})
    return f",{','.join(labels)}," if labels else ""


def parse_assignee(raw: str | None) -> Assignee:
    """'user:<id>' / 'agent:<id>' / '' to an Assignee; raises Invalid if it does not exist."""
    if not raw:
        return Assignee()
    kind, _, ident = raw.partition(":")
    pk = parse_int(ident, low=1)
    if pk is None or kind not in {"user", "agent"}:
        raise Invalid({"assignee": ["Choose a person or an agent from the list."]})
    if kind == "user":
        if not get_user_model().objects.filter(pk=pk, is_active=True).exists():
            raise Invalid({"assignee": ["That person does not exist (any more)."]})
        return Assignee(user_id=pk)
    if not Agent.objects.filter(pk=pk).exists():
        raise Invalid({"assignee": ["That agent does not exist (any more)."]})
    return Assignee(agent_id=pk)


def _check_status(status: str) -> str:
    if status not in Task.Status.values:
        raise Invalid({"status": [f"“{status}” is not a column."]})
    return status


def _clean_title(title: str) -> str:
    title = (title or "").strip()
    if not title:
        raise Invalid({"title": ["A task needs a title."]})
    if len(title) > 200:
        raise Invalid({"title": ["Keep the title under 200 characters."]})
    return title


# --- Positions ----------------------------------------------------------------------------


def _renumber(status: str) -> None:
    """Spread a column's positions POSITION_STEP apart (inside the caller's transaction)."""
    ids = list(Task.objects.on_board().in_column(status).values_list("id", flat=True))
    for index, task_id in enumerate(ids, start=1):
        Task.objects.filter(pk=task_id).update(position=index * POSITION_STEP)


# Raw SQL for the position lookups (the board's move path runs them hundreds of times a second;
# the ORM's compile step cost more than the queries, which the (status, position) index answers).
TASKS = Task._meta.db_table


def _scalar(sql: str, params: list[Any]) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row else None


# PostgreSQL: positions are read, then written, by concurrent transactions (row locks guard
# only the task that moves), so every write that places a card takes this transaction-level
# lock first. SQLite needs none: IMMEDIATE transactions already hold its single write lock.
BOARD_LOCK = 7243002


def _lock_board() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [BOARD_LOCK])


def _position_before(status: str, before_id: int | None, moving_id: int | None) -> int:
    """A position that puts a task just above `before_id` (or at the end) in `status`."""
    column = f"FROM {TASKS} WHERE status = %s AND archived_at IS NULL AND id != %s"
    base: list[Any] = [status, moving_id or 0]
    if before_id is None:
        last = _scalar(f"SELECT MAX(position) {column}", base)
        return (last or 0) + POSITION_STEP
    # The card's position and its upper neighbour's, in one round trip.
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT b.position, (SELECT MAX(position) {column} AND position < b.position) "  # noqa: S608 - placeholders only
            f"FROM {TASKS} b WHERE b.status = %s AND b.archived_at IS NULL AND b.id != %s "
            "AND b.id = %s",
            [*base, *base, before_id],
        )
        found = cursor.fetchone()
    if found is None:
        raise Invalid(
            {"before": ["That card is no longer in this column; the board has been refreshed."]}
        )
    before, above = found
    low = above if above is not None else before - 2 * POSITION_STEP
    if before - low >= 2:
        return int((low + before) // 2)
    # No integer left between the neighbours: renumber the column, then take the midpoint.
    _renumber(status)
    return _position_before(status, before_id, moving_id)


def _top(status: str) -> tuple[int, int | None]:
    """A position above every card of `status`, and the card then below it."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT position, id FROM {TASKS} WHERE status = %s AND archived_at IS NULL "  # noqa: S608 - placeholders only
            "ORDER BY position, id LIMIT 1",
            [status],
        )
        first = cursor.fetchone()
    if first is None:
        return 0, None
    return int(first[0]) - POSITION_STEP, first[1]


def _top_position(status: str) -> int:
    return _top(status)[0]


# --- Broadcast ------------------------------------------------------------------------------


def column_counts(statuses: list[str] | None = None) -> dict[str, int]:
    wanted = statuses or list(Task.Status.values)
    counts = dict.fromkeys(wanted, 0)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT status, COUNT(*) FROM {TASKS} WHERE archived_at IS NULL "  # noqa: S608 - placeholders only
            f"AND status IN ({', '.join(['%s'] * len(wanted))}) GROUP BY status",
            wanted,
        )
        counts.update(dict(cursor.fetchall()))
    return counts


def _next_card_id(task: Task) -> int | None:
    """The card below this one in its column (where the board inserts it)."""
    return _scalar(
        f"SELECT id FROM {TASKS} WHERE status = %s AND archived_at IS NULL "  # noqa: S608 - placeholders only
        # A row-value comparison (SQLite >= 3.15, PostgreSQL) is a range on the column index.
        "AND (position, id) > (%s, %s) ORDER BY position, id LIMIT 1",
        [task.status, task.position, task.pk],
    )


def _board(task: Task | None, statuses: set[str]) -> events.BoardData:
    """Where the card now sits (None: gone from the board) and the touched columns' counts."""
    on_board = task is not None and task.archived_at is None
    if on_board:
        assert task is not None
        statuses = statuses | {task.status}
    return {
        "next_task_id": _next_card_id(task) if on_board and task is not None else None,
        "column_counts": column_counts(sorted(statuses)),
    }


def board_data(task: Task, statuses: set[str] | None = None) -> events.BoardData:
    """Where the card sits now, for another app's event about it (runs)."""
    return _board(task, statuses or set())


def lock_task(task_id: int) -> Task:
    """The task, row-locked for the caller's transaction (NotFound if gone)."""
    return _lock(task_id)


def _publish_change(
    event_type: events.TaskChangedType,
    actor: Actor,
    task: Task,
    delta: dict[str, events.Change],
    statuses: set[str],
) -> None:
    live.publish("board", events.changed(event_type, actor, task, delta, _board(task, statuses)))


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
            Task.objects.select_for_update(of=("self",), no_key=True)
            .select_related("assignee_user", "assignee_agent")
            .get(pk=task_id)
        )
    except Task.DoesNotExist:
        raise NotFound("That task does not exist (any more).") from None


def _lock_for_move(task_id: int) -> Task:
    """_lock for the board's move path: raw SQL (bulk.load_one), the assignee's name joined in
    (`assignee_name`, what the card shows) instead of the related rows."""
    user_table = get_user_model()._meta.db_table
    loaded = bulk.load_one(
        Task,
        f"FROM {TASKS} t LEFT JOIN {user_table} u ON u.id = t.assignee_user_id "
        f"LEFT JOIN {Agent._meta.db_table} a ON a.id = t.assignee_agent_id WHERE t.id = %s"
        + (" FOR NO KEY UPDATE OF t" if connection.features.has_select_for_update_of else ""),
        [task_id],
        extra=[f"COALESCE(a.name, u.{get_user_model().USERNAME_FIELD}, '')"],
    )
    if loaded is None:
        raise NotFound("That task does not exist (any more).")
    task, extra = loaded
    task.assignee_name = extra[0]  # type: ignore[attr-defined]
    return task


def _check_version(task: Task, expected: int | None) -> None:
    if expected is not None and task.version != expected:
        raise stale(task)


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
    blocked_by: list[int] | None = None,
) -> Task:
    """Create a task at the bottom of its column (Inbox unless chosen), waiting for the tasks
    `blocked_by` (all of it or nothing)."""
    title = _clean_title(title)
    _check_status(status)
    if priority not in Task.Priority.values:
        raise Invalid({"priority": ["Choose urgent, high, normal or low."]})
    stored_labels = parse_labels(labels)
    who = assignee if isinstance(assignee, Assignee) else parse_assignee(assignee)
    with transaction.atomic():
        refuse_new_work(who.agent_id, "Not assigned", "assignee")
        _lock_board()
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
        created = {k: v for k, v in events.tracked(task).items() if v not in (None, "", [], False)}
        _publish_change("task.created", actor, task, events.changes({}, created), {task.status})
        if blocked_by:
            task = set_blocked_by(actor, task.pk, blocked_by)
        _entered(actor, task, "")
    return task


@dataclass
class Move:
    """One card move: `task_id` into `to_status`, just above `before_id` (None: at the end;
    Done: at the top), refused as stale unless the task is still at `expected_version`."""

    actor: Actor
    task_id: int
    to_status: str
    before_id: int | None = None
    expected_version: int | None = None


def move_task(
    actor: Actor,
    task_id: int,
    *,
    to_status: str,
    before_id: int | None = None,
    expected_version: int | None = None,
) -> Task:
    """Put a task in `to_status` just above `before_id` (or at the end; Done: at the top)."""
    result = move_tasks([Move(actor, task_id, to_status, before_id, expected_version)])[0]
    if isinstance(result, Exception):
        raise result
    return result


def move_tasks(
    moves: list[Move], counts_cache: CountsCache | None = None
) -> list[Task | ActionError]:
    """Many moves in one transaction (the board's group-commit path), each as if alone and in
    order: a refused move ActionError is returned in its place and writes nothing.
    Each move gets its audit row and its live event; column counts are counted once (or
    carried forward by `counts_cache`, for a connection that only ever runs this)."""
    results: list[Task | ActionError] = []
    done: list[tuple[Move, Task, str, int | None]] = []
    with transaction.atomic():
        _lock_board()
        for move in moves:
            try:
                task, old_status, next_id = _move_one(move)
            except ActionError as refused:
                results.append(refused)
                continue
            results.append(task)
            done.append((move, task, old_status, next_id))
        if not done:
            return results
        touched = {s for _m, t, old, _o in done for s in (old, t.status)}
        if counts_cache is None:
            counts = column_counts(sorted(touched))
        else:
            deltas: dict[str, int] = dict.fromkeys(touched, 0)
            for _m, task, old_status, _o in done:
                deltas[old_status] -= 1
                deltas[task.status] += 1
            counts = counts_cache.after(touched, deltas)
        verbs = ["task.moved" if old != t.status else "task.reordered" for _m, t, old, _o in done]
        audit.record_many(
            [
                audit.Entry(m.actor, verb, t, before={"status": old}, after={"status": t.status})
                for verb, (m, t, old, _o) in zip(verbs, done, strict=True)
            ]
        )
        published: list[events.TaskChanged] = []
        for verb, (move, task, old_status, next_id) in zip(verbs, done, strict=True):
            shown = {k: counts[k] for k in (old_status, task.status)}
            delta: dict[str, events.Change] = (
                {"status": {"before": old_status, "after": task.status}}
                if old_status != task.status
                else {}
            )
            published.append(
                events.changed(
                    "task.moved" if verb == "task.moved" else "task.reordered",
                    move.actor,
                    task,
                    delta,
                    {"next_task_id": next_id, "column_counts": shown},
                )
            )
        live.publish_many("board", published)
        for move, task, old_status, _next in done:
            if task.status != old_status:
                _entered(move.actor, task, old_status)
    return results


class CountsCache:
    """Column counts carried from one move batch to the next on one SQLite connection (the move
    writer's), instead of counting thousands of index entries per batch.

    Valid only while no other connection has committed: SQLite's `PRAGMA data_version` changes
    exactly then (a connection's own commits leave it alone). It is read inside the batch's
    write transaction, when nobody else can commit, so a later equal value proves nothing
    changed in between. Otherwise (or on other databases) the touched columns are counted."""

    def __init__(self) -> None:
        self.version: tuple[int, int] | None = None
        self.counts: dict[str, int] = {}

    def after(self, touched: set[str], deltas: dict[str, int]) -> dict[str, int]:
        """Counts of the touched columns with this transaction's moves applied."""
        version = _data_version()
        if version is not None and version == self.version and touched <= self.counts.keys():
            counts = {s: self.counts[s] + deltas[s] for s in touched}
            known = {**self.counts, **counts}
        else:
            counts = column_counts(sorted(touched))  # includes this transaction's moves
            known = {**(self.counts if version == self.version else {}), **counts}

        def remember() -> None:
            self.version, self.counts = version, known

        transaction.on_commit(remember)
        return counts


def _data_version() -> tuple[int, int] | None:
    """(this connection, its data_version): a reconnect never matches an older value."""
    if connection.vendor != "sqlite":
        return None
    return id(connection.connection), int(_scalar("PRAGMA data_version", []))


def _move_one(move: Move) -> tuple[Task, str, int | None]:
    """One move inside move_tasks' transaction; everything is checked before anything is written.
    Returns the task, its old column and the card now below it: the one it was put above (no
    query: positions in a column are distinct, and it went just above that card), none at the
    end, the former first card at Done's top. Worked out now, before later moves of the batch."""
    to_status = _check_status(move.to_status)
    task = _lock_for_move(move.task_id)
    if task.archived_at is not None:
        raise Conflict("That task is archived.")
    _check_version(task, move.expected_version)
    if move.before_id == task.pk:
        raise Invalid({"before": ["A card cannot go above itself."]})
    old_status = task.status
    if to_status == Task.Status.DONE and move.before_id is None and old_status != Task.Status.DONE:
        position, next_id = _top(to_status)
    else:
        position, next_id = _position_before(to_status, move.before_id, task.pk), move.before_id
    if to_status == Task.Status.DONE and old_status != Task.Status.DONE:
        task.completed_at = timezone.now()
    elif to_status != Task.Status.DONE:
        task.completed_at = None
    task.status, task.position = to_status, position
    task.version += 1
    task.updated_at = timezone.now()
    ops = connection.ops
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {TASKS} SET status = %s, position = %s, completed_at = %s, version = %s, "  # noqa: S608 - placeholders only
            "updated_at = %s WHERE id = %s",
            [
                task.status,
                task.position,
                ops.adapt_datetimefield_value(task.completed_at),
                task.version,
                ops.adapt_datetimefield_value(task.updated_at),
                task.pk,
            ],
        )
    return task, old_status, next_id


# --- What follows a task into a column ----------------------------------------------------------

# An app that acts when a task enters a column registers here (runs: an agent set to
# auto-dispatch is handed a task of its that enters To do), in the move's transaction; tasks'
# core never imports it. A hook must not raise for what it declines to do.
ColumnHook = Callable[[Actor, Task, str], None]
_column_hooks: dict[str, ColumnHook] = {}


def register_column_hook(name: str, hook: ColumnHook) -> None:
    _column_hooks[name] = hook


def _entered(actor: Actor, task: Task, old_status: str) -> None:
    if Task.Status.DONE in (old_status, task.status) and old_status != task.status:
        _blocker_moved(actor, task)
    for hook in _column_hooks.values():
        hook(actor, task, old_status)


def _blocker_moved(actor: Actor, blocker: Task) -> None:
    """A task entered or left Done: the tasks waiting for it count again (their cards say
    "Waits for N"; a dispatch of one goes out when its count reaches 0)."""
    through = Task.blocked_by.through
    waiters = list(
        through.objects.filter(to_task_id=blocker.pk).values_list("from_task_id", flat=True)
    )
    if not waiters:
        return
    counts = dict(
        through.objects.filter(from_task_id__in=waiters)
        .exclude(to_task__status=Task.Status.DONE)
        .values_list("from_task_id")
        .annotate(n=Count("to_task_id"))
    )
    for waiter in Task.objects.filter(pk__in=waiters).for_cards():
        now_waiting = counts.get(waiter.pk, 0)
        if waiter.waiting_count == now_waiting:
            continue
        before = waiter.waiting_count
        Task.objects.filter(pk=waiter.pk).update(
            waiting_count=now_waiting, version=F("version") + 1, updated_at=timezone.now()
        )
        waiter.waiting_count, waiter.version = now_waiting, waiter.version + 1
        _publish_change(
            "task.updated",
            actor,
            waiter,
            {"waiting_count": {"before": before, "after": now_waiting}},
            {waiter.status},
        )


# --- Who may be given new work ------------------------------------------------------------------

# An app that may refuse an agent new work registers its check here (billing: an agent a spent
# budget pauses), so tasks' core never imports it (docs/design.md, the import direction). A
# check raises an ActionError (with the field its message belongs to) to refuse.
WorkGuard = Callable[[int, str, str | None], None]
_work_guards: dict[str, WorkGuard] = {}


def register_work_guard(name: str, guard: WorkGuard) -> None:
    _work_guards[name] = guard


def refuse_new_work(agent_id: int | None, doing: str, field: str | None = None) -> None:
    """Raise when an agent may not be given new work now (inside the caller's transaction, so
    the answer holds for the write it guards)."""
    if agent_id is None:
        return
    for guard in _work_guards.values():
        guard(agent_id, doing, field)


EDITABLE = ("title", "description", "priority", "labels", "due_date", "assignee", "status")


class TaskChanges(TypedDict, total=False):
    """What an edit may change (EDITABLE); each value checked by `update_task`."""

    title: str
    description: str
    priority: Task.Priority | str
    labels: str | list[str]
    due_date: datetime.date | None
    assignee: Assignee | str
    status: str


def update_task(
    actor: Actor, task_id: int, changes: TaskChanges, *, expected_version: int | None = None
) -> Task:
    """Change any of EDITABLE; a status change moves the card to the end of that column."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise Invalid({k: ["This field cannot be changed here."] for k in sorted(unknown)})
    fields: dict[str, Any] = {}
    if "title" in changes:
        fields["title"] = _clean_title(changes["title"])
    if "description" in changes:
        fields["description"] = changes["description"] or ""
    if "priority" in changes:
        if changes["priority"] not in Task.Priority.values:
            raise Invalid({"priority": ["Choose urgent, high, normal or low."]})
        fields["priority"] = changes["priority"]
    if "labels" in changes:
        fields["labels"] = parse_labels(changes["labels"])
    if "due_date" in changes:
        fields["due_date"] = changes["due_date"]
    if "assignee" in changes:
        assignee = changes["assignee"]
        who = assignee if isinstance(assignee, Assignee) else parse_assignee(assignee)
        fields["assignee_user_id"] = who.user_id
        fields["assignee_agent_id"] = who.agent_id
    new_status = _check_status(changes["status"]) if "status" in changes else None
    with transaction.atomic():
        if new_status is not None:
            _lock_board()
        task = _lock(task_id)
        _check_version(task, expected_version)
        if fields.get("assignee_agent_id") not in (None, task.assignee_agent_id):
            refuse_new_work(fields["assignee_agent_id"], "Not assigned", "assignee")
        before = _snapshot(task)
        tracked_before = events.tracked(task)
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
        delta = events.changes(tracked_before, events.tracked(task))
        if delta:
            if "description" in delta:
                new["description"] = "edited"
            audit.record(actor, "task.updated", task, before=old, after=new)
            _publish_change("task.updated", actor, task, delta, {old_status, task.status})
        if "status" in delta or "assignee" in delta:
            # Into a column, or to someone new while in it: as good as entering it for them.
            _entered(actor, task, old_status if "status" in delta else "")
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
        raise Invalid({"blocked_reason": ["Say what it is blocked on."]})
    if len(reason) > 500:
        raise Invalid({"blocked_reason": ["Keep the reason under 500 characters."]})
    with transaction.atomic():
        task = _lock(task_id)
        _check_version(task, expected_version)
        if task.blocked == blocked and (not blocked or task.blocked_reason == reason):
            return task
        now = timezone.now()
        Task.objects.filter(pk=task.pk).update(
            blocked=blocked,
            blocked_reason=reason if blocked else "",
            # Since when it is stuck (a new reason keeps the time: it is still the same block).
            blocked_at=(task.blocked_at or now)
            if blocked and task.blocked
            else now
            if blocked
            else None,
            version=F("version") + 1,
            updated_at=now,
        )
        tracked_before = events.tracked(task)
        task.refresh_from_db()
        verb: events.TaskChangedType = "task.blocked" if blocked else "task.unblocked"
        audit.record(actor, verb, task, after={"blocked_reason": reason} if blocked else None)
        delta = events.changes(tracked_before, events.tracked(task))
        _publish_change(verb, actor, task, delta, {task.status})
    return task


MAX_BLOCKERS = 50


def set_blocked_by(actor: Actor, task_id: int, blocker_ids: list[int]) -> Task:
    """The tasks that must be Done before this one (replacing the list). Refused: an unknown
    task, the task itself, or a cycle (a blocker that waits, directly or through others, for
    this task)."""
    wanted = sorted(set(blocker_ids))
    if len(wanted) > MAX_BLOCKERS:
        raise Invalid({"blocked_by": [f"At most {MAX_BLOCKERS} tasks."]})
    if task_id in wanted:
        raise Invalid({"blocked_by": ["A task cannot wait for itself."]})
    with transaction.atomic():
        task = _lock(task_id)
        known = set(Task.objects.filter(pk__in=wanted).values_list("pk", flat=True))
        if missing := [n for n in wanted if n not in known]:
            raise Invalid({"blocked_by": [f"No task #{n}." for n in missing]})
        through = Task.blocked_by.through
        # Who waits for whom, as it is now (one query): a blocker that reaches this task
        # through its own blockers would close a cycle.
        edges: dict[int, list[int]] = {}
        for waiter, first in through.objects.values_list("from_task_id", "to_task_id"):
            if waiter != task_id:
                edges.setdefault(waiter, []).append(first)
        for start in wanted:
            seen, stack = set(), [start]
            while stack:
                current = stack.pop()
                if current == task_id:
                    raise Invalid(
                        {
                            "blocked_by": [
                                f"#{start} waits for this task (directly or through others): "
                                "that would be a cycle."
                            ]
                        }
                    )
                if current not in seen:
                    seen.add(current)
                    stack.extend(edges.get(current, ()))
        before = sorted(task.blocked_by.values_list("pk", flat=True))
        if before == wanted:
            return task
        task.blocked_by.set(wanted)
        waiting = Task.objects.filter(pk__in=wanted).exclude(status=Task.Status.DONE).count()
        Task.objects.filter(pk=task.pk).update(
            waiting_count=waiting, version=F("version") + 1, updated_at=timezone.now()
        )
        task = Task.objects.for_cards().get(pk=task.pk)
        audit.record(
            actor, "task.updated", task, before={"blocked_by": before}, after={"blocked_by": wanted}
        )
        _publish_change(
            "task.updated",
            actor,
            task,
            {"blocked_by": {"before": before, "after": wanted}},
            {task.status},
        )
    return task


def add_comment(actor: Actor, task_id: int, body: str, *, agent: Agent | None = None) -> Comment:
    """A comment by a person (actor.user_id) or an agent (`agent`)."""
    body = (body or "").strip()
    if not body:
        raise Invalid({"body": ["Write something first."]})
    if len(body) > 20000:
        raise Invalid({"body": ["Keep comments under 20,000 characters."]})
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
        task.comment_count += 1
        commented: events.TaskCommented = {
            "type": "task.commented",
            "actor": actor.as_dict(),
            "task": events.task_data(task),
            "comment": {
                "id": comment.pk,
                "author": {
                    "type": "agent" if agent is not None else "user",
                    "name": comment.author_label,
                    "agent_id": agent.pk if agent is not None else None,
                },
                "body": comment.body,
                "created_at": comment.created_at.isoformat(),
            },
            "board": _board(task, {task.status}),
        }
        live.publish("board", commented)
    return comment


def claim_task(actor: Actor, task_id: int, *, agent_id: int) -> Task:
    """An agent takes an unassigned task (or confirms it holds it); atomic under races."""
    with transaction.atomic():
        task = _lock(task_id)
        if task.assignee_agent_id == agent_id:
            return task
        refuse_new_work(agent_id, "Not claimed")
        # Conditional update: of two agents claiming at once, exactly one matches.
        taken = Task.objects.filter(
            pk=task.pk,
            assignee_agent__isnull=True,
            assignee_user__isnull=True,
            archived_at__isnull=True,
        ).update(assignee_agent_id=agent_id, version=F("version") + 1, updated_at=timezone.now())
        if taken != 1:
            raise Conflict(f"Task #{task.pk} is already assigned to {task.assignee}.")
        tracked_before = events.tracked(task)
        task = Task.objects.for_cards().get(pk=task.pk)
        audit.record(actor, "task.claimed", task, after={"assignee": str(task.assignee)})
        delta = events.changes(tracked_before, events.tracked(task))
        _publish_change("task.claimed", actor, task, delta, {task.status})
    return task


@dataclass(frozen=True)
class OwnTaskChange:
    """An agent's change to a task assigned to it: a move and/or a block."""

    agent_id: int
    task_id: int
    status: str | None = None
    blocked: bool | None = None
    blocked_reason: str = ""


def change_own_task(actor: Actor, change: OwnTaskChange) -> Task:
    """Apply an agent's move and block of its own task together: all of it or nothing (a
    refused block leaves the move unapplied)."""
    with transaction.atomic():
        task = Task.objects.on_board().filter(pk=change.task_id).first()
        if task is None:
            raise NotFound("That task does not exist (any more).")
        if task.assignee_agent_id != change.agent_id:
            raise Forbidden("This task is not assigned to you; claim it first.")
        if change.status is not None:
            task = move_task(actor, task.pk, to_status=change.status)
        if change.blocked is not None:
            task = set_blocked(actor, task.pk, blocked=change.blocked, reason=change.blocked_reason)
    return task


@dataclass(frozen=True)
class TaskEdit:
    """A person's change to a task through the API: fields (TaskChanges), its block, what it
    waits for — each None when left alone."""

    task_id: int
    changes: TaskChanges
    blocked: bool | None = None
    blocked_reason: str = ""
    blocked_by: list[int] | None = None
    expected_version: int | None = None


def edit_task(actor: Actor, edit: TaskEdit) -> Task:
    """All of a person's change in one transaction: a refused part leaves nothing applied."""
    with transaction.atomic():
        task = _lock(edit.task_id)
        if task.archived_at is not None:
            raise NotFound("That task is archived.")
        _check_version(task, edit.expected_version)
        if edit.changes:
            task = update_task(actor, task.pk, edit.changes)
        if edit.blocked is not None:
            task = set_blocked(actor, task.pk, blocked=edit.blocked, reason=edit.blocked_reason)
        if edit.blocked_by is not None:
            task = set_blocked_by(actor, task.pk, edit.blocked_by)
    return Task.objects.for_cards().get(pk=task.pk)


def set_run_state(task_id: int, state: str) -> Task:
    """Its latest run's state, as the card shows it (runs/ keeps it in the run's transaction;
    the version moves, so an edit made before is refused as stale); reloaded for events."""
    Task.objects.filter(pk=task_id).update(
        run_state=state, run_progress="", version=F("version") + 1, updated_at=timezone.now()
    )
    return Task.objects.for_cards().get(pk=task_id)


def set_run_progress(task_id: int, text: str) -> None:
    """What the agent of its running run says it is doing now (the card's line; no version
    move: nothing an edit could clobber)."""
    Task.objects.filter(pk=task_id).update(run_progress=text[:500])


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
            delta: dict[str, events.Change] = {"archived": {"before": False, "after": True}}
            _publish_change("task.archived", actor, task, delta, {task.status})
    return task


def delete_task(actor: Actor, task_id: int) -> None:
    """Delete a task and its comments for good (admins only; the audit row remains)."""
    with transaction.atomic():
        task = _lock(task_id)
        status = task.status
        audit.record(actor, "task.deleted", task, before=_snapshot(task))
        gone = events.task_data(task)
        task.delete()
        deleted: events.TaskDeleted = {
            "type": "task.deleted",
            "actor": actor.as_dict(),
            "task": gone,
            "board": _board(None, {status}),
        }
        live.publish("board", deleted)


# --- Cost -----------------------------------------------------------------------------------------


def set_costs(costs: dict[int, int]) -> int:
    """What the work on these tasks cost so far (nano-dollars, worked out by billing from its
    rollups): the rows whose cost changed are written, and one `task.cost_changed` event names
    them; the number changed. Derived data, so not audited, and the version stays (an edit made
    meanwhile is no conflict)."""
    if not costs:
        return 0
    with transaction.atomic():
        ids = sorted(costs)
        current: dict[int, int] = {}
        for start in range(0, len(ids), 500):  # within every backend's parameter limit
            part = Task.objects.filter(pk__in=ids[start : start + 500])
            current.update(part.values_list("pk", "cost_nanos"))
        changed = sorted((pk, n) for pk, n in costs.items() if pk in current and current[pk] != n)
        if not changed:
            return 0
        bulk.update_many([Task(pk=pk, cost_nanos=n) for pk, n in changed], ["cost_nanos"])
        event: events.TaskCostChanged = {
            "type": "task.cost_changed",
            "tasks": [
                {"id": pk, "cost_usd": f"{Task(cost_nanos=n).cost:.9f}"} for pk, n in changed
            ],
        }
        live.publish("board", event)
    return len(changed)
