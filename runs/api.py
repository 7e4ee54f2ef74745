"""The runs' API routes, on the one API stack (missioncontrol/api.py).

People's tokens (operators): read a run, abort it, retry it. Dispatching a task
(`POST /tasks/{id}/runs`) is a fast route: runs/fastpath.py, documented in runs/openapi.py.
Agents' keys: claim a run offered in their heartbeat's answer, report progress, finish it.
"""

from __future__ import annotations

from typing import Any, Literal

from django.http import HttpRequest
from ninja import Router, Schema, Status
from ninja.responses import codes_4xx
from pydantic import Field

from agents.keys import KeyInfo
from missioncontrol.api import AgentKeyAuth, ApiError, PersonTokenAuth, Text
from missioncontrol.audit import Actor
from runs import access, actions, events
from runs.models import Run

router = Router(tags=["runs"])


class RunAnswer(Schema):
    run: events.RunData  # the event's own shape: one definition of a run for both


class AgentRunData(events.RunData):
    prompt: str  # the brief the agent is given


class AgentRunAnswer(Schema):
    run: AgentRunData


class ProgressIn(Schema):
    text: Text(2000) = Field(description="What the agent is doing now (the first 500 shown).")  # type: ignore[valid-type]


class FinishIn(Schema):
    outcome: Literal["succeeded", "failed"]
    reply: Text(actions.MAX_REPLY) = Field(  # type: ignore[valid-type]
        "", description="The final answer (markdown), posted on the task as the agent's comment."
    )
    error: Text(1000) = Field("", description="Why it failed, in the agent's words.")  # type: ignore[valid-type]


def _agent_run(run: Run) -> dict[str, Any]:
    return {**events.run_data(run), "prompt": run.prompt}


@router.get(
    "/runs/{id:run_id}",
    auth=[PersonTokenAuth(), AgentKeyAuth()],
    response={200: RunAnswer | AgentRunAnswer, codes_4xx: ApiError},
    summary="A run (people's tokens: any they may see; an agent's key: its own, with its prompt)",
)
def read(request: HttpRequest, run_id: int) -> dict[str, Any]:
    who = request.auth  # type: ignore[attr-defined]
    if isinstance(who, KeyInfo):
        assert who.agent_id is not None
        run = access.own_run(who.agent_id, run_id)
        return {"run": _agent_run(run)}
    return {"run": events.run_data(access.visible_run(who, run_id))}


@router.post(
    "/runs/{id:run_id}/abort",
    auth=PersonTokenAuth(least="operator"),
    response={200: RunAnswer, codes_4xx: ApiError},
    summary="Abort a run (409 run_ended when it has ended)",
)
def abort(request: HttpRequest, run_id: int) -> dict[str, Any]:
    user = request.auth  # type: ignore[attr-defined]
    run = access.check_operate_run(user, run_id)
    aborted = actions.abort(Actor.user(user), run_id)
    access.stop_on_gateway(run)  # best effort: aborted here either way
    return {"run": events.run_data(aborted)}


@router.post(
    "/runs/{id:run_id}/retry",
    auth=PersonTokenAuth(least="operator"),
    response={200: RunAnswer, 202: RunAnswer, codes_4xx: ApiError},
    summary="A new attempt of a run that failed, timed out, was aborted or lost (202 with the "
    "queued run; 409 while it is active or when it is not the task's latest attempt; with an "
    "Idempotency-Key header a retry answers 200 with the same run)",
)
def retry(request: HttpRequest, run_id: int) -> Status[dict[str, Any]]:
    user = request.auth  # type: ignore[attr-defined]
    run = access.check_operate_run(user, run_id)
    access.check_dispatch(user, run.task_id)
    again, created = actions.retry(
        Actor.user(user), run_id, idempotency_key=request.headers.get("Idempotency-Key", "")
    )
    return Status(202 if created else 200, {"run": events.run_data(again)})


def _agent(request: HttpRequest) -> int:
    key: KeyInfo = request.auth  # type: ignore[attr-defined]
    assert key.agent_id is not None
    return key.agent_id


@router.post(
    "/runs/{id:run_id}/claim",
    auth=AgentKeyAuth(),
    response={200: AgentRunAnswer, codes_4xx: ApiError},
    summary="Take a run offered in your heartbeat's answer: running, with a lease your "
    "heartbeats renew (409 when it ended or you run your limit already)",
)
def claim(request: HttpRequest, run_id: int) -> dict[str, Any]:
    return {"run": _agent_run(actions.claim(_agent(request), run_id))}


@router.post(
    "/runs/{id:run_id}/progress",
    auth=AgentKeyAuth(),
    response={200: RunAnswer, codes_4xx: ApiError},
    summary="Say what you are doing now (renews the lease; 409 run_ended: stop)",
)
def progress(request: HttpRequest, run_id: int, body: ProgressIn) -> dict[str, Any]:
    return {"run": events.run_data(actions.report_progress(_agent(request), run_id, body.text))}


@router.post(
    "/runs/{id:run_id}/release",
    auth=AgentKeyAuth(),
    response={200: RunAnswer, codes_4xx: ApiError},
    summary="Give your run back before it ends (queued again, same attempt, for another worker)",
)
def release(request: HttpRequest, run_id: int) -> dict[str, Any]:
    return {"run": events.run_data(actions.release(_agent(request), run_id))}


@router.post(
    "/runs/{id:run_id}/finish",
    auth=AgentKeyAuth(),
    response={200: RunAnswer, codes_4xx: ApiError},
    summary="End your run: succeeded (the reply is posted on the task, which moves on) or failed "
    "(the task is blocked with your reason)",
)
def finish(request: HttpRequest, run_id: int, body: FinishIn) -> dict[str, Any]:
    run = actions.finish(_agent(request), run_id, body.outcome, body.reply, body.error)
    return {"run": events.run_data(run)}
