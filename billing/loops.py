"""Billing's loop: usage recorded in this process (by gateway connectors, by commands) moves the
cost pages within a second, in one coalesced event."""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async

from billing.announcer import ANNOUNCE_EVERY_S, announce_usage
from missioncontrol.supervisor import register_loop


async def usage_announcer_loop() -> None:
    while True:
        await database_sync_to_async(announce_usage)()
        await asyncio.sleep(ANNOUNCE_EVERY_S)


def register() -> None:
    register_loop("usage-announcer", usage_announcer_loop, restart="always")
