"""What runs add to an agent's row (agents.events.register_row_facts): the task of a run it is
running, so "Working on" says it while the agent's own reports name no task."""

from __future__ import annotations

from agents.events import RowFacts
from agents.models import Agent
from runs.models import Run


def agent_row_facts(agents: list[Agent]) -> dict[int, RowFacts]:
    ids = [agent.pk for agent in agents if agent.current_task_id is None]
    if not ids:
        return {}
    found: dict[int, RowFacts] = {}
    rows = (
        Run.objects.filter(agent_id__in=ids, state=Run.State.RUNNING)
        .order_by("started_at", "pk")
        .values_list("agent_id", "task_id", "task__title")
    )
    for agent_id, task_id, title in rows:
        if agent_id is not None and agent_id not in found:  # its oldest running run
            found[agent_id] = {"run_task_id": task_id, "run_task_title": title}
    return found
