"""The agents' background loop: stale and offline on time, even when no request arrives."""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async
from django.conf import settings

from agents.actions import sweep_statuses
from missioncontrol.supervisor import register_loop


async def status_sweep_loop() -> None:
    while True:
        await database_sync_to_async(sweep_statuses)()
        await asyncio.sleep(settings.MC_AGENT_SWEEP_INTERVAL_S)


def register() -> None:
    register_loop("agent-status-sweep", status_sweep_loop, restart="always")
