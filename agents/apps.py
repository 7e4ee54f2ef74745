from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        # agents.openapi (the OpenAPI machinery, ~80 ms) is imported by the schema view itself.
        from agents import (
            keys,
            loops,
            presenters,  # noqa: F401 - registers the Agents pages' presenters
        )
        from agents.models import Agent, AgentKey
        from missioncontrol import live, nav, roles

        live.register_topic(
            "fleet", "agent.registered", "agent.created", "agent.status_changed", "agent.seen"
        )
        live.register_topic("sessions", "session.changed", "session.message", "session.run_ended")
        roles.register_app("agents", {"agent": ("change",), "agentsession": ("change",)})
        nav.register(nav.NavItem("Agents", "agents:list", order=20, prefix="/agents/"))
        nav.register(nav.NavItem("Sessions", "agents:sessions", order=25, prefix="/sessions/"))
        nav.register(
            nav.NavItem(
                "API keys",
                "agents:keys",
                role="admin",
                order=90,
                prefix="/settings/keys/",
                menu=True,
            )
        )
        loops.register()
        # A key changed or deleted in this process, however (the admin, the shell), and an
        # agent deleted or renamed: the key cache forgets them at once.
        for signal in (post_save, post_delete):
            signal.connect(keys.forget_key_row, sender=AgentKey, dispatch_uid=f"mc-key-{signal}")
            signal.connect(keys.forget_agent_keys, sender=Agent, dispatch_uid=f"mc-agent-{signal}")
        from agents import overview as overview_part

        overview_part.register()
