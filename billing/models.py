from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Exists, OuterRef, Q, Subquery

from agents.models import Agent


class UsageRecord(models.Model):
    """Token usage of one model call (or one reported batch), kept with its token counts so a
    reprice can recompute cost exactly."""

    # No index of its own: usage_agent_time_idx and the unique constraint both start with it
    # (one B-tree fewer to update per record on the heartbeat path).
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="usage", db_index=False)
    # The client's idempotency key: a record with the same id for the same agent counts once.
    # NULL, not "": records without an id must not collide in the unique constraint.
    client_id = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001
    model = models.CharField(max_length=128)
    provider = models.CharField(max_length=64, blank=True)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    # As reported by the agent or gateway, next to what the price table says (billing/prices.py).
    reported_cost_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    # NULL: unpriced (a model neither the table nor an override knows; never guessed).
    cost_usd = models.DecimalField(max_digits=20, decimal_places=9, null=True, blank=True)
    # What it was costed with: "genai-prices 0.2.3" or "override <id>"; "" when unpriced.
    price_version = models.CharField(max_length=32, blank=True)
    session = models.CharField(max_length=128, blank=True)
    task_id = models.BigIntegerField(null=True, blank=True)
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "client_id"],
                condition=Q(client_id__isnull=False),
                name="usage_agent_client_id_uniq",
            )
        ]
        indexes = [
            # Usage of one agent over time (agent page, per-agent costs).
            models.Index(fields=["agent", "occurred_at"], name="usage_agent_time_idx"),
            # Per-day and per-model totals.
            models.Index(fields=["occurred_at"], name="usage_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.model}: {self.input_tokens}+{self.output_tokens}"


class PriceOverride(models.Model):
    """An admin's price for private or local models (USD per million tokens), from a date on;
    it wins over the price table for the models its pattern matches."""

    provider = models.CharField(
        max_length=64,
        blank=True,
        help_text="Empty: any provider. Otherwise e.g. anthropic, ollama.",
    )
    model_pattern = models.CharField(
        max_length=128, help_text="A model name, or a pattern with * and ? (e.g. llama-3*)."
    )
    input_per_mtok = models.DecimalField("input, USD / M tokens", max_digits=12, decimal_places=6)
    output_per_mtok = models.DecimalField("output, USD / M tokens", max_digits=12, decimal_places=6)
    cache_read_per_mtok = models.DecimalField(
        "cache read, USD / M tokens", max_digits=12, decimal_places=6, null=True, blank=True
    )
    cache_write_per_mtok = models.DecimalField(
        "cache write, USD / M tokens", max_digits=12, decimal_places=6, null=True, blank=True
    )
    effective_from = models.DateField(
        help_text="Records from this day (UTC) on are priced with it."
    )
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model_pattern", "-effective_from"]

    def __str__(self) -> str:
        who = f"{self.provider}/" if self.provider else ""
        return f"{who}{self.model_pattern} from {self.effective_from}"


class Sums(models.Model):
    """The sums every rollup keeps (billing.rollups.COLUMNS). Costs in nano-dollars: integer
    sums are exact on both databases (SQLite sums decimals as floats)."""

    records = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost_nanos = models.BigIntegerField(default=0)
    reported_nanos = models.BigIntegerField(default=0)
    reported_records = models.BigIntegerField(default=0)
    # Our cost of the records that came with a reported one (to compare like with like).
    reported_priced_nanos = models.BigIntegerField(default=0)
    unpriced_records = models.BigIntegerField(default=0)
    unpriced_tokens = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class UsageRollup(Sums):
    """Usage per hour × agent × gateway × model × task × session: the finest rollup (one agent's,
    task's or session's costs, and the hours at a window's edges). Every rollup is kept by the
    action that writes usage (billing.actions.record_usage), so no page scans raw records."""

    hour = models.DateTimeField()  # UTC, truncated to the hour
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="+", db_index=False)
    gateway_id = models.BigIntegerField(default=0)  # 0: a directly registered agent
    model = models.CharField(max_length=128)
    task_id = models.BigIntegerField(default=0)  # 0: no task
    # The record's session ("" when none): a gateway session's key, or a CLI agent's own id.
    # An agent works in one session at a time, so this hardly adds rows.
    session = models.CharField(max_length=128, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "agent", "gateway_id", "model", "task_id", "session"],
                name="rollup_key_uniq",
            )
        ]
        indexes = [
            # The hours at a window's edges (then grouped by one dimension).
            models.Index(fields=["hour"], name="rollup_hour_idx"),
            # One agent's costs (its page, the Agents list's "24 h", the Costs page for it).
            models.Index(fields=["agent", "hour"], name="rollup_agent_hour_idx"),
            # One task's cost (its page), the Costs page by or for a task.
            models.Index(
                fields=["task_id", "hour"], name="rollup_task_idx", condition=Q(task_id__gt=0)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.model}: {self.records}"


class UsageHourlyTotal(Sums):
    """Usage per hour × gateway × model: the Costs page's chart, totals, headline and model,
    gateway and day breakdowns (a few dozen rows an hour however many agents there are)."""

    hour = models.DateTimeField()  # UTC
    gateway_id = models.BigIntegerField(default=0)
    model = models.CharField(max_length=128)

    class Meta:
        constraints = [
            # Also the index of every window's query (hour first).
            models.UniqueConstraint(fields=["hour", "gateway_id", "model"], name="hourly_key_uniq")
        ]
        indexes = [
            # The chart: cost per hour × model of a window, read from the index alone (half the
            # time of the table's rows, measured on 30 days of a million records).
            models.Index(fields=["hour", "model", "cost_nanos"], name="hourly_chart_idx")
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.model}"


class UsageDailyRollup(Sums):
    """Usage per UTC day × agent × gateway × model: the by-agent breakdown of long windows
    (whole days from here, the hours at the edges from UsageRollup)."""

    day = models.DateField()  # UTC
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="+", db_index=False)
    gateway_id = models.BigIntegerField(default=0)
    model = models.CharField(max_length=128)

    class Meta:
        constraints = [
            # Also the index of every window's query (day first).
            models.UniqueConstraint(
                fields=["day", "agent", "gateway_id", "model"], name="daily_key_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.model}"


class UsageDailyTask(Sums):
    """Usage per UTC day × task × gateway, of the records that name a task: the by-task
    breakdown of long windows (whole days from here, the edges from UsageRollup) and what a
    task cost in all (its card, its page)."""

    day = models.DateField()  # UTC
    task_id = models.BigIntegerField()
    gateway_id = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            # Also the index of every window's query (day first).
            models.UniqueConstraint(fields=["day", "task_id", "gateway_id"], name="task_day_uniq")
        ]
        indexes = [
            # What a task cost in all (its card, its page).
            models.Index(fields=["task_id"], name="task_day_task_idx")
        ]

    def __str__(self) -> str:
        return f"{self.day} task {self.task_id}"


class UsageDailySession(Sums):
    """Usage per UTC day × agent × gateway × session, of the records that name a session: the
    by-session breakdown of long windows and what a session cost in all (its page)."""

    day = models.DateField()  # UTC
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="+", db_index=False)
    gateway_id = models.BigIntegerField(default=0)
    session = models.CharField(max_length=128)

    class Meta:
        constraints = [
            # Also the index of every window's query (day first).
            models.UniqueConstraint(
                fields=["day", "agent", "gateway_id", "session"], name="session_day_uniq"
            )
        ]
        indexes = [
            # What one of an agent's sessions cost in all (the session's page).
            models.Index(fields=["agent", "session"], name="session_day_session_idx")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.session}"


def default_thresholds() -> list[int]:
    return [80, 100]


def budget_narrowing(user: Any, budget: str = "") -> Q:
    """The budgets `user` may see (through the path `budget`, e.g. "budget__" for alerts): a
    narrowed user sees the budgets of their gateways and of their gateways' and directly
    registered agents, never one over everything or a model (those sum every gateway's spend)."""
    from gateways.access import narrowing, visible_ids

    if visible_ids(user) is None:
        return Q()
    return Q(**{f"{budget}scope": Budget.Scope.GATEWAY}) & narrowing(
        user, f"{budget}gateway", direct=False
    ) | Q(**{f"{budget}scope": Budget.Scope.AGENT}) & narrowing(user, f"{budget}agent__gateway")


class BudgetQuerySet(models.QuerySet["Budget"]):
    def visible_to(self, user: Any) -> BudgetQuerySet:
        return self.filter(budget_narrowing(user))


class BudgetAlertQuerySet(models.QuerySet["BudgetAlert"]):
    def visible_to(self, user: Any) -> BudgetAlertQuerySet:
        return self.filter(budget_narrowing(user, "budget__"))

    def standing(self) -> BudgetAlertQuerySet:
        """The unacknowledged alerts worth showing, as things are now: only the highest
        threshold crossed of each budget and period (80 % says nothing once 100 % is
        crossed), each with its period's spend now (`spent_now_nanos`, not the amount at
        crossing time) and whether its pause was lifted (`lifted`), newest first."""
        spend = BudgetSpend.objects.filter(
            budget=OuterRef("budget_id"), period_start=OuterRef("period_start")
        )
        higher = BudgetAlert.objects.filter(
            budget=OuterRef("budget_id"),
            period_start=OuterRef("period_start"),
            threshold__gt=OuterRef("threshold"),
        )
        return (
            self.filter(acknowledged_at__isnull=True)
            .exclude(Exists(higher))
            .annotate(
                spent_now_nanos=Subquery(spend.values("spent_nanos")[:1]),
                lifted=Exists(spend.filter(pause_lifted_at__isnull=False)),
            )
            .order_by("-created_at", "-pk")
        )


class Budget(models.Model):
    """An admin's spending limit: a scope (everything, a gateway, an agent or a model), a period
    (a day or a month in the server's time zone) and an amount, with the thresholds (percent of
    it) that raise an alert."""

    class Scope(models.TextChoices):
        ALL = "all", "Everything"
        GATEWAY = "gateway", "One gateway"
        AGENT = "agent", "One agent"
        MODEL = "model", "One model"

    class Period(models.TextChoices):
        DAY = "day", "Each day"
        MONTH = "month", "Each month"

    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.ALL)
    gateway = models.ForeignKey(
        "gateways.Gateway", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    model = models.CharField(max_length=128, blank=True)
    period = models.CharField(max_length=8, choices=Period.choices, default=Period.MONTH)
    amount_usd = models.DecimalField(max_digits=12, decimal_places=2)
    thresholds = models.JSONField(default=default_thresholds)
    enabled = models.BooleanField(default=True)
    # At 100 % the agents it covers are paused until the period ends, an admin lifts the
    # pause or raises the amount (billing/budgets.py `pauses`).
    enforce = models.BooleanField(
        "Pause agents at 100 %",
        default=False,
        help_text="Agents under it are told to stop taking new work once it is spent.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = BudgetQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def scope_text(self) -> str:
        if self.scope == self.Scope.GATEWAY and self.gateway_id:
            return f"gateway {self.gateway.name}" if self.gateway else "a gateway"
        if self.scope == self.Scope.AGENT and self.agent_id:
            return f"agent {self.agent.name}" if self.agent else "an agent"
        if self.scope == self.Scope.MODEL:
            return f"model {self.model}"
        return "everything"


class BudgetSpend(models.Model):
    """A budget's running total in one period, kept by every usage write that falls under it."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="spends")
    period_start = models.DateField()
    spent_nanos = models.BigIntegerField(default=0)
    # An admin lifted the budget's pause for this period: its agents work on until it ends.
    pause_lifted_at = models.DateTimeField(null=True, blank=True)
    pause_lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["budget", "period_start"], name="budget_spend_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.budget_id} {self.period_start}"


class BudgetAlert(models.Model):
    """A threshold crossed in a period: raised once (the unique constraint), shown to operators
    until acknowledged."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    period_start = models.DateField()
    threshold = models.PositiveSmallIntegerField()
    spent_nanos = models.BigIntegerField()
    amount_usd = models.DecimalField(max_digits=12, decimal_places=2)
    created_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = BudgetAlertQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "period_start", "threshold"], name="budget_alert_uniq"
            )
        ]
        indexes = [
            # The banner on every page: the alerts nobody acknowledged yet.
            models.Index(
                fields=["created_at"],
                name="budget_alert_open_idx",
                condition=Q(acknowledged_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.budget} {self.threshold}% {self.period_start}"

    @property
    def spent(self) -> Decimal:
        """Spent in its period: now, when read through `standing()`; else at the crossing."""
        from billing.prices import from_nanos

        now = getattr(self, "spent_now_nanos", None)
        return from_nanos(self.spent_nanos if now is None else now)

    @property
    def pauses_agents(self) -> bool:
        """This crossing pauses the budget's agents now: the amount was not raised since, and
        (when read through `standing()`) nobody lifted the pause."""
        from billing.budgets import is_pausing
        from billing.prices import nanos

        budget = self.budget
        if getattr(self, "lifted", False):
            return False
        return self.threshold >= 100 and is_pausing(
            budget.enforce, budget.scope, nanos(self.spent), budget.amount_usd
        )
