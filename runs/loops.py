"""The runs' background loop: leases that ran out are lost on time, even with no request."""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async
from django.conf import settings

from missioncontrol.supervisor import register_loop
from runs.actions import sweep_leases


async def lease_sweep_loop() -> None:
    while True:
        await database_sync_to_async(sweep_leases)()
        await asyncio.sleep(settings.MC_AGENT_SWEEP_INTERVAL_S)


def register() -> None:
    register_loop("run-lease-sweep", lease_sweep_loop, restart="always")
