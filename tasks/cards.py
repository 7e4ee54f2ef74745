"""Rendering task cards: one template, cached by everything a card shows.

The board's main cost is rendering cards (≈0.2 ms each). A card's HTML is a function of what
it shows: its pk, title, priority, blocked state and reason, labels, assignee (name and kind),
due date (and, for the overdue mark, today's date and whether it is done), comment count and cost; so it is cached under
exactly those. Its version and column, which change on every move, are not part of the cached
HTML: they are filled in at their marks (missioncontrol/fragments.py), so moving a card never
renders it again. Entries are small (~1 KB), bounded in number and evicted oldest first.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from missioncontrol.fragments import FragmentCache, mark
from tasks.models import Task

MAX_CARDS = 5000
_cards = FragmentCache("card cache", MAX_CARDS)


def card_key(
    pk: int,
    title: str,
    priority: int,
    blocked: bool,
    blocked_reason: str,
    labels: str,
    agent_id: int | None,
    user_id: int | None,
    assignee: str,
    due_date: datetime.date | None,
    done: bool,
    comment_count: int,
    cost_nanos: int,
    run_state: str,
    run_progress: str,
    waiting_count: int,
) -> tuple[object, ...]:
    """What a card shows, as its cache key (today's date too: the overdue mark)."""
    return (
        pk,
        title,
        priority,
        blocked,
        blocked_reason,
        labels,
        agent_id,
        user_id,
        assignee,
        due_date,
        done,  # done cards are never overdue
        comment_count,
        cost_nanos,
        run_state,
        run_progress,
        waiting_count,
        timezone.localdate(),
    )


def _key(task: Task) -> tuple[object, ...]:
    return card_key(
        task.pk,
        task.title,
        task.priority,
        task.blocked,
        task.blocked_reason,
        task.labels,
        task.assignee_agent_id,
        task.assignee_user_id,
        task.assignee_display,
        task.due_date,
        task.status == Task.Status.DONE,
        task.comment_count,
        task.cost_nanos,
        task.run_state,
        task.run_progress,
        task.waiting_count,
    )


def render_card(task: Task) -> SafeString:
    """The card's HTML (`tasks/board.html#task_card`)."""
    return render_keyed(_key(task), task.version, task.status, lambda: task)


def render_keyed(
    key: tuple[object, ...], version: int, status: str, build: Callable[[], Task]
) -> SafeString:
    """The card under `key` (card_key()) at this version and column; `build()` makes the Task
    to render only when the cache has no such card."""

    def render() -> str:
        task = build()
        return (
            render_to_string("tasks/board.html#task_card", {"task": task})
            .replace(f'data-version="{task.version}"', f'data-version="{mark("v")}"', 1)
            .replace(f'data-status="{task.status}"', f'data-status="{mark("s")}"', 1)
        )

    html = _cards.render(key, render, {"v": str(version), "s": status})
    return mark_safe(html)  # noqa: S308 - our own template's output
