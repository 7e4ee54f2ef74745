"""The pipelines' loop (in the supervisor, one process: `run_workers` when there are several):
steps and approvals past their time, and scheduled pipelines whose slot came — each slot at
most once (PipelineRun.slot is unique per pipeline, so a second process, or a restart, that
tries the same slot gets the run the first made)."""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async

from missioncontrol.supervisor import register_loop
from pipelines import actions, approvals, schedule

logger = logging.getLogger(__name__)
db = database_sync_to_async

TICK_S = 1.0


def tick() -> None:
    actions.time_out_steps()
    approvals.time_out()
    approvals.expire_agent_asks()
    schedule.fire_due()


async def pipelines_loop() -> None:
    while True:
        await db(tick)()
        await asyncio.sleep(TICK_S)


def register() -> None:
    register_loop("pipelines", pipelines_loop, restart="always")
