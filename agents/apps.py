from __future__ import annotations

import asyncio

from django.apps import AppConfig

SWEEP_EVERY_S = 5.0


async def status_sweep_loop() -> None:
    """Stale and offline on time, even when no request arrives."""
    from channels.db import database_sync_to_async

    from agents.actions import sweep_statuses

    while True:
        await database_sync_to_async(sweep_statuses)()
        await asyncio.sleep(SWEEP_EVERY_S)


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        from agents import (
            openapi,  # noqa: F401 - registers the API key scheme for the schema
            presenters,  # noqa: F401 - registers the Agents pages' presenters
        )
        from missioncontrol import live, nav
        from missioncontrol.supervisor import register_loop

        live.register_topic("fleet")
        nav.register(nav.NavItem("Agents", "agents:list", order=20, prefix="/agents/"))
        nav.register(
            nav.NavItem("API keys", "agents:keys", role="admin", order=90, prefix="/settings/keys/")
        )
        register_loop("agent-status-sweep", status_sweep_loop, restart="always")
