"""Background loops that run beside the web server (or alone, in `run_workers`).

Apps register loops in their AppConfig.ready(); `serve` and `run_workers` start them all in
their own event loop and stop them on SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
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


_registry: dict[str, LoopSpec] = {}


def register_loop(
    name: str, factory: LoopFactory, *, restart: Restart = "on-failure", max_backoff_s: float = 60.0
) -> None:
    """Register (or replace) a loop by name; idempotent, so reloading an app is harmless."""
    _registry[name] = LoopSpec(name, factory, restart, max_backoff_s)


def registered_loops() -> list[LoopSpec]:
    return list(_registry.values())


class Supervisor:
    """Runs loops as asyncio tasks, restarts them per their policy, stops them all on request."""

    def __init__(self, specs: list[LoopSpec] | None = None) -> None:
        self.specs = registered_loops() if specs is None else specs
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.restarts: dict[str, int] = {}

    def start(self) -> None:
        for spec in self.specs:
            self.tasks[spec.name] = asyncio.ensure_future(self._keep(spec))
            logger.info("supervisor: started loop %s", spec.name)

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
            # Jitter keeps many restarting loops (or processes) from moving in step.
            delay = min(spec.max_backoff_s, 2 ** max(failures - 1, 0)) * random.uniform(0.8, 1.2)
            await asyncio.sleep(delay if failures else 0)

    async def stop(self, timeout: float = 3.0) -> None:
        """Cancel every loop and wait (bounded) for them to finish."""
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                logger.warning("supervisor: loop %s did not stop in %.1fs", task, timeout)
        self.tasks.clear()
