"""The hourly rollups rebuilt from the raw records (after a reprice, and once when the rollups
arrived): the same sums `billing.actions._roll_up` keeps on every write, computed in SQL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from django.db import connections, models

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


@dataclass(frozen=True)
class Tier:
    """One rollup table: its model's name, its key columns, and its time grain."""

    model: str
    keys: tuple[str, ...]  # after the time column
    grain: Literal["hour", "day"]
    # Only the records whose `only` key is set (a task, a session): the others would add rows
    # that no breakdown reads.
    only: str = ""

    @property
    def time_column(self) -> str:
        return self.grain


TIERS = (
    # The finest first: the coarser ones are rebuilt from it.
    Tier("UsageRollup", ("agent_id", "gateway_id", "model", "task_id", "session"), "hour"),
    Tier("UsageHourlyTotal", ("gateway_id", "model"), "hour"),
    Tier("UsageDailyRollup", ("agent_id", "gateway_id", "model"), "day"),
    Tier("UsageDailyTask", ("task_id", "gateway_id"), "day", only="task_id"),
    Tier("UsageDailySession", ("agent_id", "gateway_id", "session"), "day", only="session"),
)
# Whether a finest-rollup row has the `only` key of a tier.
ONLY_SQL = {"task_id": "task_id > 0", "session": "session <> ''"}

# How each key column is computed from a record `r` joined to its agent `a`.
KEY_SQL = {
    "agent_id": "r.agent_id",
    "gateway_id": "COALESCE(a.gateway_id, 0)",
    "model": "r.model",
    "task_id": "COALESCE(r.task_id, 0)",
    "session": "r.session",
}


def _time_sql(grain: str, vendor: str) -> str:
    # Django keeps SQLite datetimes as UTC text "YYYY-MM-DD HH:MM:SS[.ffffff]", dates as
    # "YYYY-MM-DD"; PostgreSQL's sessions run in UTC (USE_TZ).
    if vendor == "postgresql":
        if grain == "day":
            return "(r.occurred_at AT TIME ZONE 'UTC')::date"
        return "date_trunc('hour', r.occurred_at)"
    if grain == "day":
        return "date(r.occurred_at)"
    return "strftime('%%Y-%%m-%%d %%H:00:00', r.occurred_at)"


def _coarse_time_sql(grain: str, vendor: str) -> str:
    if grain == "hour":
        return "hour"
    return "(hour AT TIME ZONE 'UTC')::date" if vendor == "postgresql" else "date(hour)"


def _at(tier: Tier, value: datetime) -> object:
    return value if tier.grain == "hour" else value.date()


def _nanos_sql(expr: str) -> str:
    # Exact on both: PostgreSQL's numeric is exact; SQLite keeps a decimal of <= 15 significant
    # digits as a float that rounds back to the same nano-dollars.
    return f"CAST(ROUND({expr} * 1000000000) AS BIGINT)"


def _sums_sql() -> dict[str, str]:
    tokens = "r.input_tokens + r.output_tokens + r.cache_read_tokens + r.cache_write_tokens"
    reported = "r.reported_cost_usd IS NOT NULL"
    unpriced = "r.cost_usd IS NULL"
    sums = {
        "records": "COUNT(*)",
        "input_tokens": "SUM(r.input_tokens)",
        "output_tokens": "SUM(r.output_tokens)",
        "cache_read_tokens": "SUM(r.cache_read_tokens)",
        "cache_write_tokens": "SUM(r.cache_write_tokens)",
        "reasoning_tokens": "SUM(r.reasoning_tokens)",
        "cost_nanos": f"COALESCE(SUM({_nanos_sql('r.cost_usd')}), 0)",
        "reported_nanos": f"COALESCE(SUM({_nanos_sql('r.reported_cost_usd')}), 0)",
        "reported_records": f"SUM(CASE WHEN {reported} THEN 1 ELSE 0 END)",
        "reported_priced_nanos": (
            f"COALESCE(SUM(CASE WHEN {reported} THEN {_nanos_sql('r.cost_usd')} END), 0)"
        ),
        "unpriced_records": f"SUM(CASE WHEN {unpriced} THEN 1 ELSE 0 END)",
        "unpriced_tokens": f"COALESCE(SUM(CASE WHEN {unpriced} THEN {tokens} END), 0)",
    }
    assert tuple(sums) == COLUMNS
    return sums


def whole_days(
    since: datetime | None, until: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """[since, until) widened to whole UTC days (the daily rollup's rows are whole days)."""
    if since is not None:
        since = since.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if until is not None:
        floor = until.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        until = floor if floor == until else floor + timedelta(days=1)
    return since, until


def rebuild(
    get_model: Callable[[str], type[models.Model]],
    since: datetime | None = None,
    until: datetime | None = None,
    tiers: tuple[Tier, ...] = TIERS,
) -> int:
    """Replace every rollup's rows of the UTC days touching [since, until) by sums of their
    records, one INSERT … SELECT … GROUP BY a table (rows never pass through Python: a million
    records rebuild in seconds); the number of rows written. The caller holds the transaction.
    `get_model("UsageRollup")` → the model (the app registry's, or a migration's); `tiers`: the
    tiers as that model state has them (a migration's own copy), the finest first."""
    record_model = get_model("UsageRecord")
    connection = connections[record_model.objects.db]  # type: ignore[attr-defined]
    since, until = whole_days(since, until)
    where, params = [], []
    if since is not None:
        where.append("r.occurred_at >= %s")
        params.append(connection.ops.adapt_datetimefield_value(since))
    if until is not None:
        where.append("r.occurred_at < %s")
        params.append(connection.ops.adapt_datetimefield_value(until))
    sums = _sums_sql()
    written = 0
    finest = get_model(tiers[0].model)._meta.db_table
    for tier in tiers:
        target = get_model(tier.model)
        old = target.objects.all()  # type: ignore[attr-defined]
        if since is not None:
            old = old.filter(**{f"{tier.time_column}__gte": _at(tier, since)})
        if until is not None:
            old = old.filter(**{f"{tier.time_column}__lt": _at(tier, until)})
        old.delete()
        if tier is tiers[0]:
            # The finest rollup from the records …
            group = [_time_sql(tier.grain, connection.vendor), *(KEY_SQL[k] for k in tier.keys)]
            sql = (
                f"INSERT INTO {target._meta.db_table} ({tier.time_column}, {', '.join(tier.keys)}, "  # noqa: S608 - names only
                f"{', '.join(sums)}) SELECT {', '.join(group)}, {', '.join(sums.values())} "
                f"FROM {record_model._meta.db_table} r JOIN agents_agent a ON a.id = r.agent_id "
                f"{'WHERE ' + ' AND '.join(where) if where else ''} GROUP BY {', '.join(group)}"
            )
            args = params
        else:
            # … the coarser ones from it (a fifth of the rows to read, no join).
            when = _coarse_time_sql(tier.grain, connection.vendor)
            group = [when, *tier.keys]
            bounds = []
            args = []
            if since is not None:
                bounds.append("hour >= %s")
                args.append(connection.ops.adapt_datetimefield_value(since))
            if until is not None:
                bounds.append("hour < %s")
                args.append(connection.ops.adapt_datetimefield_value(until))
            if tier.only:
                bounds.append(ONLY_SQL[tier.only])
            sql = (
                f"INSERT INTO {target._meta.db_table} ({tier.time_column}, {', '.join(tier.keys)}, "  # noqa: S608 - names only
                f"{', '.join(sums)}) SELECT {', '.join(group)}, "
                f"{', '.join(f'SUM({c})' for c in COLUMNS)} FROM {finest} "
                f"{'WHERE ' + ' AND '.join(bounds) if bounds else ''} GROUP BY {', '.join(group)}"
            )
        with connection.cursor() as cursor:
            cursor.execute(sql, args)
            written += int(cursor.rowcount)
    return written
