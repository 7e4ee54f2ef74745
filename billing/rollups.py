"""The hourly rollups rebuilt from the raw records (after a reprice, and once when the rollups
arrived): the same sums `billing.actions._roll_up` keeps on every write, computed in SQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import models
from django.db.models import BigIntegerField, Count, F, Q, Sum, Value
from django.db.models.functions import Cast, Coalesce, Round, TruncHour

BATCH = 2000
# The summed columns of billing.models.UsageRollup, in the order both writers use.
COLUMNS = (
    "records",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_nanos",
    "reported_nanos",
    "reported_records",
    "reported_priced_nanos",
    "unpriced_records",
    "unpriced_tokens",
)


def _nanos(field: str, only: Q | None = None) -> Any:
    # Exact on both databases: PostgreSQL's numeric is exact; SQLite keeps a decimal of ≤ 15
    # significant digits as a float that rounds back to the same nano-dollars.
    return Coalesce(
        Sum(Cast(Round(F(field) * Value(1_000_000_000)), BigIntegerField()), filter=only),
        Value(0),
        output_field=BigIntegerField(),
    )


def rebuild(
    record_model: type[models.Model],
    rollup_model: type[models.Model],
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Replace the rollup rows of the hours in [since, until) by sums of their records; the
    number of rollup rows written. The caller holds the transaction."""
    records = record_model.objects.all()  # type: ignore[attr-defined]
    rollups = rollup_model.objects.all()  # type: ignore[attr-defined]
    if since is not None:
        since = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        records = records.filter(occurred_at__gte=since)
        rollups = rollups.filter(hour__gte=since)
    if until is not None:
        records = records.filter(occurred_at__lt=until)
        rollups = rollups.filter(hour__lt=until)
    rollups.delete()
    tokens = (
        F("input_tokens") + F("output_tokens") + F("cache_read_tokens") + F("cache_write_tokens")
    )
    grouped = (
        records.order_by()
        .annotate(h=TruncHour("occurred_at", tzinfo=UTC))
        .values("h", "agent_id", "agent__gateway_id", "model", "task_id")
        .annotate(
            n=Count("id"),
            i=Sum("input_tokens"),
            o=Sum("output_tokens"),
            r=Sum("cache_read_tokens"),
            w=Sum("cache_write_tokens"),
            z=Sum("reasoning_tokens"),
            c=_nanos("cost_usd"),
            rc=_nanos("reported_cost_usd"),
            rn=Count("id", filter=Q(reported_cost_usd__isnull=False)),
            rp=_nanos("cost_usd", Q(reported_cost_usd__isnull=False)),
            un=Count("id", filter=Q(cost_usd__isnull=True)),
            ut=Coalesce(Sum(tokens, filter=Q(cost_usd__isnull=True)), Value(0)),
        )
    )
    # Records of one hour × agent × model with and without a task id of 0/NULL fold together.
    merged: dict[tuple[Any, ...], list[int]] = {}
    for g in grouped.iterator(chunk_size=BATCH):
        key = (g["h"], g["agent_id"], g["agent__gateway_id"] or 0, g["model"], g["task_id"] or 0)
        sums = [
            g[k] or 0 for k in ("n", "i", "o", "r", "w", "z", "c", "rc", "rn", "rp", "un", "ut")
        ]
        if key in merged:
            merged[key] = [a + b for a, b in zip(merged[key], sums, strict=True)]
        else:
            merged[key] = sums
    objs = [
        rollup_model(
            hour=h,
            agent_id=agent,
            gateway_id=gateway,
            model=model,
            task_id=task,
            **dict(zip(COLUMNS, sums, strict=True)),
        )
        for (h, agent, gateway, model, task), sums in merged.items()
    ]
    rollup_model.objects.bulk_create(objs, batch_size=BATCH)  # type: ignore[attr-defined]
    return len(objs)
