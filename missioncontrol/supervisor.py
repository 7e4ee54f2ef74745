"""Background work beside the web server (or alone, in `run_workers`).

Two shapes, both registered by the apps in their `<app>/loops.py` (imported from ready()):
- **loops** (`register_loop`): one named coroutine each (sweeps, retention), restarted per its
  policy with capped, jittered back-off;
- **row tasks** (`register_rows`): one long-lived task per row of a table (one connection per
  enabled gateway). A reconcile loop reads the rows every `reconcile_s` (or at once after
  `wake()`), starts a task for each new row, stops the task of a row that went away, and
  restarts the task of a row whose fingerprint changed (its URL or token, say). Each task has
  an explicit state (`RowHandle.state`) with the last error, a back-off after failures, and an
  inbox for commands (`Supervisor.send`) from whoever needs the task that holds a given row.

`serve` and `run_workers` start them all in their own event loop and stop them on SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from typing import Any, Literal

logger = logging.getLogger(__name__)

Restart = Literal["always", "on-failure", "never"]
LoopFactory = Callable[[], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class LoopSpec:
    """A named background loop: what to run and whether to run it again when it ends."""

    name: str
    factory: LoopFactory
    restart: Restart = "on-failure"
    # Back-off between restarts after failures: 1 s, 2 s, 4 s … capped here.
    max_backoff_s: float = 60.0


# A row task's state. The task itself may set finer states of its own (a gateway connector:
# "connecting", "connected", "auth_failed" …) through RowHandle.set_state.
RowState = str
STARTING, RUNNING, BACKOFF, STOPPED = "starting", "running", "backoff", "stopped"


@dataclass
class RowHandle:
    """What a row task gets: its row's key and fingerprint, its inbox, and its state to set."""

    key: Hashable
    fingerprint: Hashable
    inbox: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    state: RowState = STARTING
    detail: str = ""
    last_error: str = ""
    failures: int = 0
    restarts: int = 0
    since: float = field(default_factory=time.monotonic)
    on_state: Callable[[RowHandle], None] | None = field(default=None, repr=False)

    def set_state(self, state: RowState, detail: str = "") -> None:
        """Record the task's state (and why); observers (`RowSpec.on_state`) hear of it."""
        if (state, detail) == (self.state, self.detail):
            return
        self.state, self.detail, self.since = state, detail, time.monotonic()
        if self.on_state is not None:
            try:
                self.on_state(self)
            except Exception:
                logger.exception("supervisor: state observer failed for %r", self.key)


RowLoader = Callable[[], Awaitable[dict[Hashable, Hashable]]]
RowFactory = Callable[[RowHandle], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class RowSpec:
    """One task per row: `load` returns {row key: fingerprint} for the rows that should run
    (enabled gateways, say); `factory` runs the task of one row until it is cancelled."""

    name: str
    load: RowLoader
    factory: RowFactory
    reconcile_s: float = 5.0
    max_backoff_s: float = 60.0
    on_state: Callable[[RowHandle], None] | None = None


_registry: dict[str, LoopSpec] = {}
_row_registry: dict[str, RowSpec] = {}
# The supervisors running in this process (serve's or run_workers'), and their loops: so that an
# action that changed a row (any thread) can wake the reconcile of its kind at once.
_running: dict[Supervisor, asyncio.AbstractEventLoop] = {}


def wake_everywhere(name: str) -> None:
    """Wake the reconcile of `name` in every supervisor of this process (thread-safe). Other
    processes pick the change up on their next reconcile (`RowSpec.reconcile_s`)."""
    for running, loop in list(_running.items()):
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(running.wake, name)


def running() -> Supervisor | None:
    """This process's supervisor, if it runs one."""
    return next(iter(_running), None)


def register_loop(
    name: str, factory: LoopFactory, *, restart: Restart = "on-failure", max_backoff_s: float = 60.0
) -> None:
    """Register (or replace) a loop by name; idempotent, so reloading an app is harmless."""
    _registry[name] = LoopSpec(name, factory, restart, max_backoff_s)


def register_rows(spec: RowSpec) -> None:
    """Register (or replace) a kind of row task by name."""
    _row_registry[spec.name] = spec


def registered_loops() -> list[LoopSpec]:
    return list(_registry.values())


def registered_rows() -> list[RowSpec]:
    return list(_row_registry.values())


def _backoff(failures: int, cap: float) -> float:
    # Jitter keeps many restarting tasks (or processes) from moving in step.
    return min(cap, 2 ** max(failures - 1, 0)) * random.uniform(0.8, 1.2)


class RowGroup:
    """The tasks of one RowSpec, kept equal to its rows by `reconcile`."""

    def __init__(self, spec: RowSpec) -> None:
        self.spec = spec
        self.handles: dict[Hashable, RowHandle] = {}
        self.tasks: dict[Hashable, asyncio.Task[None]] = {}
        self.woken = asyncio.Event()

    async def reconcile(self) -> None:
        """Start, stop and restart row tasks so that exactly the loaded rows run."""
        wanted = await self.spec.load()
        for key in list(self.tasks):
            if key not in wanted:
                await self._stop(key)
            elif self.handles[key].fingerprint != wanted[key]:
                logger.info("supervisor: %s %r changed; restarting", self.spec.name, key)
                await self._stop(key)
        for key, fingerprint in wanted.items():
            if key not in self.tasks:
                self._start(key, fingerprint)

    def _start(self, key: Hashable, fingerprint: Hashable) -> None:
        handle = RowHandle(key, fingerprint, on_state=self.spec.on_state)
        self.handles[key] = handle
        self.tasks[key] = asyncio.ensure_future(self._keep(handle))

    async def _stop(self, key: Hashable) -> None:
        task = self.tasks.pop(key)
        task.cancel()
        await asyncio.wait([task], timeout=3.0)
        handle = self.handles.pop(key)
        handle.set_state(STOPPED)

    async def _keep(self, handle: RowHandle) -> None:
        """Run the row's task; after a failure wait (back-off) and run it again."""
        while True:
            handle.set_state(RUNNING)
            try:
                await self.spec.factory(handle)
            except asyncio.CancelledError:
                raise
            except Exception as failure:
                handle.failures += 1
                handle.last_error = f"{type(failure).__name__}: {failure}"
                logger.exception("supervisor: %s %r failed", self.spec.name, handle.key)
                handle.set_state(BACKOFF, handle.last_error)
            else:
                # A row task that returns is done with its row until the row changes.
                handle.set_state(STOPPED)
                return
            handle.restarts += 1
            await asyncio.sleep(_backoff(handle.failures, self.spec.max_backoff_s))

    async def run(self) -> None:
        """Reconcile every `reconcile_s`, or at once when woken."""
        while True:
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("supervisor: reconciling %s failed", self.spec.name)
            self.woken.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.woken.wait(), self.spec.reconcile_s)

    async def stop(self, timeout: float = 3.0) -> None:
        """Stop every row task at once (not one after another: ten gateways closing their
        sockets one by one kept `serve` from exiting for half a minute)."""
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        for key in list(self.tasks):
            self.tasks.pop(key)
            self.handles.pop(key).set_state(STOPPED)


class Supervisor:
    """Runs loops and row tasks as asyncio tasks, restarts them per their policy, stops them all
    on request."""

    def __init__(
        self, specs: list[LoopSpec] | None = None, rows: list[RowSpec] | None = None
    ) -> None:
        self.specs = registered_loops() if specs is None else specs
        self.row_specs = registered_rows() if rows is None and specs is None else (rows or [])
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.restarts: dict[str, int] = {}
        self.groups: dict[str, RowGroup] = {}

    def start(self) -> None:
        _running[self] = asyncio.get_event_loop()
        for spec in self.specs:
            self.tasks[spec.name] = asyncio.ensure_future(self._keep(spec))
            logger.info("supervisor: started loop %s", spec.name)
        for row_spec in self.row_specs:
            group = self.groups[row_spec.name] = RowGroup(row_spec)
            self.tasks[f"rows:{row_spec.name}"] = asyncio.ensure_future(group.run())
            logger.info("supervisor: reconciling %s", row_spec.name)

    def wake(self, name: str) -> None:
        """Reconcile the rows of `name` now (a row was added, changed or removed here)."""
        group = self.groups.get(name)
        if group is not None:
            group.woken.set()

    def states(self, name: str) -> dict[Hashable, RowHandle]:
        """The handles (state, detail, failures) of the running row tasks of `name`."""
        group = self.groups.get(name)
        return dict(group.handles) if group is not None else {}

    def send(self, name: str, key: Hashable, command: Any) -> bool:
        """Put a command in the inbox of the task that holds row `key`; False if none does."""
        handle = self.states(name).get(key)
        if handle is None:
            return False
        handle.inbox.put_nowait(command)
        return True

    async def _keep(self, spec: LoopSpec) -> None:
        failures = 0
        while True:
            try:
                await spec.factory()
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                logger.exception("supervisor: loop %s failed (%d in a row)", spec.name, failures)
                if spec.restart == "never":
                    return
            else:
                failures = 0
                if spec.restart != "always":
                    logger.info("supervisor: loop %s finished", spec.name)
                    return
            self.restarts[spec.name] = self.restarts.get(spec.name, 0) + 1
            await asyncio.sleep(_backoff(failures, spec.max_backoff_s) if failures else 0)

    async def stop(self, timeout: float = 3.0) -> None:
        """Cancel every loop and row task and wait (bounded) for them to finish."""
        _running.pop(self, None)
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                logger.warning("supervisor: loop %s did not stop in %.1fs", task, timeout)
        await asyncio.gather(*(group.stop(timeout) for group in self.groups.values()))
        self.tasks.clear()
