"""What tasks add to an agent's row (agents.events.register_row_facts): the title of the task
it works on."""

from __future__ import annotations

from agents.events import RowFacts
from agents.models import Agent
from tasks.models import Task


def agent_row_facts(agents: list[Agent]) -> dict[int, RowFacts]:
    ids = {agent.current_task_id for agent in agents if agent.current_task_id}
    if not ids:
        return {}
    titles = dict(Task.objects.filter(pk__in=ids).values_list("pk", "title"))
    return {
        agent.pk: {"task_title": titles[agent.current_task_id]}
        for agent in agents
        if agent.current_task_id in titles
    }
