"""Recording token usage: idempotent by the client's record id, batched for the hot path."""

from __future__ import annotations

import fnmatch
import re
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from agents import actions as agent_actions
from billing import budgets, prices, reports, rollups
from billing.announcer import note_usage
from billing.events import BudgetDeleted, BudgetSaved
from billing.models import (
    Budget,
    BudgetAlert,
    BudgetSpend,
    PriceOverride,
    UsageDailyTask,
    UsageRecord,
)
from gateways import frames
from gateways.models import Gateway
from missioncontrol import audit, live
from missioncontrol.audit import Actor
from missioncontrol.db import bulk
from tasks import actions as task_actions
from tasks.models import Task


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


INSERT_SQL = (
    "INSERT INTO billing_usagerecord (agent_id, client_id, model, provider, input_tokens, output_tokens, "
    "cache_read_tokens, cache_write_tokens, reasoning_tokens, reported_cost_usd, session, task_id, "
    "occurred_at, created_at, cost_usd, price_version) VALUES {values} "
    # The unique constraint is the last word (another process may have won a race): a
    # conflict is skipped, never an error, and RETURNING says which rows went in (SQLite >= 3.35
    # and PostgreSQL both speak this), so the rollups count exactly those.
    "ON CONFLICT DO NOTHING RETURNING agent_id, client_id"
)

ROLLUP_COLUMNS = rollups.COLUMNS


def _upsert_sql(tier: rollups.Tier) -> str:
    table = apps.get_model("billing", tier.model)._meta.db_table
    keys = ", ".join((tier.time_column, *tier.keys))
    return (
        f"INSERT INTO {table} ({keys}, {', '.join(ROLLUP_COLUMNS)}) "  # noqa: S608 - names only
        f"VALUES {{values}} ON CONFLICT ({keys}) DO UPDATE SET "
        + ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in ROLLUP_COLUMNS)
    )


UPSERTS = {tier.model: _upsert_sql(tier) for tier in rollups.TIERS}


@dataclass
class AgentReport:
    """What one request of an agent reports: a heartbeat (None for a usage report alone) and
    usage records."""

    beat: agent_actions.Heartbeat | None
    usage: list[UsageItem]


@dataclass
class ReportResult:
    """What became of one AgentReport: records stored, repeats, records refused (with the
    reason), whether the heartbeat's task was dropped, and the agent's new state (heartbeats;
    None when the agent is gone)."""

    recorded: int = 0
    duplicates: int = 0
    refused_usage: list[dict[str, Any]] = field(default_factory=list)
    task_refused: bool = False
    state: dict[str, Any] | None = None


def record_reports(reports: list[AgentReport]) -> list[ReportResult]:
    """Heartbeats and usage of many requests in one transaction (the ingest writer's batch).
    The rule "an agent reports on its own tasks only" is applied here, once: a heartbeat's task
    that is not the agent's is dropped (and said), a usage record charged to one is refused
    with its reason while the rest is stored."""
    results = [ReportResult() for _ in reports]
    with transaction.atomic():
        named = {r.beat.task_id for r in reports if r.beat and r.beat.task_id is not None}
        named |= {i.task_id for r in reports for i in r.usage if i.task_id is not None}
        owners = Task.objects.owners(named)
        kept: list[UsageItem] = []
        spans: list[tuple[int, int]] = []
        for report, result in zip(reports, results, strict=True):
            beat = report.beat
            named_task = beat.task_id if beat is not None else None
            if (
                beat is not None
                and named_task is not None
                and owners.get(named_task) != beat.agent_id
            ):
                beat.task_id = None
                result.task_refused = True
            start = len(kept)
            for position, item in enumerate(report.usage):
                if item.task_id is None or owners.get(item.task_id, 0) == item.agent_id:
                    kept.append(item)
                    continue
                reason = (
                    f"Task #{item.task_id} does not exist."
                    if item.task_id not in owners
                    else f"Task #{item.task_id} is not one of your tasks: claim it first."
                )
                result.refused_usage.append(
                    {"index": position, "id": item.client_id, "reason": reason}
                )
            spans.append((start, len(kept)))
        states = agent_actions.apply_heartbeats([r.beat for r in reports if r.beat is not None])
        stored = record_usage(kept)
    for report, result, (start, end) in zip(reports, results, spans, strict=True):
        result.recorded = sum(stored[start:end])
        result.duplicates = (end - start) - result.recorded
        if report.beat is not None:
            result.state = states.get(report.beat.agent_id)
    return results


def record_usage(items: list[UsageItem]) -> list[bool]:
    """Store usage records in the caller's transaction, each priced (billing/prices.py), and
    add them to the hourly rollups; per item, True if stored and False if it repeated a client
    id already stored (or earlier in the same batch)."""
    wanted = {(i.agent_id, i.client_id) for i in items if i.client_id}
    existing: set[tuple[int, str | None]] = set()
    if wanted:
        agent_ids = {a for a, _ in wanted}
        ids = {c for _, c in wanted}
        # Raw SQL (the unique index on agent_id, client_id answers it): on the heartbeat path
        # the ORM's compile step cost more than the lookup.
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT agent_id, client_id FROM {UsageRecord._meta.db_table} "  # noqa: S608 - placeholders only
                f"WHERE agent_id IN ({', '.join(['%s'] * len(agent_ids))}) "
                f"AND client_id IN ({', '.join(['%s'] * len(ids))})",
                [*agent_ids, *ids],
            )
            existing = {(a, c) for a, c in cursor.fetchall()}
    fresh: list[tuple[int, UsageItem, prices.Priced]] = []
    rows: list[tuple[Any, ...]] = []
    now = timezone.now()
    for index, item in enumerate(items):
        key = (item.agent_id, item.client_id)
        if item.client_id and key in existing:
            continue
        if item.client_id:
            existing.add(key)
        priced = price_item(item)
        fresh.append((index, item, priced))
        rows.append(
            (
                item.agent_id,
                item.client_id,
                item.model,
                item.provider,
                item.input_tokens,
                item.output_tokens,
                item.cache_read_tokens,
                item.cache_write_tokens,
                item.reasoning_tokens,
                _decimal(item.reported_cost_usd),
                item.session,
                item.task_id,
                _datetime(item.occurred_at),
                _datetime(now),
                _decimal(priced.cost, 20, 9),
                priced.source,
            )
        )
    stored = [False] * len(items)
    if not rows:
        return stored
    inserted: set[tuple[int, str | None]] = set()
    # One statement for the batch (missioncontrol/db/bulk.py): the ORM's per-row cost, and
    # then executemany's per-row step, dominated at 2,000 heartbeats/s.
    with connection.cursor() as cursor:
        for values, params in bulk.values_chunks(rows, len(rows[0])):
            cursor.execute(INSERT_SQL.format(values=values), params)
            inserted.update((a, c) for a, c in cursor.fetchall())
    went_in = []
    for index, item, priced in fresh:
        # Rows without a client id cannot conflict; the others went in if RETURNING named them.
        if item.client_id is None or (item.agent_id, item.client_id) in inserted:
            stored[index] = True
            went_in.append((item, priced))
    _roll_up(went_in)
    return stored


def price_item(item: UsageItem) -> prices.Priced:
    return prices.cost_of(
        item.model,
        item.provider,
        prices.Tokens(
            input=item.input_tokens,
            output=item.output_tokens,
            cache_read=item.cache_read_tokens,
            cache_write=item.cache_write_tokens,
            reasoning=item.reasoning_tokens,
        ),
        item.occurred_at,
        item.reported_cost_usd,
    )


def _gateways_of(agent_ids: set[int]) -> dict[int, int]:
    """Which gateway each agent's usage counts for (0: none); one indexed query a batch (not
    cached: on SQLite a rolled-back agent's id is given again)."""
    ids = sorted(agent_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, gateway_id FROM agents_agent "  # noqa: S608 - placeholders only
            f"WHERE id IN ({', '.join(['%s'] * len(ids))})",
            ids,
        )
        found = {agent_id: gateway_id or 0 for agent_id, gateway_id in cursor.fetchall()}
    return {a: found.get(a, 0) for a in agent_ids}


def _roll_up(stored: list[tuple[UsageItem, prices.Priced]]) -> None:
    """Add newly stored records to the rollups (billing/rollups.py's tiers): one upsert a tier
    for the batch, keys in one order (two writers on PostgreSQL then never wait on each other in
    a cycle)."""
    if not stored:
        return
    gateways = _gateways_of({item.agent_id for item, _p in stored})
    sums: dict[str, dict[tuple[Any, ...], list[int]]] = {t.model: {} for t in rollups.TIERS}
    for item, priced in stored:
        hour = item.occurred_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        fields = {
            "agent_id": item.agent_id,
            "gateway_id": gateways[item.agent_id],
            "model": item.model,
            "task_id": item.task_id or 0,
            "session": item.session,
        }
        tokens = (
            item.input_tokens
            + item.output_tokens
            + item.cache_read_tokens
            + item.cache_write_tokens
        )
        reported = item.reported_cost_usd is not None
        values = (
            1,
            item.input_tokens,
            item.output_tokens,
            item.cache_read_tokens,
            item.cache_write_tokens,
            item.reasoning_tokens,
            prices.nanos(priced.cost),
            prices.nanos(item.reported_cost_usd),
            int(reported),
            prices.nanos(priced.cost) if reported else 0,
            int(not priced.priced),
            0 if priced.priced else tokens,
        )
        for tier in rollups.TIERS:
            if tier.only and not fields[tier.only]:
                continue
            when = hour if tier.grain == "hour" else hour.date()
            key = (when, *(fields[k] for k in tier.keys))
            row = sums[tier.model].setdefault(key, [0] * len(ROLLUP_COLUMNS))
            for i, value in enumerate(values):
                row[i] += value
    with connection.cursor() as cursor:
        for tier in rollups.TIERS:
            rows = [
                (_when(when), *rest, *values)
                for (when, *rest), values in sorted(sums[tier.model].items())
            ]
            if not rows:
                continue  # a task or session tier, when no record named one
            for chunk, params in bulk.values_chunks(rows, len(rows[0])):
                cursor.execute(UPSERTS[tier.model].format(values=chunk), params)
    costs = [(item, prices.nanos(priced.cost)) for item, priced in stored]
    budgets.charge(costs, gateways)
    late = timezone.now() - LATE
    note_usage(
        len(stored),
        sum(cost for _item, cost in costs),
        {item.task_id for item, _cost in costs if item.task_id},
        late=any(item.occurred_at < late for item, _cost in costs),
    )


def _decimal(value: Decimal | None, digits: int = 14, places: int = 6) -> object:
    return (
        connection.ops.adapt_decimalfield_value(value, digits, places)
        if value is not None
        else None
    )


def _datetime(value: datetime) -> object:
    return connection.ops.adapt_datetimefield_value(value)


def _when(value: datetime | date) -> object:
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return connection.ops.adapt_datefield_value(value)


# --- Usage from gateways ------------------------------------------------------------------------


def gateway_usage_items(
    gateway_id: int, agent_id: int, session_key: str, messages: Sequence[frames.UsageMessage]
) -> list[UsageItem]:
    """Usage of a gateway session's assistant messages: one item per message, keyed
    `gw<gateway>:<message id>` so a re-sync, a backfill or the same message as an event and
    again in `chat.history` counts once."""
    return [
        UsageItem(
            agent_id=agent_id,
            model=message.model or "unknown",
            provider=message.provider,
            input_tokens=message.input_tokens,
            output_tokens=message.output_tokens,
            cache_read_tokens=message.cache_read_tokens,
            cache_write_tokens=message.cache_write_tokens,
            reported_cost_usd=message.cost_usd,
            occurred_at=message.at or timezone.now(),
            client_id=f"gw{gateway_id}:{message.message_id}",
            session=session_key[:128],
            task_id=task_of_session(session_key),
        )
        for message in messages
    ]


_TASK_SESSION = re.compile(r":mc-task-(\d{1,18})$")


def task_of_session(session_key: str) -> int | None:
    """The task a gateway session works on: a run dispatched from a task has a session of its
    own, `agent:<id>:mc-task-<task id>` (runs/), and its usage is that task's."""
    found = _TASK_SESSION.search(session_key)
    return int(found.group(1)) if found else None


def record_gateway_usage(
    gateway_id: int, session_key: str, messages: Sequence[frames.UsageMessage]
) -> int:
    """Store the usage of these messages of a gateway session (its agent's), once each, in
    one transaction; the number newly stored. Nothing when the session or its agent is unknown."""
    from agents.models import AgentSession

    with transaction.atomic():
        session = (
            AgentSession.objects.filter(gateway_id=gateway_id, key=session_key[:300])
            .only("agent_id")
            .first()
        )
        if session is None or session.agent_id is None:
            return 0
        items = gateway_usage_items(gateway_id, session.agent_id, session_key, messages)
        return sum(record_usage(items)) if items else 0


def record_backfill(actor: Actor, gateway: Gateway, report: Mapping[str, int | str | None]) -> None:
    """Audit a backfill from a gateway (`manage.py backfill_usage`): what it read and stored
    (the records themselves were stored as they were read, each once)."""
    with transaction.atomic():
        audit.record(actor, "usage.backfilled", gateway, after=dict(report), gateway_id=gateway.pk)


# --- Price overrides and repricing --------------------------------------------------------------


def override_data(override: PriceOverride) -> dict[str, Any]:
    return {
        "id": override.pk,
        "provider": override.provider,
        "model_pattern": override.model_pattern,
        "input_per_mtok": str(override.input_per_mtok),
        "output_per_mtok": str(override.output_per_mtok),
        "cache_read_per_mtok": _text(override.cache_read_per_mtok),
        "cache_write_per_mtok": _text(override.cache_write_per_mtok),
        "effective_from": override.effective_from.isoformat(),
    }


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _save_audited[M: models.Model](
    actor: Actor,
    obj: M,
    data: Callable[[M], dict[str, Any]],
    noun: str,
    gateway_id: Callable[[M], int | None] = lambda _obj: None,
) -> None:
    """Save an admin's row in the caller's transaction, audited as `<noun>.added` or
    `<noun>.changed` with what it was before (`gateway_id`: the gateway the row concerns)."""
    old = type(obj)._default_manager.filter(pk=obj.pk).first() if obj.pk else None
    before = data(old) if old is not None else None
    obj.save()
    audit.record(
        actor,
        f"{noun}.changed" if before else f"{noun}.added",
        obj,
        before=before,
        after=data(obj),
        gateway_id=gateway_id(obj),
    )


def save_override(actor: Actor, override: PriceOverride) -> PriceOverride:
    """Add or change an admin's price (audited); it prices new records at once."""
    with transaction.atomic():
        _save_audited(actor, override, override_data, "price")
    return override


def delete_override(actor: Actor, override: PriceOverride) -> None:
    with transaction.atomic():
        audit.record(actor, "price.deleted", override, before=override_data(override))
        override.delete()


@dataclass
class RepriceReport:
    records: int = 0
    changed: int = 0
    before_nanos: int = 0
    after_nanos: int = 0
    now_unpriced: int = 0
    by_model: dict[str, list[int]] = field(default_factory=dict)  # model → [before, after]

    @property
    def difference(self) -> Decimal:
        return prices.from_nanos(self.after_nanos - self.before_nanos)


REPRICE_CHUNK = 5000


def reprice(
    actor: Actor,
    *,
    since: datetime | None = None,
    model: str = "",
    pattern: str = "",
    for_real: bool = False,
    progress: Callable[[int], object] | None = None,
) -> RepriceReport:
    """Cost records again with the current table and overrides (those of `model`, or of the
    models matching `pattern`, from `since` on); totals before and after. A dry run unless
    `for_real`; then the changed records and their hours' rollups are rewritten, chunk by chunk
    (each its own transaction: a reprice of a million records does not hold the write lock)."""
    report = RepriceReport()
    records = UsageRecord.objects.order_by("pk")
    if since is not None:
        records = records.filter(occurred_at__gte=since)
    if model:
        records = records.filter(model=model)
    elif pattern:
        models = {
            m
            for m in records.values_list("model", flat=True).distinct().order_by()
            if fnmatch.fnmatchcase(m.lower(), pattern.lower())
            or fnmatch.fnmatchcase(prices.split(m, "")[0].lower(), pattern.lower())
        }
        records = records.filter(model__in=models)
    fields = (
        "pk",
        "model",
        "provider",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "occurred_at",
        "reported_cost_usd",
        "cost_usd",
        "price_version",
    )
    last = 0
    first_hour: datetime | None = None
    last_hour: datetime | None = None
    while True:
        chunk = list(records.filter(pk__gt=last).values_list(*fields)[:REPRICE_CHUNK])
        if not chunk:
            break
        last = chunk[-1][0]
        changed: list[UsageRecord] = []
        for pk, m, provider, i, o, r, w, z, at, reported, cost, version in chunk:
            priced = prices.cost_of(
                m,
                provider,
                prices.Tokens(input=i, output=o, cache_read=r, cache_write=w, reasoning=z),
                at,
                reported,
            )
            report.records += 1
            before, after = prices.nanos(cost), prices.nanos(priced.cost)
            report.before_nanos += before
            report.after_nanos += after
            report.now_unpriced += int(not priced.priced)
            totals = report.by_model.setdefault(m, [0, 0])
            totals[0] += before
            totals[1] += after
            if priced.cost != cost or priced.source != version:
                report.changed += 1
                changed.append(
                    UsageRecord(pk=pk, cost_usd=priced.cost, price_version=priced.source)
                )
                hour = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
                first_hour = hour if first_hour is None else min(first_hour, hour)
                last_hour = hour if last_hour is None else max(last_hour, hour)
        if for_real and changed:
            with transaction.atomic():
                bulk.update_many(changed, ["cost_usd", "price_version"])
        if progress is not None:
            progress(len(chunk))
    if for_real and first_hour is not None and last_hour is not None:
        with transaction.atomic():
            rollups.rebuild(
                lambda name: apps.get_model("billing", name),
                first_hour,
                last_hour + timedelta(hours=1),
            )
            recount_task_costs()
            audit.record(
                actor,
                "usage.repriced",
                object_type="usage",
                object_repr=model or pattern or "all models",
                after={
                    "records": report.records,
                    "changed": report.changed,
                    "before_usd": str(prices.from_nanos(report.before_nanos)),
                    "after_usd": str(prices.from_nanos(report.after_nanos)),
                    "since": since.isoformat() if since else None,
                },
            )
            note_usage(report.changed, report.after_nanos - report.before_nanos, late=True)
    return report


def recount_task_costs() -> int:
    """Every task's cost so far from the task rollup (after a reprice rebuilt it); the number
    of tasks whose cost changed."""
    from tasks.models import Task

    found = dict(
        UsageDailyTask.objects.values("task_id")
        .annotate(c=models.Sum("cost_nanos"))
        .order_by()
        .values_list("task_id", "c")
    )
    costed = Task.objects.exclude(cost_nanos=0).values_list("pk", flat=True)
    stale = [pk for pk in costed if pk not in found]
    return task_actions.set_costs({**dict.fromkeys(stale, 0), **found})


# --- The costs topic: usage moves the numbers on screen, coalesced -----------------------------


# Usage older than this may fall in a span the cost pages treat as closed (reports.closed_cost).
LATE = timedelta(minutes=5)


# --- Budgets ------------------------------------------------------------------------------------


def budget_data(budget: Budget) -> dict[str, Any]:
    return {
        "id": budget.pk,
        "name": budget.name,
        "scope": budget.scope,
        "gateway_id": budget.gateway_id,
        "agent_id": budget.agent_id,
        "model": budget.model,
        "period": budget.period,
        "amount_usd": str(budget.amount_usd),
        "thresholds": list(budget.thresholds),
        "enabled": budget.enabled,
        "enforce": budget.enforce,
    }


def save_budget(actor: Actor, budget: Budget) -> Budget:
    """Add or change a budget (audited). Its running total for the current period starts from
    the usage already recorded in it, and thresholds already passed alert at once."""

    with transaction.atomic():
        created = budget.pk is None
        _save_audited(actor, budget, budget_data, "budget", budgets.concerns)
        saved: BudgetSaved = {
            "type": "budget.saved",
            "actor": actor.as_dict(),
            "budget": budget_data(budget),
            "created": created,
        }
        live.publish("costs", saved, gateway_id=budgets.concerns(budget))
        now = timezone.now()
        start = budgets.period_start(budget.period, now)
        tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
        filters = reports.Filters(
            gateway_id=budget.gateway_id if budget.scope == Budget.Scope.GATEWAY else None,
            agent_id=budget.agent_id if budget.scope == Budget.Scope.AGENT else None,
            model=budget.model if budget.scope == Budget.Scope.MODEL else "",
        )
        spent = reports.sums(reports.local_midnight(start, tz), now, filters)[None].cost_nanos
        rule = budgets.rule_of(budget)
        if budget.enabled:
            budgets._add({(budget.pk, start): spent}, {budget.pk: rule}, replace=True)
    budgets.forget()
    return budget


def delete_budget(actor: Actor, budget: Budget) -> None:
    with transaction.atomic():
        audit.record(
            actor,
            "budget.deleted",
            budget,
            before=budget_data(budget),
            gateway_id=budgets.concerns(budget),
        )
        deleted: BudgetDeleted = {
            "type": "budget.deleted",
            "actor": actor.as_dict(),
            "budget": budget_data(budget),
        }
        live.publish("costs", deleted, gateway_id=budgets.concerns(budget))
        budget.delete()
    budgets.forget()


def lift_pause(actor: Actor, budget: Budget) -> bool:
    """Let a spent, enforced budget's agents work on for the rest of its current period
    (audited); False if nothing was paused."""
    if not budget.enforce:
        return False
    now = timezone.now()
    start = budgets.period_start(budget.period, now)
    with transaction.atomic():
        lifted = BudgetSpend.objects.filter(
            budget=budget,
            period_start=start,
            pause_lifted_at__isnull=True,
            spent_nanos__gte=prices.nanos(budget.amount_usd),
        ).update(pause_lifted_at=now, pause_lifted_by_id=actor.user_id)
        if not lifted:
            return False
        audit.record(
            actor,
            "budget.pause_lifted",
            budget,
            after={"period_start": str(start)},
            gateway_id=budgets.concerns(budget),
        )
        event: budgets.BudgetPauseLifted = {
            "type": "budget.pause_lifted",
            "budget": budgets.budget_data(budgets.rule_of(budget)),
            "period_start": str(start),
            "actor": actor.as_dict(),
        }
        live.publish("alerts", event, min_role="operator", gateway_id=budgets.concerns(budget))
        transaction.on_commit(budgets.forget)
    budgets.forget()
    return True


def acknowledge_alert(actor: Actor, alert: BudgetAlert) -> bool:
    """Take a budget alert off everyone's banner (audited); False if it already was."""
    with transaction.atomic():
        done = BudgetAlert.objects.filter(pk=alert.pk, acknowledged_at__isnull=True).update(
            acknowledged_at=timezone.now(), acknowledged_by_id=actor.user_id
        )
        if not done:
            return False
        audit.record(
            actor,
            "budget.alert_acknowledged",
            alert.budget,
            after={"threshold": alert.threshold, "period_start": str(alert.period_start)},
            gateway_id=budgets.concerns(alert.budget),
        )
        event: budgets.BudgetAlertAcknowledged = {
            "type": "budget.alert_acknowledged",
            "alert_id": alert.pk,
            "actor": actor.as_dict(),
        }
        live.publish(
            "alerts", event, min_role="operator", gateway_id=budgets.concerns(alert.budget)
        )
    return True
