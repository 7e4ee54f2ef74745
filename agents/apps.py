from __future__ import annotations

from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        from agents import (
            loops,
            openapi,  # noqa: F401 - registers the API key scheme for the schema
            presenters,  # noqa: F401 - registers the Agents pages' presenters
        )
        from missioncontrol import live, nav

        live.register_topic("fleet")
        nav.register(nav.NavItem("Agents", "agents:list", order=20, prefix="/agents/"))
        nav.register(
            nav.NavItem("API keys", "agents:keys", role="admin", order=90, prefix="/settings/keys/")
        )
        loops.register()
