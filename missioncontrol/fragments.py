"""Rendered template fragments, cached by what they show, with per-instance values filled in.

Live pushes render the same fragments over and over (a card after every move, an activity item
per audit row): most of a fragment depends on a few fields that rarely change, and a few
values (an id, a version, a time) change every time. A `FragmentCache` keeps the HTML rendered
once per key with NUL-delimited marks where those values go, and fills them in with a string
replace: a move renders no template. Entries are small, bounded in number, evicted oldest
first, and emptied with the process state (missioncontrol/state.py).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping

from missioncontrol import state


def mark(name: str) -> str:
    """A stand-in for a value in cached HTML (no rendered text contains NUL)."""
    return f"\x00{name}\x00"


class FragmentCache:
    def __init__(self, name: str, max_entries: int = 5000) -> None:
        self.max_entries = max_entries
        self._cache: OrderedDict[Hashable, str] = OrderedDict()
        self._lock = threading.Lock()
        state.register(name, self.clear)

    def render(self, key: Hashable, render: Callable[[], str], values: Mapping[str, str]) -> str:
        """The fragment for `key` with `values` filled in at their marks; `render()` makes the
        marked HTML on a miss."""
        with self._lock:
            html = self._cache.get(key)
            if html is not None:
                self._cache.move_to_end(key)
        if html is None:
            html = render()
            with self._lock:
                self._cache[key] = html
                while len(self._cache) > self.max_entries:
                    self._cache.popitem(last=False)
        for name, value in values.items():
            html = html.replace(mark(name), value)
        return html

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
