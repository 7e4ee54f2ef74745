"""The agent API's routes besides the fast ones (agents/ingest.py): registration and the agent's
own tasks. django-ninja operations on `missioncontrol.api` (the one API stack): pydantic schemas
in, the actions' typed commands out; refusals are the actions' ActionErrors."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from django.http import HttpRequest
from ninja import Router, Schema, Status
from ninja.responses import codes_4xx
from pydantic import AfterValidator, Field, field_validator

from agents import actions, validation
from agents.keys import KeyInfo
from agents.models import Agent
from missioncontrol.api import AgentKeyAuth
from missioncontrol.audit import Actor
from missioncontrol.errors import Forbidden, NotFound
from tasks import actions as task_actions
from tasks.models import Task


def _storable(value: str) -> str:
    """A string every database stores as it is: no NUL, no lone surrogates."""
    problem = validation.text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def Text(max_length: int) -> Any:
    return Annotated[str, Field(max_length=max_length), AfterValidator(_storable)]


MAX_METADATA_BYTES = 16384


class ApiError(Schema):
    error: str
    detail: Any = None


class RegisterIn(Schema):
    name: Text(64) = Field(min_length=1)  # type: ignore[valid-type]
    framework: Text(64) = ""  # type: ignore[valid-type]
    role: Text(64) = ""  # type: ignore[valid-type]
    capabilities: list[Text(64)] = Field(default_factory=list, max_length=50)  # type: ignore[valid-type]
    version: Text(64) = ""  # type: ignore[valid-type]
    metadata: dict[str, Any] = Field(default_factory=dict)
    heartbeat_interval_s: int | None = Field(None, ge=5, le=3600)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        problem = validation.json_problem(value)
        if problem:
            raise ValueError(problem)
        if len(json.dumps(value)) > MAX_METADATA_BYTES:
            raise ValueError(f"At most {MAX_METADATA_BYTES} bytes of JSON.")
        return value


class AgentOut(Schema):
    name: str
    framework: str
    role: str
    capabilities: list[Any]
    version: str
    status: str
    last_seen: str | None
    heartbeat_interval_s: int


class RegisterOut(Schema):
    agent: AgentOut
    api_key: str | None = Field(None, description="Only when a new agent was made: shown once.")
    api_key_note: str | None = None


class TaskOut(Schema):
    id: int
    title: str
    description: str
    status: str
    priority: str
    labels: list[str]
    blocked: bool
    blocked_reason: str
    version: int
    url: str


class TasksOut(Schema):
    tasks: list[TaskOut]


class TaskAnswer(Schema):
    task: TaskOut


class TaskPatch(Schema):
    status: Task.Status | None = None
    blocked: bool | None = None
    blocked_reason: Text(500) = ""  # type: ignore[valid-type]


class CommentIn(Schema):
    body: Text(20000)  # type: ignore[valid-type]


class CommentOut(Schema):
    id: int
    task: int


class CommentAnswer(Schema):
    comment: CommentOut


router = Router(tags=["agents"], auth=AgentKeyAuth())


def agent_json(agent: Any) -> dict[str, Any]:
    return {
        "name": agent.name,
        "framework": agent.framework,
        "role": agent.role,
        "capabilities": agent.capabilities,
        "version": agent.version,
        "status": agent.status,
        "last_seen": agent.last_seen_at.isoformat() if agent.last_seen_at else None,
        "heartbeat_interval_s": agent.heartbeat_interval_s,
    }


@router.post(
    "/agents/register",
    auth=AgentKeyAuth(enrollment_ok=True),
    response={200: RegisterOut, 201: RegisterOut, codes_4xx: ApiError},
    exclude_none=True,
    summary="Register an agent (enrollment key: returns its own key once; agent key: idempotent)",
)
def register(request: HttpRequest, body: RegisterIn) -> Status[dict[str, Any]]:
    key: KeyInfo = request.auth  # type: ignore[attr-defined]
    fields = body.model_dump()
    name = fields.pop("name")
    registration = actions.register_agent(key, name=name, profile=actions.AgentProfile(**fields))
    answer: dict[str, Any] = {"agent": agent_json(registration.agent)}
    if registration.new_key:
        answer["api_key"] = registration.new_key
        answer["api_key_note"] = "Shown once: store it now. Use it for heartbeats and usage."
    return Status(201 if registration.created else 200, answer)


def _own_agent(request: HttpRequest) -> tuple[int, Actor]:
    """The calling agent's id and actor (AgentKeyAuth admits only agents' own keys here)."""
    key: KeyInfo = request.auth  # type: ignore[attr-defined]
    assert key.agent_id is not None
    assert key.agent_name is not None
    return key.agent_id, Actor.agent(key.agent_name)


def task_json(task: Task) -> dict[str, Any]:
    return {
        "id": task.pk,
        "title": task.title,
        "description": task.description,
        "status": task.status,
        "priority": Task.Priority(task.priority).label.lower(),
        "labels": task.label_list,
        "blocked": task.blocked,
        "blocked_reason": task.blocked_reason,
        "version": task.version,
        "url": f"/tasks/{task.pk}/",
    }


@router.get(
    "/tasks",
    response={200: TasksOut, codes_4xx: ApiError},
    summary="The agent's own tasks (open ones on the board), most urgent first",
)
def tasks(
    request: HttpRequest, status: Task.Status | None = None, assignee: Literal["me"] = "me"
) -> dict[str, Any]:
    agent_id, _actor = _own_agent(request)
    qs = Task.objects.on_board().filter(assignee_agent_id=agent_id).order_by("priority", "position")
    if status:
        qs = qs.filter(status=status)
    return {"tasks": [task_json(t) for t in qs[:200]]}


def _task_for(pk: int) -> Task:
    task = Task.objects.on_board().filter(pk=pk).first()
    if task is None:
        raise NotFound("That task does not exist (any more).")
    return task


@router.post(
    "/tasks/{id:task_id}/claim",
    response={200: TaskAnswer, codes_4xx: ApiError},
    summary="Claim an unassigned task (409 when someone holds it)",
)
def claim(request: HttpRequest, task_id: int) -> dict[str, Any]:
    agent_id, actor = _own_agent(request)
    task = _task_for(task_id)
    return {"task": task_json(task_actions.claim_task(actor, task.pk, agent_id=agent_id))}


@router.patch(
    "/tasks/{id:task_id}",
    response={200: TaskAnswer, codes_4xx: ApiError},
    summary="Move and/or block its own task (all of it or nothing)",
)
def change(request: HttpRequest, task_id: int, body: TaskPatch | None = None) -> dict[str, Any]:
    agent_id, actor = _own_agent(request)
    body = body or TaskPatch()
    update = task_actions.OwnTaskChange(
        agent_id=agent_id,
        task_id=task_id,
        status=body.status.value if body.status else None,
        blocked=body.blocked,
        blocked_reason=body.blocked_reason,
    )
    return {"task": task_json(task_actions.change_own_task(actor, update))}


@router.post(
    "/tasks/{id:task_id}/comments",
    response={201: CommentAnswer, codes_4xx: ApiError},
    summary="Comment on its own task or an unassigned one (markdown)",
)
def comment(request: HttpRequest, task_id: int, body: CommentIn) -> Status[dict[str, Any]]:
    agent_id, actor = _own_agent(request)
    task = _task_for(task_id)
    if task.assignee_agent_id != agent_id and (task.assignee_agent_id or task.assignee_user_id):
        raise Forbidden("You may comment on your own tasks and on unassigned ones.")
    made = task_actions.add_comment(actor, task.pk, body.body, agent=Agent.objects.get(pk=agent_id))
    return Status(201, {"comment": {"id": made.pk, "task": task.pk}})
