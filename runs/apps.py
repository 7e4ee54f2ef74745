from __future__ import annotations

from django.apps import AppConfig


class RunsConfig(AppConfig):
    """Orchestration: a task handed to an agent (a run), followed to its end."""

    name = "runs"
    verbose_name = "Runs"

    def ready(self) -> None:
        from typing import get_args

        from missioncontrol import live, roles
        from runs import loops, presenters  # noqa: F401 - registers the runs' presenters
        from runs.events import RunEventType

        # On the board's topic: who sees a card sees its run.
        live.register_events("board", *get_args(RunEventType))
        roles.register_app("runs", {"run": ("add", "change")})
        loops.register()
        from runs import actions
        from tasks.actions import register_column_hook

        register_column_hook("auto-dispatch", actions.auto_dispatch)
        register_column_hook("waiting runs", actions.blockers_moved)
        from agents import events as agent_events
        from runs import facts
        from runs import overview as overview_part

        agent_events.register_row_facts(facts.agent_row_facts)

        overview_part.register()
