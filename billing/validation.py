"""Validation of reported usage (the agent API's heartbeats and usage records, `manage.py
import_usage`): each function returns (cleaned, errors); errors map a field to messages, as
the API answers `400 {"error": "validation_error", "detail": {field: [messages]}}`.

Usage is billing's: it is read here, with the string and number checks the agent API shares
(agents.validation), so that agents' core never imports billing (docs/design.md, the import
direction)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from agents.validation import Errors, check_string, whole
from billing.actions import UsageItem
from billing.models import UsageRecord

MAX_INLINE_USAGE = 100
MAX_BULK_USAGE = 1000
TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
MAX_TOKENS = 10**12
# Bounds of what the columns hold: a value the validator accepts can always be stored and read
# back (a stored row must never break a page).
_COST = UsageRecord._meta.get_field("reported_cost_usd")
COST_PLACES = _COST.decimal_places
COST_LIMIT = Decimal(10) ** (_COST.max_digits - COST_PLACES)
# Usage may be reported late, never from the future (a day of clock skew allowed) nor from
# before there were agents to report it.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SKEW = timedelta(days=1)


def parse_occurred_at(value: Any, now: datetime) -> tuple[datetime | None, str | None]:
    """An aware datetime from an ISO 8601 string, within what can be stored and makes sense."""
    if not isinstance(value, str):
        return None, "An ISO 8601 date-time, e.g. 2026-11-23T10:00:00Z."
    try:
        parsed = parse_datetime(value)
    except ValueError:  # well formed but impossible: 2026-02-30, month 13, hour 25
        return None, "Not a real date and time."
    if parsed is None:
        return None, "An ISO 8601 date-time, e.g. 2026-11-23T10:00:00Z."
    try:
        aware = parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)
        in_utc = aware.astimezone(UTC)
    except (OverflowError, ValueError):
        return None, "Out of range."
    if not EARLIEST <= in_utc <= now + FUTURE_SKEW:
        return None, "Between 2000-01-01 and now (usage is not reported from the future)."
    return in_utc, None


def cost(value: Any) -> tuple[Decimal | None, str | None]:
    """A reported cost in US dollars, rounded to what the column keeps, within its range."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None, "A non-negative amount in US dollars."
    try:
        amount = Decimal(str(value)).quantize(Decimal(1).scaleb(-COST_PLACES))
    except (InvalidOperation, ValueError):
        return None, "A non-negative amount in US dollars."
    if not amount.is_finite() or amount < 0 or amount >= COST_LIMIT:
        return None, f"A non-negative amount in US dollars, below {COST_LIMIT:,}."
    return amount, None


def openai_usage(raw: dict[str, Any], where: str, errors: Errors) -> dict[str, Any]:
    """An OpenAI-style record (`prompt_tokens` that include `cached_tokens`, `completion_tokens`
    that include reasoning) in our convention: input_tokens without the cache. Either shape of
    OpenAI's: `prompt_tokens_details.cached_tokens` or a flat `cached_tokens`."""
    if "prompt_tokens" not in raw or "input_tokens" in raw:
        return raw
    details = raw.get("prompt_tokens_details")
    completion = raw.get("completion_tokens_details")
    prompt = whole(raw.get("prompt_tokens"))
    cached_raw = details.get("cached_tokens", 0) if isinstance(details, dict) else 0
    cached = whole(cached_raw or raw.get("cached_tokens", 0))
    reasoning_raw = completion.get("reasoning_tokens", 0) if isinstance(completion, dict) else 0
    reasoning = reasoning_raw or raw.get("reasoning_tokens", 0)
    if prompt is None or prompt < 0:
        errors[f"{where}.prompt_tokens"] = ["A whole number of tokens, 0 or more, is required."]
        return raw
    if cached is None or not 0 <= cached <= prompt:
        errors[f"{where}.cached_tokens"] = ["Between 0 and prompt_tokens (they include it)."]
        return raw
    converted = {
        k: v
        for k, v in raw.items()
        if k
        not in (
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "prompt_tokens_details",
            "completion_tokens_details",
        )
    }
    converted.update(
        input_tokens=prompt - cached,
        cache_read_tokens=cached,
        output_tokens=raw.get("completion_tokens", 0),
        reasoning_tokens=reasoning,
    )
    return converted


def usage_item(
    raw: Any, agent_id: int, now: datetime, where: str
) -> tuple[UsageItem | None, Errors]:
    errors: Errors = {}
    if not isinstance(raw, dict):
        return None, {where: ["Each usage record is an object."]}
    raw = openai_usage(raw, where, errors)
    if errors:
        return None, errors
    model = raw.get("model")
    if not isinstance(model, str) or not model.strip() or len(model) > 128:
        errors[f"{where}.model"] = ["A model name (1–128 characters) is required."]
    else:
        check_string(raw, "model", 128, errors, f"{where}.model")
    tokens: dict[str, int] = {}
    for name in TOKEN_FIELDS:
        value = raw.get(name, 0 if name not in ("input_tokens", "output_tokens") else None)
        number = whole(value)
        if number is None or number < 0 or number > MAX_TOKENS:
            errors[f"{where}.{name}"] = ["A whole number of tokens, 0 or more, is required."]
        else:
            tokens[name] = number
    client_id = raw.get("id")
    if client_id is not None and (not isinstance(client_id, str) or not 1 <= len(client_id) <= 128):
        errors[f"{where}.id"] = ["The record id is a string of 1–128 characters."]
    else:
        check_string(raw, "id", 128, errors, f"{where}.id")
    reported: Decimal | None = None
    if raw.get("cost_usd") is not None:
        reported, problem = cost(raw["cost_usd"])
        if problem:
            errors[f"{where}.cost_usd"] = [problem]
    occurred: datetime | None = now
    if raw.get("occurred_at") is not None:
        occurred, problem = parse_occurred_at(raw["occurred_at"], now)
        if problem:
            errors[f"{where}.occurred_at"] = [problem]
    task_id = raw.get("task_id")
    if task_id is not None and (whole(task_id) is None or task_id < 1):
        errors[f"{where}.task_id"] = ["A task id (a positive whole number)."]
    for name, limit in (("provider", 64), ("session", 128)):
        check_string(raw, name, limit, errors, f"{where}.{name}")
    if errors:
        return None, errors
    assert occurred is not None
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
            reported_cost_usd=reported,
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
