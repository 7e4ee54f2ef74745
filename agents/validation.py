"""Validation of the agent API's JSON bodies, shared by the fast path and the DRF views: the
string and number checks, and the heartbeat's own fields. Usage (inline in a heartbeat, or
records) is billing's to read (billing.validation): agents' core does not import billing.

Each function returns (cleaned, errors); errors map a field to messages, as the API answers
`400 {"error": "validation_error", "detail": {field: [messages]}}`.
"""

from __future__ import annotations

from typing import Any

from agents.models import Agent
from missioncontrol.http import text_problem

Errors = dict[str, list[str]]
HEARTBEAT_STATUSES = (Agent.Status.IDLE, Agent.Status.BUSY, Agent.Status.ERROR)
# What a 64-bit column holds: a value the validator accepts can always be stored.
MAX_BIGINT = 2**63 - 1


def whole(value: Any, high: int = MAX_BIGINT) -> int | None:
    """A whole number (not a boolean) within ±`high`, or None."""
    if isinstance(value, bool) or not isinstance(value, int) or not -high - 1 <= value <= high:
        return None
    return value


def json_problem(value: Any, depth: int = 0) -> str | None:
    """Why a JSON value (metadata) cannot be stored everywhere, or None."""
    if depth > 20:
        return "Nested too deeply (at most 20 levels)."
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, dict):
        for key, item in value.items():
            problem = text_problem(key) or json_problem(item, depth + 1)
            if problem:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = json_problem(item, depth + 1)
            if problem:
                return problem
    elif isinstance(value, int) and not isinstance(value, bool) and whole(value) is None:
        return "A number too large to store."
    return None


def check_string(raw: dict[str, Any], name: str, limit: int, errors: Errors, where: str) -> None:
    """`raw[name]`, when present, is a string of at most `limit` characters a database can
    store; else an error under `where`."""
    value = raw.get(name)
    if value is None:
        return
    if not isinstance(value, str) or len(value) > limit:
        errors[where] = [f"A string of at most {limit} characters."]
        return
    problem = text_problem(value)
    if problem:
        errors[where] = [problem]


def heartbeat(body: Any) -> tuple[dict[str, Any], Errors]:
    """{status?, task_id?, message?, usage?} → cleaned; or the compatibility shape
    {status?, token_usage: {model, inputTokens, outputTokens}}. Its usage is handed on as sent
    (`usage`, a list in our shape, or None) for billing.validation to read."""
    if not isinstance(body, dict):
        return {}, {"body": ["A JSON object is required."]}
    errors: Errors = {}
    status = body.get("status")
    if status is not None and status not in HEARTBEAT_STATUSES:
        errors["status"] = ["One of idle, busy, error."]
    task_id = body.get("task_id")
    if task_id is not None and (whole(task_id) is None or task_id < 1):
        errors["task_id"] = ["A task id (a positive whole number)."]
    message = body.get("message")
    if message is not None and (not isinstance(message, str) or len(message) > 500):
        errors["message"] = ["A message of at most 500 characters."]
    else:
        check_string(body, "message", 500, errors, "message")
    raw_usage = body.get("usage")
    if raw_usage is None and isinstance(body.get("token_usage"), dict):
        # The shape other agent dashboards use.
        tu = body["token_usage"]
        raw_usage = [
            {
                "model": tu.get("model"),
                "input_tokens": tu.get("inputTokens", tu.get("input_tokens")),
                "output_tokens": tu.get("outputTokens", tu.get("output_tokens")),
            }
        ]
    return {"status": status, "task_id": task_id, "message": message, "usage": raw_usage}, errors
