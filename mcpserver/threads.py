"""Where the MCP tools' database work runs: a few threads per event loop that keep their
database connections, as the fast routes' writer threads do.

Through `database_sync_to_async` in a request's own thread (as Django runs a view) every tool
call opened a database connection and closed it: a quarter of the server's CPU per call in a
profile (bench/mcp_server.py, docs/benchmarks.md). Here a call runs on one of `SIZE` threads
of its loop, in the caller's context (the principal), with commits fanned out on the loop
without blocking; a connection that saw an error and is no longer usable is replaced before the
next call. The threads end, closing their connections, when the process state is reset (tests)
or the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import connection

from missioncontrol import live, state

SIZE = 4

# Held strongly (a weak key would drop a closed loop's pool without closing its connections):
# the pools of loops that closed are ended when the next pool is made, and all on a reset.
_pools: dict[asyncio.AbstractEventLoop, ThreadPoolExecutor] = {}
_lock = threading.Lock()


def _pool(loop: asyncio.AbstractEventLoop) -> ThreadPoolExecutor:
    with _lock:
        pool = _pools.get(loop)
        if pool is not None:
            return pool
        ended = [_pools.pop(old) for old in list(_pools) if old.is_closed()]
        pool = _pools[loop] = ThreadPoolExecutor(SIZE, thread_name_prefix="mc-mcp")
    for old_pool in ended:
        _end(old_pool)
    return pool


def _prepared[T](loop: asyncio.AbstractEventLoop, fn: Callable[[], T]) -> T:
    live.fan_out_on(loop)
    if connection.connection is not None and connection.errors_occurred:
        if connection.is_usable():
            connection.errors_occurred = False
        else:
            connection.close()
    try:
        return fn()
    finally:
        if connection.in_atomic_block:  # an edge opens none; a bug must not hold a lock
            connection.close()


async def run[T](fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` on one of this loop's database threads, in this context."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await loop.run_in_executor(_pool(loop), _prepared, loop, call)


def _close_all() -> None:
    """End every pool's threads, each closing its connection (a barrier makes each thread take
    exactly one of the closing jobs)."""
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        _end(pool)


def _end(pool: ThreadPoolExecutor) -> None:
    barrier = threading.Barrier(SIZE)
    for _ in range(SIZE):
        pool.submit(_close_one, barrier)
    pool.shutdown(wait=True)


def _close_one(barrier: threading.Barrier) -> None:
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=5)
    connection.close()


state.register("mcp database threads", _close_all)
