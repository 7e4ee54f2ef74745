"""The agent API on DRF: registration and the agent's own tasks (the hot path is ingest.py)."""

from __future__ import annotations

import json
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from agents import actions, validation
from agents.api_auth import AgentAPIView
from agents.keys import KeyInfo
from agents.models import Agent, AgentKey
from missioncontrol.audit import Actor
from missioncontrol.errors import Forbidden, Invalid, NotFound
from tasks import actions as task_actions
from tasks.models import Task


class Text(serializers.CharField):
    """A string every database stores as it is: no NUL, no lone surrogates (DRF's CharField
    lets surrogates through, and SQLite and PostgreSQL refuse them at write time)."""

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        problem = validation.text_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value


MAX_METADATA_BYTES = 16384


class RegisterSerializer(serializers.Serializer):
    name = Text(max_length=64)
    framework = Text(max_length=64, required=False, allow_blank=True, default="")
    role = Text(max_length=64, required=False, allow_blank=True, default="")
    capabilities = serializers.ListField(
        child=Text(max_length=64), max_length=50, required=False, default=list
    )
    version = Text(max_length=64, required=False, allow_blank=True, default="")
    metadata = serializers.DictField(required=False, default=dict)
    heartbeat_interval_s = serializers.IntegerField(min_value=5, max_value=3600, required=False)

    def validate_metadata(self, value: dict[str, Any]) -> dict[str, Any]:
        problem = validation.json_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        if len(json.dumps(value)) > MAX_METADATA_BYTES:
            raise serializers.ValidationError(f"At most {MAX_METADATA_BYTES} bytes of JSON.")
        return value


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


class RegisterView(AgentAPIView):
    """POST /api/v1/agents/register"""

    @extend_schema(
        request=RegisterSerializer,
        responses={201: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT},
        summary="Register an agent (enrollment key: returns its own key once; agent key: idempotent)",
    )
    def post(self, request: Request) -> Response:
        key: KeyInfo = request.auth
        data = RegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        name = fields.pop("name")
        registration = actions.register_agent(
            key, name=name, profile=actions.AgentProfile(**fields)
        )
        body: dict[str, Any] = {"agent": agent_json(registration.agent)}
        if registration.new_key:
            body["api_key"] = registration.new_key
            body["api_key_note"] = "Shown once: store it now. Use it for heartbeats and usage."
        return Response(
            body, status=status.HTTP_201_CREATED if registration.created else status.HTTP_200_OK
        )


def _own_agent(request: Request) -> tuple[int, Actor]:
    """The calling agent's id and actor; 403 for enrollment keys."""
    key: KeyInfo = request.auth
    if key.kind != AgentKey.Kind.AGENT or key.agent_name is None or key.agent_id is None:
        raise Forbidden("Only an agent's own key can act on tasks.")
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


class TasksView(AgentAPIView):
    """GET /api/v1/tasks?assignee=me&status=…: the agent's tasks."""

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=Task.Status.values),
            OpenApiParameter("assignee", str, enum=["me"]),
        ],
        responses={200: OpenApiTypes.OBJECT},
        summary="The agent's own tasks",
    )
    def get(self, request: Request) -> Response:
        agent_id, _actor = _own_agent(request)
        qs = (
            Task.objects.on_board()
            .filter(assignee_agent_id=agent_id)
            .order_by("priority", "position")
        )
        wanted = request.query_params.get("status")
        if wanted:
            if wanted not in Task.Status.values:
                raise Invalid({"status": [f"One of {', '.join(Task.Status.values)}."]})
            qs = qs.filter(status=wanted)
        return Response({"tasks": [task_json(t) for t in qs[:200]]})


def _task_for(pk: int) -> Task:
    task = Task.objects.on_board().filter(pk=pk).first()
    if task is None:
        raise NotFound("That task does not exist (any more).")
    return task


class ClaimView(AgentAPIView):
    """POST /api/v1/tasks/{id}/claim: take an unassigned task (409 if someone holds it)."""

    @extend_schema(
        request=None, responses={200: OpenApiTypes.OBJECT}, summary="Claim an unassigned task"
    )
    def post(self, request: Request, pk: int) -> Response:
        agent_id, actor = _own_agent(request)
        task = _task_for(pk)
        claimed = task_actions.claim_task(actor, task.pk, agent_id=agent_id)
        return Response({"task": task_json(claimed)})


class TaskPatchSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Task.Status.values, required=False)
    blocked = serializers.BooleanField(required=False)
    blocked_reason = Text(max_length=500, required=False, allow_blank=True)


class TaskView(AgentAPIView):
    """PATCH /api/v1/tasks/{id} {status?, blocked?, blocked_reason?} on the agent's own task."""

    @extend_schema(
        request=TaskPatchSerializer,
        responses={200: OpenApiTypes.OBJECT},
        summary="Move or block its own task",
    )
    def patch(self, request: Request, pk: int) -> Response:
        agent_id, actor = _own_agent(request)
        data = TaskPatchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        change = task_actions.OwnTaskChange(
            agent_id=agent_id,
            task_id=pk,
            status=values.get("status"),
            blocked=values.get("blocked"),
            blocked_reason=values.get("blocked_reason", ""),
        )
        return Response({"task": task_json(task_actions.change_own_task(actor, change))})


class CommentSerializer(serializers.Serializer):
    body = Text(max_length=20000)


class CommentsView(AgentAPIView):
    """POST /api/v1/tasks/{id}/comments {body}: a comment by the agent."""

    @extend_schema(
        request=CommentSerializer, responses={201: OpenApiTypes.OBJECT}, summary="Comment on a task"
    )
    def post(self, request: Request, pk: int) -> Response:
        agent_id, actor = _own_agent(request)
        task = _task_for(pk)
        if task.assignee_agent_id != agent_id and (task.assignee_agent_id or task.assignee_user_id):
            raise Forbidden("You may comment on your own tasks and on unassigned ones.")
        data = CommentSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        comment = task_actions.add_comment(
            actor, task.pk, data.validated_data["body"], agent=Agent.objects.get(pk=agent_id)
        )
        return Response(
            {"comment": {"id": comment.pk, "task": task.pk}}, status=status.HTTP_201_CREATED
        )
