"""Mission Control's own background loops (registered with the supervisor from ready())."""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from django.conf import settings

from missioncontrol import retention
from missioncontrol.supervisor import register_loop

logger = logging.getLogger(__name__)


async def retention_loop() -> None:
    """Prune the event log and audit trail by age, every MC_RETENTION_INTERVAL_S."""
    while True:
        deleted = await database_sync_to_async(retention.prune)()
        if any(deleted.values()):
            logger.info("retention: pruned %s", deleted)
        await asyncio.sleep(settings.MC_RETENTION_INTERVAL_S)


def register() -> None:
    register_loop("retention", retention_loop, restart="always")
