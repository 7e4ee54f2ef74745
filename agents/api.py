"""The agent API's routes besides the fast ones (agents/ingest.py): registration (its tasks are
tasks/api.py's). django-ninja operations on `missioncontrol.api` (the one API stack): pydantic schemas
in, the actions' typed commands out; refusals are the actions' ActionErrors."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema, Status
from ninja.responses import codes_4xx
from pydantic import Field, field_validator

from agents import actions, validation
from agents.keys import KeyInfo
from missioncontrol.api import AgentKeyAuth, ApiError, Text

MAX_METADATA_BYTES = 16384


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
