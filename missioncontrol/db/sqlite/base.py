# mypy: disable-error-code="misc"
# (django-stubs does not declare the private hooks overridden below.)
"""SQLite backend with an in-process write lock.

Django's ASGI handler runs each request's sync code in a thread of its own, so concurrent
requests are concurrent SQLite writers. SQLite lets one write at a time and makes the others
poll with growing sleeps (its busy handler: 1, 2, 5, … 100 ms), which under load turned into
multi-second tails (measured: 40 moves/s, p99 2 s). Writers in this process now queue on a
Python lock instead and start the moment the previous one commits. Other processes (workers,
commands) still meet the busy timeout, which is rare and bounded.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from django.db.backends.sqlite3 import base

# One per process: every connection (one per thread) shares it.
_write_lock = threading.Lock()


class DatabaseWrapper(base.DatabaseWrapper):
    _holds_write_lock = False

    def get_new_connection(self, conn_params: Any) -> Any:
        # The database holds session keys and password hashes: owner-only (0600). SQLite gives
        # its -wal and -shm files the database file's permissions.
        name = conn_params.get("database")
        on_disk = isinstance(name, str) and name and not name.startswith("file:")
        if on_disk and name != ":memory:" and not os.path.exists(name):
            os.close(os.open(name, os.O_WRONLY | os.O_CREAT, 0o600))
        return super().get_new_connection(conn_params)

    def _start_transaction_under_autocommit(self) -> None:
        _write_lock.acquire()
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            _write_lock.release()
            raise
        self._holds_write_lock = True

    def _release_write_lock(self) -> None:
        if self._holds_write_lock:
            self._holds_write_lock = False
            _write_lock.release()

    def _commit(self) -> None:
        try:
            super()._commit()
        finally:
            self._release_write_lock()

    def _rollback(self) -> None:
        try:
            super()._rollback()
        finally:
            self._release_write_lock()

    def _close(self) -> None:
        try:
            super()._close()
        finally:
            self._release_write_lock()

    def _set_autocommit(self, autocommit: Any) -> None:
        super()._set_autocommit(autocommit)
        if autocommit:
            # Leaving a transaction by switching autocommit back on ends it too.
            self._release_write_lock()
