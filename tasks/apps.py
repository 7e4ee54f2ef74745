from __future__ import annotations

from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Tasks"

    def ready(self) -> None:
        from typing import get_args

        from missioncontrol import live, nav, roles
        from tasks import presenters  # noqa: F401 - registers the board's presenters
        from tasks.events import TaskChangedType

        live.register_topic(
            "board",
            *get_args(TaskChangedType),
            "task.commented",
            "task.deleted",
            "task.cost_changed",
        )
        roles.register_app("tasks", {"task": ("add", "change"), "comment": ("add", "change")})

        nav.register(nav.NavItem("Board", "tasks:board", order=10, prefix="/board/"))
        nav.register(nav.NavItem("Tasks", "tasks:list", order=11, prefix="/tasks/"))
        from agents import events as agent_events
        from tasks import facts
        from tasks import overview as overview_part

        agent_events.register_row_facts(facts.agent_row_facts)

        overview_part.register()
