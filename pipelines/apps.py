from __future__ import annotations

from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    """Pipelines: agents chained into runs that advance by themselves, with approval gates."""

    name = "pipelines"
    verbose_name = "Pipelines"

    def ready(self) -> None:
        from typing import get_args

        from missioncontrol import live, nav, roles
        from pipelines import (
            actions,
            approvals,
            events,
            loops,
            presenters,  # noqa: F401 - registers the presenters
        )
        from pipelines import overview as overview_part
        from runs.actions import register_end_hook
        from tasks.actions import register_column_hook

        live.register_topic(
            events.TOPIC,
            *get_args(events.RunEventType),
            *get_args(events.PipelineEventType),
            *get_args(approvals.ApprovalEventType),
            *get_args(approvals.AgentAskEventType),
        )
        roles.register_app(
            "pipelines", {"pipeline": ("add", "change"), "pipelinerun": ("add", "change")}
        )
        nav.register(nav.NavItem("Pipelines", "pipelines:list", order=15, prefix="/pipelines/"))
        register_end_hook("pipelines", actions.run_ended)
        register_column_hook("pipelines", actions.task_moved)
        loops.register()
        overview_part.register()
