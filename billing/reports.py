"""What the cost pages show, read from the hourly rollups only (never a scan of raw records):
windows in the user's time zone, totals, breakdowns by one dimension, a stacked series."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any, Literal

from django.db.models import Q, QuerySet, Sum

from billing import prices
from billing.models import UsageRollup

Dimension = Literal["model", "agent", "gateway", "task", "day"]
DIMENSIONS: dict[str, str] = {
    "model": "Model",
    "agent": "Agent",
    "gateway": "Gateway",
    "task": "Task",
    "day": "Day",
}
RANGES: dict[str, str] = {
    "24h": "24 hours",
    "7d": "7 days",
    "30d": "30 days",
    "month": "This month",
    "custom": "Custom",
}
SUMMED = (
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
MAX_CUSTOM_DAYS = 400


@dataclass(frozen=True)
class Window:
    key: str
    start: datetime  # aware, inclusive
    end: datetime  # aware, exclusive
    tz: tzinfo

    @property
    def label(self) -> str:
        if self.key == "custom":
            last = (self.end - timedelta(microseconds=1)).astimezone(self.tz).date()
            return f"{self.start.astimezone(self.tz):%b %-d} – {last:%b %-d, %Y}"
        return RANGES[self.key]

    @property
    def hourly(self) -> bool:
        return self.end - self.start <= timedelta(days=2)


def local_midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tz)


def window(
    key: str, now: datetime, tz: tzinfo, start: str = "", end: str = ""
) -> tuple[Window, str]:
    """The window a page asks for, and an error to show ("" when none): an unknown or bad
    choice falls back to 7 days."""
    today = now.astimezone(tz).date()
    if key == "24h":
        return Window(key, now - timedelta(hours=24), now, tz), ""
    if key == "30d":
        return Window(key, local_midnight(today - timedelta(days=29), tz), now, tz), ""
    if key == "month":
        return Window(key, local_midnight(today.replace(day=1), tz), now, tz), ""
    if key == "custom":
        try:
            first = date.fromisoformat(start)
            last = date.fromisoformat(end) if end else today
        except ValueError:
            error = "Dates are written YYYY-MM-DD."
        else:
            if last < first:
                error = "The end date is before the start date."
            elif (last - first).days >= MAX_CUSTOM_DAYS:
                error = f"At most {MAX_CUSTOM_DAYS} days at once."
            else:
                return Window(
                    key, local_midnight(first, tz), local_midnight(last + timedelta(days=1), tz), tz
                ), ""
        return _default(now, tz, today), error
    return _default(now, tz, today), ""


def _default(now: datetime, tz: tzinfo, today: date) -> Window:
    return Window("7d", local_midnight(today - timedelta(days=6), tz), now, tz)


@dataclass
class Filters:
    gateway_id: int | None = None  # 0: direct agents only
    agent_id: int | None = None
    model: str = ""
    task_id: int | None = None
    visible_gateways: set[int] | None = None  # None: all (no grants narrow this user)

    def apply(self, qs: QuerySet[UsageRollup]) -> QuerySet[UsageRollup]:
        if self.visible_gateways is not None:
            qs = qs.filter(Q(gateway_id=0) | Q(gateway_id__in=self.visible_gateways))
        if self.gateway_id is not None:
            qs = qs.filter(gateway_id=self.gateway_id)
        if self.agent_id is not None:
            qs = qs.filter(agent_id=self.agent_id)
        if self.model:
            qs = qs.filter(model=self.model)
        if self.task_id is not None:
            qs = qs.filter(task_id=self.task_id)
        return qs


def rows(start: datetime, end: datetime, filters: Filters) -> QuerySet[UsageRollup]:
    """Rollup rows of the hours that start in [start, end)."""
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return filters.apply(UsageRollup.objects.filter(hour__gte=hour, hour__lt=end))


@dataclass
class Totals:
    records: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nanos: int = 0
    reported_nanos: int = 0
    reported_records: int = 0
    reported_priced_nanos: int = 0
    unpriced_records: int = 0
    unpriced_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cost(self) -> Decimal:
        return prices.from_nanos(self.cost_nanos)

    @property
    def reported(self) -> Decimal:
        return prices.from_nanos(self.reported_nanos)

    @property
    def reported_ours(self) -> Decimal:
        """Our cost of the records that came with a reported cost."""
        return prices.from_nanos(self.reported_priced_nanos)

    @property
    def disagrees(self) -> bool:
        """The agent's or gateway's reported cost and ours differ by more than a cent and 1 %."""
        gap = abs(self.reported_nanos - self.reported_priced_nanos)
        return bool(self.reported_records) and gap > max(10_000_000, self.reported_nanos // 100)

    @property
    def tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
        )

    def add(self, other: dict[str, Any]) -> None:
        for name in SUMMED:
            setattr(self, name, getattr(self, name) + (other.get(name) or 0))


def _sums() -> dict[str, Any]:
    return {name: Sum(name) for name in SUMMED}


def totals(qs: QuerySet[UsageRollup]) -> Totals:
    found = qs.aggregate(**_sums())
    total = Totals()
    total.add(found)
    return total


def breakdown(qs: QuerySet[UsageRollup], by: Dimension, tz: tzinfo) -> list[Totals]:
    """One Totals per value of the dimension, most expensive first (`extra["key"]` is the
    value: a model name, an agent/gateway/task id, or a local date)."""
    if by == "day":
        days: dict[date, Totals] = defaultdict(Totals)
        for row in qs.values("hour").annotate(**_sums()).order_by():
            day = row["hour"].astimezone(tz).date()
            days[day].add(dict(row))
        out = []
        for day in sorted(days, reverse=True):
            days[day].extra["key"] = day
            out.append(days[day])
        return out
    column = {"model": "model", "agent": "agent_id", "gateway": "gateway_id", "task": "task_id"}[by]
    if by == "task":
        qs = qs.filter(task_id__gt=0)
    found = []
    for row in qs.values(column).annotate(**_sums()).order_by():
        t = Totals()
        t.add(row)
        t.extra["key"] = row[column]
        found.append(t)
    found.sort(key=lambda t: (-t.cost_nanos, -t.tokens, str(t.extra["key"])))
    return found


@dataclass
class Series:
    """Cost per bucket (local day, or hour for short windows) and model, for a stacked chart."""

    buckets: list[datetime]
    models: list[str]  # the top models; the rest are "other"
    values: dict[tuple[datetime, str], int]  # nano-dollars

    def total(self, bucket: datetime) -> int:
        return sum(self.values.get((bucket, m), 0) for m in self.models)

    @property
    def peak(self) -> int:
        return max((self.total(b) for b in self.buckets), default=0)


OTHER = "other models"


def series(qs: QuerySet[UsageRollup], win: Window, top: int = 6) -> Series:
    per: dict[tuple[datetime, str], int] = defaultdict(int)
    by_model: dict[str, int] = defaultdict(int)
    for row in qs.values("hour", "model").annotate(c=Sum("cost_nanos")).order_by():
        local = row["hour"].astimezone(win.tz)
        bucket = local if win.hourly else local_midnight(local.date(), win.tz)
        per[(bucket, row["model"])] += row["c"] or 0
        by_model[row["model"]] += row["c"] or 0
    ranked = [m for m, c in sorted(by_model.items(), key=lambda kv: -kv[1]) if c > 0]
    models = ranked[:top]
    values: dict[tuple[datetime, str], int] = defaultdict(int)
    for (bucket, model), nanos in per.items():
        values[(bucket, model if model in models else OTHER)] += nanos
    if len(ranked) > top:
        models.append(OTHER)
    buckets = []
    cursor = win.start.astimezone(win.tz)
    if win.hourly:
        cursor = cursor.replace(minute=0, second=0, microsecond=0)
        step = timedelta(hours=1)
    else:
        cursor = local_midnight(cursor.date(), win.tz)
        step = timedelta(days=1)
    while cursor < win.end:
        buckets.append(cursor)
        # Local days differ in length around DST changes: step in local dates, not seconds.
        cursor = (
            cursor + step
            if win.hourly
            else local_midnight(cursor.date() + timedelta(days=1), win.tz)
        )
    return Series(buckets=buckets, models=models, values=dict(values))


@dataclass
class Headline:
    label: str
    now: Decimal
    before: Decimal
    before_label: str

    @property
    def change(self) -> Decimal | None:
        if not self.before:
            return None
        return ((self.now - self.before) / self.before * 100).quantize(Decimal(1))


def headlines(now: datetime, tz: tzinfo, filters: Filters) -> list[Headline]:
    """Spend today, this week and this month (local), each against the whole previous one."""
    today = now.astimezone(tz).date()
    week = today - timedelta(days=today.weekday())
    month = today.replace(day=1)
    last_month = (month - timedelta(days=1)).replace(day=1)
    spans = [
        ("Today", today, today + timedelta(days=1), today - timedelta(days=1), "yesterday"),
        ("This week", week, week + timedelta(days=7), week - timedelta(days=7), "last week"),
        ("This month", month, None, last_month, "last month"),
    ]
    out = []
    for label, first, _after, previous, before_label in spans:
        current = totals(rows(local_midnight(first, tz), now, filters)).cost
        before = totals(rows(local_midnight(previous, tz), local_midnight(first, tz), filters)).cost
        out.append(Headline(label, current, before, before_label))
    return out


def spend_today(now: datetime, tz: tzinfo, filters: Filters) -> Decimal:
    return totals(rows(local_midnight(now.astimezone(tz).date(), tz), now, filters)).cost


def cost_by_agent(agent_ids: list[int], start: datetime, end: datetime) -> dict[int, Decimal]:
    """Each agent's cost over [start, end) (to the hour), for lists of agents."""
    if not agent_ids:
        return {}
    found = (
        rows(start, end, Filters())
        .filter(agent_id__in=agent_ids)
        .values("agent_id")
        .annotate(c=Sum("cost_nanos"))
        .order_by()
    )
    return {row["agent_id"]: prices.from_nanos(row["c"]) for row in found}


def agent_summary(agent_id: int, now: datetime, tz: tzinfo) -> dict[str, Any]:
    """An agent's page: cost today and this month (local), and its top model this month."""
    today = now.astimezone(tz).date()
    f = Filters(agent_id=agent_id)
    month = rows(local_midnight(today.replace(day=1), tz), now, f)
    top = month.values("model").annotate(c=Sum("cost_nanos")).order_by("-c", "model").first()
    return {
        "today": totals(rows(local_midnight(today, tz), now, f)).cost,
        "month": totals(month),
        "top_model": top["model"] if top and top["c"] else "",
    }


def task_cost(task_id: int) -> Totals:
    """What the work on a task cost, ever (usage reported with its task id)."""
    return totals(UsageRollup.objects.filter(task_id=task_id))
