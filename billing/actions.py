"""Recording token usage: idempotent by the client's record id, batched for the hot path."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from billing.models import UsageRecord


@dataclass
class UsageItem:
    agent_id: int
    model: str
    input_tokens: int
    output_tokens: int
    occurred_at: datetime
    client_id: str | None = None
    provider: str = ""
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    reported_cost_usd: Decimal | None = None
    session: str = ""
    task_id: int | None = None


def record_usage(items: list[UsageItem]) -> list[bool]:
    """Store usage records in the caller's transaction; per item, True if stored and False if
    it repeated a client id already stored (or earlier in the same batch)."""
    wanted = {(i.agent_id, i.client_id) for i in items if i.client_id}
    existing: set[tuple[int, str | None]] = set()
    if wanted:
        agent_ids = {a for a, _ in wanted}
        ids = {c for _, c in wanted}
        existing = set(
            UsageRecord.objects.filter(agent_id__in=agent_ids, client_id__in=ids).values_list(
                "agent_id", "client_id"
            )
        )
    stored: list[bool] = []
    rows: list[UsageRecord] = []
    for item in items:
        key = (item.agent_id, item.client_id)
        if item.client_id and key in existing:
            stored.append(False)
            continue
        if item.client_id:
            existing.add(key)
        stored.append(True)
        rows.append(
            UsageRecord(
                agent_id=item.agent_id,
                client_id=item.client_id,
                model=item.model,
                provider=item.provider,
                input_tokens=item.input_tokens,
                output_tokens=item.output_tokens,
                cache_read_tokens=item.cache_read_tokens,
                cache_write_tokens=item.cache_write_tokens,
                reasoning_tokens=item.reasoning_tokens,
                reported_cost_usd=item.reported_cost_usd,
                session=item.session,
                task_id=item.task_id,
                occurred_at=item.occurred_at,
            )
        )
    if rows:
        # The unique constraint is the last word (another process may have won a race):
        # conflicts are skipped, never turned into errors.
        UsageRecord.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    return stored
