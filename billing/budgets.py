"""Budgets: running totals per budget and period, kept by the action that writes usage (no
re-scan), and an alert once per threshold per period, exactly — the unique (budget, period,
threshold) row is the last word under concurrent writers.

Periods are days or months in the server's time zone (MC_TIME_ZONE).

An enforced budget pauses the agents it covers once it is spent (100 %): every heartbeat answer
says so, claiming or being assigned a task is refused with the reason, `mc-agent run` will not
start new work. The pause ends with the period, or when an admin lifts it (for that period) or
raises the amount. Model budgets never pause anyone: a model is not an agent, and pausing every
agent that once used it would stop unrelated work."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from billing import prices
from missioncontrol import audit, live
from missioncontrol.audit import Actor
from missioncontrol.cached import Reloaded
from missioncontrol.db import bulk
from missioncontrol.errors import AgentPaused

if TYPE_CHECKING:
    from billing.actions import UsageItem
    from billing.models import Budget

# Other processes see a budget change within this many seconds (one small query a second per
# process at most); this process at once (Budget's signals).
RULES_TTL_S = 1.0


@dataclass(frozen=True)
class Rule:
    id: int
    name: str
    scope: str
    gateway_id: int | None
    agent_id: int | None
    model: str
    period: str
    amount_usd: Decimal
    thresholds: tuple[int, ...]
    enforce: bool = False
    # The gateway whose data the budget is about (`concerns`): its alerts, events and audit
    # rows reach only those who may see it.
    concerns: int | None = None

    def matches(self, agent_id: int, gateway_id: int, model: str) -> bool:
        if self.scope == "gateway":
            return gateway_id == self.gateway_id
        if self.scope == "agent":
            return agent_id == self.agent_id
        if self.scope == "model":
            return model == self.model
        return True

    @property
    def amount_nanos(self) -> int:
        return prices.nanos(self.amount_usd)


def period_start(period: str, at: datetime) -> date:
    local = at.astimezone(zoneinfo.ZoneInfo(settings.TIME_ZONE)).date()
    return local.replace(day=1) if period == "month" else local


def _load_rules() -> list[Rule]:
    from billing.models import Budget

    return [rule_of(b) for b in Budget.objects.filter(enabled=True).select_related("agent")]


# The enabled budgets, cached per process (this process forgets on a change at once, others
# within RULES_TTL_S: an alert is then raised within a second of crossing everywhere).
_rules = Reloaded("budget rules", _load_rules, RULES_TTL_S)
rules = _rules.get


def forget() -> None:
    _rules.forget()
    _pauses.forget()


def concerns(budget: Budget) -> int | None:
    """The gateway a budget's data is about: a gateway's budget, that gateway; an agent's, the
    agent's gateway (None for a directly registered agent: everyone's); one over everything or
    a model sums every gateway's spend: live.EVERY_GATEWAY (only users who see them all)."""
    if budget.scope == "gateway":
        return budget.gateway_id
    if budget.scope == "agent":
        return budget.agent.gateway_id if budget.agent_id and budget.agent else None
    return live.EVERY_GATEWAY


def rule_of(budget: Budget) -> Rule:
    return Rule(
        concerns=concerns(budget),
        id=budget.pk,
        name=budget.name,
        scope=budget.scope,
        gateway_id=budget.gateway_id,
        agent_id=budget.agent_id,
        model=budget.model,
        period=budget.period,
        amount_usd=budget.amount_usd,
        # An enforced budget always alerts at 100 %: that alert is when its agents pause.
        thresholds=tuple(
            sorted({int(t) for t in budget.thresholds} | ({100} if budget.enforce else set()))
        ),
        enforce=budget.enforce,
    )


# --- Pauses (enforced budgets that are spent) ---------------------------------------------------


class PauseData(TypedDict):
    budget_id: int
    budget: str
    scope: str
    period: str
    period_start: str
    spent_usd: str
    amount_usd: str
    reason: str


@dataclass(frozen=True)
class Pause:
    """An enforced budget spent in its current period (and not lifted)."""

    rule: Rule
    period_start: date
    spent_usd: Decimal

    @property
    def budget_id(self) -> int:
        return self.rule.id

    @property
    def budget(self) -> str:
        return self.rule.name

    @property
    def amount_usd(self) -> Decimal:
        return self.rule.amount_usd

    def covers(self, agent_id: int, gateway_id: int | None) -> bool:
        # Model budgets never pause (see _load_pauses), so the model plays no part.
        return self.rule.matches(agent_id, gateway_id or 0, "")

    @property
    def reason(self) -> str:
        when = "today" if self.rule.period == "day" else "this month"
        return (
            f"Budget \u201c{self.budget}\u201d is spent {when}: ${self.spent_usd:,.2f} of "
            f"${self.amount_usd:,.2f}. New work waits until the period ends, an admin lifts "
            "the pause or raises the budget."
        )

    def data(self) -> PauseData:
        return {
            "budget_id": self.budget_id,
            "budget": self.budget,
            "scope": self.rule.scope,
            "period": self.rule.period,
            "period_start": str(self.period_start),
            "spent_usd": str(self.spent_usd),
            "amount_usd": str(self.amount_usd),
            "reason": self.reason,
        }


def is_pausing(enforce: bool, scope: str, spent_nanos: int, amount_usd: Decimal) -> bool:
    """A budget pauses its agents once spent, if it enforces and is not about a model."""
    return enforce and scope != "model" and spent_nanos >= prices.nanos(amount_usd)


def _load_pauses() -> tuple[Pause, ...]:
    """The enforced budgets spent in their current period and not lifted: no query at all
    while no budget enforces (the rules are cached), one small one otherwise."""
    from billing.models import BudgetSpend

    enforced = {r.id: r for r in rules() if r.enforce and r.scope != "model"}
    if not enforced:
        return ()
    now = timezone.now()
    starts = {r.id: period_start(r.period, now) for r in enforced.values()}
    found = []
    for budget_id, start, spent in BudgetSpend.objects.filter(
        budget_id__in=list(starts),
        period_start__in=set(starts.values()),
        pause_lifted_at__isnull=True,
    ).values_list("budget_id", "period_start", "spent_nanos"):
        rule = enforced[budget_id]
        if start == starts[budget_id] and is_pausing(True, rule.scope, spent, rule.amount_usd):
            found.append(Pause(rule, start, prices.from_nanos(spent)))
    return tuple(sorted(found, key=lambda p: p.budget_id))


# This process forgets at once when a budget is spent, changed or lifted; others within the
# rules' and this TTL.
_pauses = Reloaded("budget pauses", _load_pauses, RULES_TTL_S)
pauses = _pauses.get


def paused(agent_ids: set[int], gateways: dict[int, int | None] | None = None) -> dict[int, Pause]:
    """The pause holding each of these agents, if any (the first budget by id). Agents'
    gateways are read (one query) only when a gateway budget pauses and `gateways` lacks them."""
    active = pauses()
    if not active or not agent_ids:
        return {}
    if gateways is None:
        gateways = {}
        if any(p.rule.scope == "gateway" for p in active):
            from agents.models import Agent

            gateways = dict(Agent.objects.filter(pk__in=agent_ids).values_list("pk", "gateway_id"))
    found: dict[int, Pause] = {}
    for agent_id in agent_ids:
        for pause in active:
            if pause.covers(agent_id, gateways.get(agent_id)):
                found[agent_id] = pause
                break
    return found


def pause_of(agent_id: int) -> Pause | None:
    return paused({agent_id}).get(agent_id)


def refuse_if_paused(agent_id: int | None, doing: str, field: str | None = None) -> None:
    """Refuse new work for a paused agent, with the reason (`agent_paused`, 409); `field`
    names the form field the message belongs to."""
    if agent_id is None:
        return
    pause = pause_of(agent_id)
    if pause is not None:
        message = f"{doing}: the agent is paused. {pause.reason}"
        raise AgentPaused({field: [message]} if field else message, pause=pause.data())


class BudgetData(TypedDict):
    id: int
    name: str
    scope: str
    period: str
    amount_usd: str


class BudgetThresholdCrossed(TypedDict):
    """A budget's spend in a period reached one of its thresholds (once per threshold and
    period). Webhooks deliver it as `budget.threshold_crossed`."""

    type: Literal["budget.threshold_crossed"]
    alert_id: int
    budget: BudgetData
    threshold: int
    period_start: str
    spent_usd: str
    amount_usd: str
    # True when this crossing paused the budget's agents (an enforced budget at 100 %).
    pauses_agents: bool


class BudgetPauseLifted(TypedDict):
    """An admin let a spent budget's agents work on for the rest of the period."""

    type: Literal["budget.pause_lifted"]
    budget: BudgetData
    period_start: str
    actor: audit.ActorData


class BudgetAlertAcknowledged(TypedDict):
    type: Literal["budget.alert_acknowledged"]
    alert_id: int
    actor: audit.ActorData


def budget_data(rule: Rule) -> BudgetData:
    return {
        "id": rule.id,
        "name": rule.name,
        "scope": rule.scope,
        "period": rule.period,
        "amount_usd": str(rule.amount_usd),
    }


def charge(stored: list[tuple[UsageItem, int]], gateways: dict[int, int]) -> None:
    """Add newly stored usage (item, its cost in nano-dollars) to the running total of every
    budget it falls under, in the caller's transaction, and raise the alerts it crosses."""
    active = rules()
    if not active:
        return
    deltas: dict[tuple[int, date], int] = {}
    for item, cost in stored:
        if not cost:
            continue
        for rule in active:
            if rule.matches(item.agent_id, gateways.get(item.agent_id, 0), item.model):
                key = (rule.id, period_start(rule.period, item.occurred_at))
                deltas[key] = deltas.get(key, 0) + cost
    if deltas:
        _add(deltas, {r.id: r for r in active})


def _add(
    deltas: dict[tuple[int, date], int], by_id: dict[int, Rule], replace: bool = False
) -> None:
    from billing.models import Budget, BudgetAlert, BudgetSpend

    table = BudgetSpend._meta.db_table
    rows = [
        (budget_id, connection.ops.adapt_datefield_value(start), nanos)
        for (budget_id, start), nanos in sorted(deltas.items())
    ]
    new_value = "excluded.spent_nanos" if replace else f"{table}.spent_nanos + excluded.spent_nanos"
    totals: list[tuple[int, Any, int]] = []
    with connection.cursor() as cursor:
        for values, params in bulk.values_chunks(rows, 3, ["bigint", "date", "bigint"]):
            # Only budgets that still exist: another process may have deleted one this
            # process still has cached (for up to RULES_TTL_S), and usage must not fail on it.
            # ("WHERE true": SQLite's parser needs it before ON CONFLICT after a SELECT.)
            cursor.execute(
                f"INSERT INTO {table} (budget_id, period_start, spent_nanos) "  # noqa: S608 - names only
                f"SELECT v.column1, v.column2, v.column3 FROM (VALUES {values}) AS v "
                f"JOIN {Budget._meta.db_table} b ON b.id = v.column1 WHERE true "
                f"ON CONFLICT (budget_id, period_start) DO UPDATE SET spent_nanos = {new_value} "
                "RETURNING budget_id, period_start, spent_nanos",
                params,
            )
            totals.extend(cursor.fetchall())
    crossed = []
    for budget_id, start, spent in totals:
        rule = by_id[budget_id]
        if is_pausing(rule.enforce, rule.scope, spent, rule.amount_usd):
            # Spent: its agents pause now in this process (others within the TTL).
            _pauses.forget()
            transaction.on_commit(_pauses.forget)
        for threshold in rule.thresholds:
            if spent * 100 >= rule.amount_nanos * threshold:
                crossed.append((rule, str(start), threshold, spent))
    if not crossed:
        return
    alerts = BudgetAlert._meta.db_table
    fresh: dict[tuple[int, str, int], int] = {}  # (budget, period, threshold) → alert id
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        for values, params in bulk.values_chunks(
            [
                (rule.id, start, threshold, spent, _amount(rule.amount_usd), now)
                for rule, start, threshold, spent in crossed
            ],
            6,
        ):
            # Once per (budget, period, threshold): a concurrent writer that crossed it too
            # loses here and announces nothing.
            cursor.execute(
                f"INSERT INTO {alerts} (budget_id, period_start, threshold, spent_nanos, "  # noqa: S608 - names only
                f"amount_usd, created_at) VALUES {values} ON CONFLICT DO NOTHING "
                "RETURNING budget_id, period_start, threshold, id",
                params,
            )
            fresh.update({(b, str(s), t): i for b, s, t, i in cursor.fetchall()})
    for rule, start, threshold, spent_nanos in crossed:
        alert_id = fresh.get((rule.id, start, threshold))
        if alert_id is None:
            continue
        spent_usd = str(prices.from_nanos(spent_nanos))
        audit.record(
            Actor.system("budgets"),
            "budget.threshold_crossed",
            object_type="budget",
            object_id=str(rule.id),
            object_repr=rule.name,
            after={"threshold": threshold, "period_start": str(start), "spent_usd": spent_usd},
            gateway_id=rule.concerns,
        )
        event: BudgetThresholdCrossed = {
            "type": "budget.threshold_crossed",
            "alert_id": alert_id,
            "budget": budget_data(rule),
            "threshold": threshold,
            "period_start": str(start),
            "spent_usd": spent_usd,
            "amount_usd": str(rule.amount_usd),
            "pauses_agents": threshold >= 100
            and is_pausing(rule.enforce, rule.scope, spent_nanos, rule.amount_usd),
        }
        live.publish("alerts", event, min_role="operator", gateway_id=rule.concerns)


def _amount(value: Decimal) -> object:
    return connection.ops.adapt_decimalfield_value(value, 12, 2)
