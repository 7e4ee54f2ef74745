"""The operator API's task routes (people's API tokens, `mct_…`: missioncontrol/tokens.py), on
the one API stack (missioncontrol/api.py): who am I, create a task, list and read tasks. Each
write is the same action as the board's (audited, live, webhooks). The agents' own task routes
are agents/api.py; `GET /tasks` answers both (an agent: its own tasks; a person: the board)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from django.db.models import Count
from django.http import HttpRequest
from ninja import Router, Schema, Status
from ninja.responses import codes_4xx
from pydantic import Field

from agents.keys import KeyInfo
from agents.models import Agent
from missioncontrol.api import AgentKeyAuth, ApiError, PersonTokenAuth, Text
from missioncontrol.audit import Actor
from missioncontrol.errors import Forbidden, Invalid, NotFound
from missioncontrol.roles import role_of
from tasks import actions
from tasks.models import Task

router = Router(tags=["tasks"])


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


class CommentIn(Schema):
    body: Text(20000)  # type: ignore[valid-type]


class CommentOut(Schema):
    id: int
    task: int


class CommentAnswer(Schema):
    comment: CommentOut


class TaskIn(Schema):
    title: Text(200) = Field(min_length=1)  # type: ignore[valid-type]
    description: Text(20000) = ""  # type: ignore[valid-type]
    status: Task.Status = Task.Status.INBOX
    priority: Literal["urgent", "high", "normal", "low"] = "normal"
    labels: list[Text(40)] = Field(  # type: ignore[valid-type]
        default_factory=list, max_length=20
    )
    assignee: Text(150) = Field(  # type: ignore[valid-type]
        "", description="An agent's name or a person's username; empty: nobody."
    )
    blocked_by: list[int] = Field(
        default_factory=list,
        max_length=50,
        description="Tasks to be Done first: a dispatch of this one waits for them.",
    )


class Person(Schema):
    kind: Literal["person"] = "person"
    username: str
    role: str | None


class AgentWho(Schema):
    kind: Literal["agent"] = "agent"
    name: str | None
    key: str


class PersonTask(Schema):
    id: int
    title: str
    description: str
    status: str
    priority: str
    labels: list[str]
    assignee: str | None
    blocked: bool
    blocked_reason: str
    blocked_by: list[int]
    comments: int
    version: int
    url: str


class PersonTasks(Schema):
    tasks: list[PersonTask]


class PersonTaskAnswer(Schema):
    task: PersonTask


class CommentRead(Schema):
    id: int
    author: str
    by_agent: bool
    body: str
    created_at: str


class AttemptRead(Schema):
    id: int
    attempt: int
    agent: str
    state: str
    error: str
    url: str


class PersonTaskFull(PersonTask):
    comment_list: list[CommentRead]
    runs: list[AttemptRead]


class PersonTaskFullAnswer(Schema):
    task: PersonTaskFull


def person_task_json(task: Task, comments: int = 0) -> dict[str, Any]:
    """A task for a person's token (its blockers prefetched, or read here)."""
    return {
        **task_json(task),
        "assignee": task.assignee_display or None,
        "comments": comments,
        "blocked_by": sorted(t.pk for t in task.blocked_by.all()),
    }


def _assignee(name: str) -> actions.Assignee:
    """An agent's name or a person's username (an agent first: their names are distinct)."""
    from django.contrib.auth import get_user_model

    if not name:
        return actions.Assignee()
    agent = Agent.objects.filter(name=name).values_list("pk", flat=True).first()
    if agent is not None:
        return actions.Assignee(agent_id=agent)
    user = (
        get_user_model()
        .objects.filter(username=name, is_active=True)
        .values_list("pk", flat=True)
        .first()
    )
    if user is not None:
        return actions.Assignee(user_id=user)
    raise Invalid({"assignee": [f"No agent or person is called {name!r}."]})


@router.get(
    "/me",
    auth=[PersonTokenAuth(), AgentKeyAuth(enrollment_ok=True)],
    response={200: Person | AgentWho, codes_4xx: ApiError},
    summary="Who the key or token acts as",
)
def me(request: HttpRequest) -> dict[str, Any]:
    who = request.auth  # type: ignore[attr-defined]
    if isinstance(who, KeyInfo):
        return {"kind": "agent", "name": who.agent_name, "key": who.kind}
    return {"kind": "person", "username": who.get_username(), "role": role_of(who)}


def list_for_person(status: str | None, assignee: str) -> dict[str, Any]:
    """The board's tasks for a person's token (open ones first, then done; at most 200)."""
    qs = (
        Task.objects.on_board()
        .select_related("assignee_agent", "assignee_user")
        .prefetch_related("blocked_by")
    )
    if status:
        qs = qs.filter(status=status)
    if assignee:
        who = _assignee(assignee)
        qs = qs.filter(assignee_agent_id=who.agent_id, assignee_user_id=who.user_id)
    qs = qs.annotate(n_comments=Count("comments")).order_by("priority", "status", "position")
    return {"tasks": [person_task_json(t, t.n_comments) for t in qs[:200]]}


@router.post(
    "/tasks",
    auth=PersonTokenAuth(least="operator"),
    response={201: PersonTaskAnswer, codes_4xx: ApiError},
    summary="Create a task (operators' tokens), as the board's New task does",
)
def create(request: HttpRequest, body: TaskIn) -> Status[dict[str, Any]]:
    user = request.auth  # type: ignore[attr-defined]
    task = actions.create_task(
        Actor.user(user),
        title=body.title,
        description=body.description,
        status=body.status.value,
        priority=Task.Priority[body.priority.upper()].value,
        labels=body.labels,
        assignee=_assignee(body.assignee),
        blocked_by=body.blocked_by,
    )
    return Status(201, {"task": person_task_json(task)})


@router.get(
    "/tasks/{id:task_id}",
    auth=PersonTokenAuth(),
    response={200: PersonTaskFullAnswer, codes_4xx: ApiError},
    summary="A task with its comments and its runs, newest attempt first (people's tokens)",
)
def read(request: HttpRequest, task_id: int) -> dict[str, Any]:
    task = (
        Task.objects.on_board()
        .select_related("assignee_agent", "assignee_user")
        .annotate(n_comments=Count("comments"))
        .filter(pk=task_id)
        .first()
    )
    if task is None:
        raise NotFound("That task does not exist (any more).")
    comments = [
        {
            "id": c.pk,
            "author": c.author_label,
            "by_agent": c.by_agent,
            "body": c.body,
            "created_at": c.created_at.isoformat(),
        }
        for c in task.comments.all()[:500]
    ]
    attempts = [
        {
            "id": pk,
            "attempt": attempt,
            "agent": agent,
            "state": state,
            "error": error,
            "url": f"/tasks/{task.pk}/#run-{pk}",
        }
        for pk, attempt, agent, state, error in task.runs.order_by("-attempt").values_list(
            "pk", "attempt", "agent_name", "state", "error"
        )[:100]
    ]
    full = {**person_task_json(task, task.n_comments), "comment_list": comments, "runs": attempts}
    return {"task": full}


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
    auth=[AgentKeyAuth(), PersonTokenAuth()],
    response={200: TasksOut | PersonTasks, codes_4xx: ApiError},
    summary="Tasks: an agent's key, its own (open ones on the board, most urgent first); a "
    "person's token, the board's (filter by assignee: an agent's name, a username, or me)",
)
def tasks(
    request: HttpRequest,
    status: Task.Status | None = None,
    assignee: Annotated[str, Field(max_length=150)] = "",
) -> dict[str, Any]:
    who = request.auth  # type: ignore[attr-defined]
    if not isinstance(who, KeyInfo):
        name = who.get_username() if assignee == "me" else assignee
        return list_for_person(status.value if status else None, name)
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
    auth=AgentKeyAuth(),
    response={200: TaskAnswer, codes_4xx: ApiError},
    summary="Claim an unassigned task (409 when someone holds it)",
)
def claim(request: HttpRequest, task_id: int) -> dict[str, Any]:
    agent_id, actor = _own_agent(request)
    task = _task_for(task_id)
    return {"task": task_json(actions.claim_task(actor, task.pk, agent_id=agent_id))}


class TaskChangeIn(Schema):
    """A change to a task: an agent's key may move and block its own task (`status`,
    `blocked`, `blocked_reason`); an operator's token may change any of these."""

    title: Text(200) | None = Field(None, min_length=1)  # type: ignore[valid-type]
    description: Text(20000) | None = None  # type: ignore[valid-type]
    status: Task.Status | None = None
    priority: Literal["urgent", "high", "normal", "low"] | None = None
    labels: list[Text(40)] | None = Field(None, max_length=20)  # type: ignore[valid-type]
    assignee: Text(150) | None = Field(  # type: ignore[valid-type]
        None, description="An agent's name or a person's username; empty: nobody."
    )
    blocked: bool | None = None
    blocked_reason: Text(500) = ""  # type: ignore[valid-type]
    blocked_by: list[int] | None = Field(
        None, max_length=50, description="Tasks to be Done first (replaces the list)."
    )
    version: int | None = Field(
        None, description="Refuse the change (409) unless the task is still at this version."
    )


PERSON_ONLY = ("title", "description", "priority", "labels", "assignee", "blocked_by", "version")


def person_change(request: HttpRequest, task_id: int, body: TaskChangeIn) -> dict[str, Any]:
    """An operator's token edits a task: fields, block and what it waits for, all or nothing."""
    user = request.auth  # type: ignore[attr-defined]
    if role_of(user) not in ("operator", "admin"):
        raise Forbidden("Changing tasks needs the operator role.")
    changes: dict[str, Any] = {}
    for name in ("title", "description"):
        if getattr(body, name) is not None:
            changes[name] = getattr(body, name)
    if body.status is not None:
        changes["status"] = body.status.value
    if body.priority is not None:
        changes["priority"] = Task.Priority[body.priority.upper()].value
    if body.labels is not None:
        changes["labels"] = body.labels
    if body.assignee is not None:
        changes["assignee"] = _assignee(body.assignee)
    task = actions.edit_task(
        Actor.user(user),
        actions.TaskEdit(
            task_id=task_id,
            changes=changes,  # type: ignore[arg-type]
            blocked=body.blocked,
            blocked_reason=body.blocked_reason,
            blocked_by=body.blocked_by,
            expected_version=body.version,
        ),
    )
    return {"task": person_task_json(task, task.comment_count)}


@router.patch(
    "/tasks/{id:task_id}",
    auth=[AgentKeyAuth(), PersonTokenAuth()],
    response={200: TaskAnswer | PersonTaskAnswer, codes_4xx: ApiError},
    summary="An agent's key: move and/or block its own task. An operator's token: change any "
    "field, its block and what it waits for. All of it or nothing.",
)
def change(request: HttpRequest, task_id: int, body: TaskChangeIn | None = None) -> dict[str, Any]:
    body = body or TaskChangeIn.model_validate({})
    if not isinstance(request.auth, KeyInfo):  # type: ignore[attr-defined]
        return person_change(request, task_id, body)
    agent_id, actor = _own_agent(request)
    if refused := [f for f in PERSON_ONLY if getattr(body, f) is not None]:
        raise Invalid({f: ["An agent's key may change only status and blocked."] for f in refused})
    update = actions.OwnTaskChange(
        agent_id=agent_id,
        task_id=task_id,
        status=body.status.value if body.status else None,
        blocked=body.blocked,
        blocked_reason=body.blocked_reason,
    )
    return {"task": task_json(actions.change_own_task(actor, update))}


@router.post(
    "/tasks/{id:task_id}/comments",
    auth=AgentKeyAuth(),
    response={201: CommentAnswer, codes_4xx: ApiError},
    summary="Comment on its own task or an unassigned one (markdown)",
)
def comment(request: HttpRequest, task_id: int, body: CommentIn) -> Status[dict[str, Any]]:
    agent_id, actor = _own_agent(request)
    task = _task_for(task_id)
    if task.assignee_agent_id != agent_id and (task.assignee_agent_id or task.assignee_user_id):
        raise Forbidden("You may comment on your own tasks and on unassigned ones.")
    made = actions.add_comment(actor, task.pk, body.body, agent=Agent.objects.get(pk=agent_id))
    return Status(201, {"comment": {"id": made.pk, "task": task.pk}})
