from __future__ import annotations

import factory

from agents.models import Agent
from missioncontrol.audit import Actor
from tasks import actions
from tasks.models import Task


class AgentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agent
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"agent-{n}")
    framework = "claude-code"


def make_task(title: str = "A task", status: str = Task.Status.TODO, **kwargs) -> Task:
    """Tasks are made through the action, as in production (positions, audit, events)."""
    return actions.create_task(Actor.system("tests"), title=title, status=status, **kwargs)
