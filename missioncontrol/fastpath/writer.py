"""The group-commit writer behind the fast routes.

One thread per event loop and kind of work takes every job waiting, applies them in one
transaction (the app's batch action), and answers each request only after its data is
committed.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from missioncontrol import live, state

logger = logging.getLogger(__name__)


class WriteFailed(Exception):
    """The job's transaction failed (even alone): nothing of it was written."""


@dataclass
class Job:
    """One request's work for a BatchWriter; `payload` is whatever its apply function needs."""

    payload: Any
    future: asyncio.Future[Any] | None = field(default=None, repr=False)


class BatchWriter:
    """One thread per event loop and kind of work: takes every job waiting (up to `max_batch`),
    hands them to `apply` (which writes them in one transaction and returns one result per job,
    None for a job that could not be stored), then answers the waiting requests on the loop.

    The thread takes the next batch the moment the previous one commits (no round trip through
    the event loop between batches) and keeps its database connection. A batch that raises is
    retried job by job, so one bad job costs only its own request a 503. `tick` runs on the
    thread after each batch and once a second when idle (periodic chores of the writer)."""

    def __init__(
        self,
        name: str,
        apply: Callable[[list[Any]], list[Any]],
        *,
        max_batch: int = 500,
        tick: Callable[[bool], None] | None = None,
    ) -> None:
        self.name, self.apply, self.max_batch, self.tick = name, apply, max_batch, tick
        self.loop = asyncio.get_running_loop()
        self.jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"mc-{name}", daemon=True)
        self.thread.start()

    async def submit(self, payload: Any) -> Any:
        """Queue one job and wait until it is committed; WriteFailed if it could not be."""
        job = Job(payload, self.loop.create_future())
        self.jobs.put(job)
        assert job.future is not None
        return await job.future

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the batch in hand, then end the thread (and its connection); wait for it."""
        self.stopping.set()
        self.jobs.put(None)  # wake it now rather than at its next idle second
        self.thread.join(timeout)

    def _run(self) -> None:
        live.fan_out_on(self.loop)
        try:
            # A thread must not outlive its loop's work: once the loop is closed or the writer
            # is stopped, it writes nothing more (not even its idle chores), so no write of a
            # finished test lands in the next one's database.
            while not self.loop.is_closed() and not self.stopping.is_set():
                try:
                    first = self.jobs.get(timeout=1.0)
                except queue.Empty:
                    if self.loop.is_closed() or self.stopping.is_set():
                        break
                    self._tick(idle=True)
                    continue
                if first is None:
                    break
                batch = [first]
                while len(batch) < self.max_batch:
                    try:
                        job = self.jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        self.stopping.set()
                        break
                    batch.append(job)
                results = self._apply(batch)
                try:
                    self.loop.call_soon_threadsafe(_deliver, batch, results)
                except RuntimeError:  # the loop closed meanwhile: nobody is waiting
                    break
                self._tick(idle=False)
        finally:
            connection.close()

    def _apply(self, batch: list[Job]) -> list[Any]:
        payloads = [job.payload for job in batch]
        try:
            return self.apply(payloads)
        except Exception:
            logger.exception("%s: batch of %d failed; retrying one by one", self.name, len(batch))
        results: list[Any] = []
        for payload in payloads:
            try:
                results.extend(self.apply([payload]))
            except Exception:
                logger.exception("%s: a job failed alone too; refused", self.name)
                results.append(None)
        return results

    def _tick(self, idle: bool) -> None:
        if self.tick is None:
            return
        try:
            self.tick(idle)
        except Exception:
            logger.exception("%s: periodic work failed", self.name)


def _deliver(batch: list[Job], results: list[Any]) -> None:
    """On the event loop: answer each request of a committed batch."""
    for job, result in zip(batch, results, strict=True):
        assert job.future is not None
        if job.future.done():  # the client went away
            continue
        if result is None:
            job.future.set_exception(WriteFailed())
        else:
            job.future.set_result(result)


_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, BatchWriter]] = (
    weakref.WeakKeyDictionary()
)


def stop_all() -> None:
    """Stop every writer of this process and wait for their threads (tests, between tests)."""
    for mine in list(_writers.values()):
        for each in list(mine.values()):
            each.stop()
    _writers.clear()


def writer(name: str, factory: Callable[[], BatchWriter]) -> BatchWriter:
    """This event loop's writer called `name`, made by `factory` on first use."""
    loop = asyncio.get_running_loop()
    mine = _writers.setdefault(loop, {})
    if name not in mine:
        mine[name] = factory()
    return mine[name]


class Throttle:
    """At most one call a `period` seconds (for coalesced work on a writer's tick)."""

    def __init__(self, period: float) -> None:
        self.period, self.last = period, time.monotonic()

    def due(self, force: bool = False) -> bool:
        if force or time.monotonic() - self.last >= self.period:
            self.last = time.monotonic()
            return True
        return False


# Writers belong to their event loop and end with it; forgetting them is enough.
state.register("fast-path writers", _writers.clear)
