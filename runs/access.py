"""Who may dispatch, see and abort runs: the pages and the API ask here.

Dispatching or aborting needs the operator role and, for a gateway's agent, the right to act on
that gateway (gateways.access.can_operate: an operate grant when the person has grants); seeing
a run needs seeing its agent's gateway.
"""

from __future__ import annotations

from typing import Any

from gateways import access
from missioncontrol.errors import Forbidden, NotFound
from missioncontrol.roles import has_role
from runs.models import Run
from tasks.models import Task

NO_OPERATE = "Dispatching and aborting runs needs the operator role (and, for a gateway's agent, operate on that gateway)."


def _may_operate(user: Any, gateway_id: int | None) -> bool:
    return has_role(user, "operator") and access.can_operate(user, gateway_id)


def check_dispatch(user: Any, task_id: int) -> None:
    gateway_id = (
        Task.objects.filter(pk=task_id).values_list("assignee_agent__gateway_id", flat=True).first()
    )
    if not _may_operate(user, gateway_id):
        raise Forbidden(NO_OPERATE)


def visible_run(user: Any, run_id: int) -> Run:
    run = Run.objects.select_related("agent", "task").filter(pk=run_id).first()
    gateway_id = run.agent.gateway_id if run is not None and run.agent is not None else None
    if run is None or not access.can_view(user, gateway_id):
        raise NotFound("That run does not exist.")
    return run


def check_operate_run(user: Any, run_id: int) -> Run:
    run = visible_run(user, run_id)
    if not _may_operate(user, run.agent.gateway_id if run.agent is not None else None):
        raise Forbidden(NO_OPERATE)
    return run


def own_run(agent_id: int, run_id: int) -> Run:
    run = Run.objects.filter(pk=run_id).first()
    if run is None or run.agent_id != agent_id:
        raise NotFound("No run of yours has that id.")
    return run


def stop_on_gateway(run: Run) -> str:
    """After an abort: a gateway agent's run is stopped there too (`chat.abort` on its session).
    "" when done or nothing to stop; else why not (the run is aborted here either way)."""
    from gateways import commands
    from gateways.protocol import GatewayError

    gateway_id = run.agent.gateway_id if run.agent is not None else None
    if gateway_id is None or not run.session_key:
        return ""
    params = {"sessionKey": run.session_key, "runId": run.external_run_id}
    try:
        commands.call(gateway_id, "chat.abort", params, timeout=10)
    except commands.Unavailable as unavailable:
        return f"The gateway was not told to stop it: {unavailable}"
    except GatewayError as refused:
        return f"The gateway refused to stop it: {refused.message}"
    return ""
