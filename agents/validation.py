"""Validation of the agent API's JSON bodies, shared by the fast path and the DRF views.

Each function returns (cleaned, errors); errors map a field to messages, as the API answers
`400 {"error": "validation_error", "detail": {field: [messages]}}`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from agents.models import Agent
from billing.actions import UsageItem

Errors = dict[str, list[str]]
MAX_INLINE_USAGE = 100
MAX_BULK_USAGE = 1000
HEARTBEAT_STATUSES = (Agent.Status.IDLE, Agent.Status.BUSY, Agent.Status.ERROR)
TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
MAX_TOKENS = 10**12


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def usage_item(
    raw: Any, agent_id: int, now: datetime, where: str
) -> tuple[UsageItem | None, Errors]:
    errors: Errors = {}
    if not isinstance(raw, dict):
        return None, {where: ["Each usage record is an object."]}
    model = raw.get("model")
    if not isinstance(model, str) or not model.strip() or len(model) > 128:
        errors[f"{where}.model"] = ["A model name (1–128 characters) is required."]
    tokens: dict[str, int] = {}
    for name in TOKEN_FIELDS:
        value = raw.get(name, 0 if name not in ("input_tokens", "output_tokens") else None)
        number = _int(value)
        if number is None or number < 0 or number > MAX_TOKENS:
            errors[f"{where}.{name}"] = ["A whole number of tokens, 0 or more, is required."]
        else:
            tokens[name] = number
    client_id = raw.get("id")
    if client_id is not None and (not isinstance(client_id, str) or not 1 <= len(client_id) <= 128):
        errors[f"{where}.id"] = ["The record id is a string of 1–128 characters."]
    cost: Decimal | None = None
    if raw.get("cost_usd") is not None:
        try:
            cost = Decimal(str(raw["cost_usd"]))
            if not cost.is_finite() or cost < 0 or cost > Decimal("100000000"):
                raise InvalidOperation
        except (InvalidOperation, ValueError):
            errors[f"{where}.cost_usd"] = ["A non-negative amount in US dollars."]
    occurred = now
    if raw.get("occurred_at") is not None:
        parsed = parse_datetime(raw["occurred_at"]) if isinstance(raw["occurred_at"], str) else None
        if parsed is None:
            errors[f"{where}.occurred_at"] = ["An ISO 8601 date-time, e.g. 2026-11-23T10:00:00Z."]
        else:
            occurred = parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)
    task_id = raw.get("task_id")
    if task_id is not None and (_int(task_id) is None or task_id < 1):
        errors[f"{where}.task_id"] = ["A task id (a positive whole number)."]
    for name, limit in (("provider", 64), ("session", 128)):
        value = raw.get(name, "")
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            errors[f"{where}.{name}"] = [f"A string of at most {limit} characters."]
    if errors:
        return None, errors
    return (
        UsageItem(
            agent_id=agent_id,
            model=str(model).strip(),
            input_tokens=tokens["input_tokens"],
            output_tokens=tokens["output_tokens"],
            cache_read_tokens=tokens["cache_read_tokens"],
            cache_write_tokens=tokens["cache_write_tokens"],
            reasoning_tokens=tokens["reasoning_tokens"],
            occurred_at=occurred,
            client_id=client_id,
            provider=raw.get("provider") or "",
            reported_cost_usd=cost,
            session=raw.get("session") or "",
            task_id=task_id,
        ),
        {},
    )


def usage_list(
    raw: Any, agent_id: int, now: datetime, where: str, limit: int
) -> tuple[list[UsageItem], Errors]:
    if raw is None:
        return [], {}
    if not isinstance(raw, list):
        return [], {where: ["A list of usage records."]}
    if len(raw) > limit:
        return [], {where: [f"At most {limit} records per request."]}
    items, errors = [], {}
    for index, entry in enumerate(raw):
        item, errs = usage_item(entry, agent_id, now, f"{where}[{index}]")
        errors.update(errs)
        if item:
            items.append(item)
    return items, errors


def heartbeat(body: Any, agent_id: int, now: datetime) -> tuple[dict[str, Any], Errors]:
    """{status?, task_id?, message?, usage?} → cleaned; or the compatibility shape
    {status?, token_usage: {model, inputTokens, outputTokens}}."""
    if not isinstance(body, dict):
        return {}, {"body": ["A JSON object is required."]}
    errors: Errors = {}
    status = body.get("status")
    if status is not None and status not in HEARTBEAT_STATUSES:
        errors["status"] = ["One of idle, busy, error."]
    task_id = body.get("task_id")
    if task_id is not None and (_int(task_id) is None or task_id < 1):
        errors["task_id"] = ["A task id (a positive whole number)."]
    message = body.get("message")
    if message is not None and (not isinstance(message, str) or len(message) > 500):
        errors["message"] = ["A message of at most 500 characters."]
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
    usage, usage_errors = usage_list(raw_usage, agent_id, now, "usage", MAX_INLINE_USAGE)
    errors.update(usage_errors)
    return {"status": status, "task_id": task_id, "message": message, "usage": usage}, errors
