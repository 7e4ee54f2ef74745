from __future__ import annotations

from missioncontrol.audit import Actor
from tasks import actions
from tasks.models import Task


def make_task(title: str = "A task", status: str = Task.Status.TODO, **kwargs) -> Task:
    """Tasks are made through the action, as in production (positions, audit, events)."""
    return actions.create_task(Actor.system("tests"), title=title, status=status, **kwargs)
