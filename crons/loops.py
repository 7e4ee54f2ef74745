"""The lateness check, a loop of the supervisor (so it works with no browser open): every
MC_CRON_CHECK_S seconds, jobs whose deadline passed become late, once. Runs past their retention
go once an hour."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from crons import actions
from missioncontrol.supervisor import register_loop

PRUNE_EVERY_S = 3600.0


async def lateness_loop() -> None:
    pruned_at = 0.0
    while True:
        await database_sync_to_async(actions.check_health)()
        if time.monotonic() - pruned_at > PRUNE_EVERY_S:
            cutoff = timezone.now() - timedelta(days=settings.MC_CRON_RUN_RETENTION_DAYS)
            await database_sync_to_async(actions.prune_runs)(cutoff)
            pruned_at = time.monotonic()
        await asyncio.sleep(settings.MC_CRON_CHECK_S)


def register() -> None:
    register_loop("cron-lateness", lateness_loop, restart="always")
