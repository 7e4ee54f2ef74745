"""Rendering task cards: one template, cached by everything a card shows.

The board's main cost is rendering cards (≈0.25 ms each). A card's HTML is a function of the
task's row as of its last change (pk, version and updated_at: every action bumps them; the
timestamp also tells apart a pk reused after a rolled-back insert), its assignee's name and,
for the overdue mark, today's date; so it is cached under exactly those. Entries are small (~1 KB),
bounded in number and evicted oldest first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from tasks.models import Task

MAX_CARDS = 5000
_cache: OrderedDict[tuple[object, ...], str] = OrderedDict()
_lock = threading.Lock()


def _key(task: Task) -> tuple[object, ...]:
    return (
        task.pk,
        task.version,
        task.updated_at,
        str(task.assignee or ""),
        timezone.localdate(),
    )


def render_card(task: Task) -> SafeString:
    """The card's HTML (`tasks/board.html#task_card`)."""
    key = _key(task)
    with _lock:
        html = _cache.get(key)
        if html is not None:
            _cache.move_to_end(key)
            return mark_safe(html)  # noqa: S308 - our own template's output
    html = render_to_string("tasks/board.html#task_card", {"task": task})
    with _lock:
        _cache[key] = html
        while len(_cache) > MAX_CARDS:
            _cache.popitem(last=False)
    return mark_safe(html)  # noqa: S308 - our own template's output
