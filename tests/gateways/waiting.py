"""Waiting for what a connector or a server does in the background (gateway tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async


async def until(check: Callable[[], Any], timeout: float = 5.0, step: float = 0.05) -> Any:
    """Poll `check` (sync, run with database access) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await database_sync_to_async(check)()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {check}")
        await asyncio.sleep(step)


def wait_for(check: Callable[[], Any], timeout: float = 20.0, step: float = 0.2) -> Any:
    """`until` for synchronous tests (a server in another process does the work)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {check}")
        time.sleep(step)
