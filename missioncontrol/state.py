"""Process-wide mutable state, gathered in one place.

Every module that keeps a cache or per-process registry of live things (the key cache and rate
buckets, the fast path's session cache and writers, the card cache, the live hubs and the
presented-text cache …) registers how to reset it here. `reset_all()` empties them all: the
test suite calls it around every test, so no test sees another's state. Registries filled once
at start-up (topics, presenters, routes, navigation, loops) are configuration, not state, and
are not reset.
"""

from __future__ import annotations

from collections.abc import Callable

_resets: dict[str, Callable[[], None]] = {}


def register(name: str, reset: Callable[[], None]) -> None:
    """Register how to empty one piece of process state (idempotent by name)."""
    _resets[name] = reset


def names() -> list[str]:
    return sorted(_resets)


def reset_all() -> None:
    """Empty every registered cache and registry of this process."""
    for reset in _resets.values():
        reset()
