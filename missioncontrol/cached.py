"""A value loaded from the database and kept per process for a while: read on hot paths (every
usage write reads the price overrides and the budgets), changed rarely. This process forgets it
at once on a change (the owner's signals call `forget`); other processes within `ttl_s`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models import Model
from django.db.models.signals import post_delete, post_save

from missioncontrol import state


class Reloaded[T]:
    def __init__(self, name: str, load: Callable[[], T], ttl_s: float) -> None:
        self.load, self.ttl_s = load, ttl_s
        self._lock = threading.Lock()
        self._value: tuple[float, T] | None = None
        state.register(name, self.forget)

    def get(self) -> T:
        cached = self._value
        if cached is not None and time.monotonic() - cached[0] < self.ttl_s:
            return cached[1]
        loaded = self.load()
        with self._lock:
            self._value = (time.monotonic(), loaded)
        return loaded

    def forget(self) -> None:
        with self._lock:
            self._value = None

    def forget_on_change(self, model: type[Model]) -> None:
        """Forget whenever a row of `model` is saved or deleted, and again once that commits (a
        value read inside the changing transaction is not kept)."""

        def changed(**_kwargs: Any) -> None:
            self.forget()
            transaction.on_commit(self.forget)

        post_save.connect(changed, sender=model, weak=False)
        post_delete.connect(changed, sender=model, weak=False)
