"""Who may do what with pipelines. Viewers read; operators start runs, cancel them and answer
approvals (as their definitions allow); admins edit. Starting a run hands work to its steps'
agents: a person narrowed to some gateways may start it only when they may operate every
named agent's gateway (a pool's agent is chosen when its step starts)."""

from __future__ import annotations

from typing import Any

from agents.models import Agent
from gateways import access
from missioncontrol.errors import Forbidden
from missioncontrol.roles import has_role
from pipelines import definition as defs


def check_start(user: Any, definition: defs.Definition) -> None:
    if not has_role(user, "operator"):
        raise Forbidden("Starting a pipeline needs the operator role.")
    names = {s.agent for s in definition.steps if s.agent}
    for name, gateway_id in Agent.objects.filter(name__in=names).values_list("name", "gateway_id"):
        if not access.can_operate(user, gateway_id):
            raise Forbidden(
                f"Starting this pipeline hands work to {name}, on a gateway you may not operate."
            )
