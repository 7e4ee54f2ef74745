"""Rendering task cards: one template, cached by everything a card shows.

The board's main cost is rendering cards (≈0.2 ms each). A card's HTML is a function of what
it shows: its pk, title, priority, blocked state and reason, labels, assignee (name and kind),
due date (and, for the overdue mark, today's date and whether it is done) and comment count; so it is cached under
exactly those. Its version and column, which change on every move, are not part of the cached
HTML: they are written into it at the end, so moving a card never renders it again. Entries
are small (~1 KB), bounded in number and evicted oldest first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from missioncontrol import state
from tasks.models import Task

MAX_CARDS = 5000
_cache: OrderedDict[tuple[object, ...], str] = OrderedDict()
_lock = threading.Lock()
# Stand-ins for the version and the column in cached HTML (no rendered text contains NUL).
VERSION_MARK, STATUS_MARK = "\x00v\x00", "\x00s\x00"


def _key(task: Task) -> tuple[object, ...]:
    return (
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
        task.status == Task.Status.DONE,  # done cards are never overdue
        task.comment_count,
        timezone.localdate(),
    )


def render_card(task: Task) -> SafeString:
    """The card's HTML (`tasks/board.html#task_card`)."""
    key = _key(task)
    with _lock:
        html = _cache.get(key)
        if html is not None:
            _cache.move_to_end(key)
    if html is None:
        html = (
            render_to_string("tasks/board.html#task_card", {"task": task})
            .replace(f'data-version="{task.version}"', f'data-version="{VERSION_MARK}"', 1)
            .replace(f'data-status="{task.status}"', f'data-status="{STATUS_MARK}"', 1)
        )
        with _lock:
            _cache[key] = html
            while len(_cache) > MAX_CARDS:
                _cache.popitem(last=False)
    html = html.replace(VERSION_MARK, str(task.version)).replace(STATUS_MARK, task.status)
    return mark_safe(html)  # noqa: S308 - our own template's output


def forget_cards() -> None:
    with _lock:
        _cache.clear()


state.register("card cache", forget_cards)
