"""What the cost pages show, read from the hourly rollups only (never a scan of raw records):
windows in the user's time zone, totals, breakdowns by one dimension, a stacked series."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any, Literal

from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from billing import prices, rollups
from billing.models import UsageDailyRollup, UsageHourlyTotal, UsageRollup

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
    "all": "All time",
    "custom": "Custom",
}
SUMMED = rollups.COLUMNS
MAX_CUSTOM_DAYS = 400
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # usage is never older (agents/validation.py)


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
    if key == "all":
        return Window(key, EPOCH, now, tz), ""
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

    @property
    def fine(self) -> bool:
        """Narrowed to one agent or task: only the finest rollup has those."""
        return self.agent_id is not None or self.task_id is not None

    def apply(self, qs: QuerySet[Any]) -> QuerySet[Any]:
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


def rows(start: datetime, end: datetime, filters: Filters, fine: bool = False) -> QuerySet[Any]:
    """Hourly rollup rows of the hours that start in [start, end): of the hour × gateway ×
    model totals (a few dozen an hour), or of the finest rollup when the filters name an agent
    or a task (or `fine`: the caller groups by one of them)."""
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    table = UsageRollup if fine or filters.fine else UsageHourlyTotal
    return filters.apply(table.objects.filter(hour__gte=hour, hour__lt=end))


def sums(
    start: datetime, end: datetime, filters: Filters, column: str | None = None
) -> dict[Any, Totals]:
    """Totals over [start, end) (to the hour), per value of `column` (or one, under None): the
    whole UTC days inside from the daily rollup, the hours at the edges from an hourly one —
    exact either way, and a 30-day window reads ~30 rows an agent × model instead of ~720."""
    found: dict[Any, Totals] = defaultdict(Totals)

    def add(qs: QuerySet[Any]) -> None:
        if column is None:
            found[None].add(qs.aggregate(**_sums()))
            return
        for row in qs.values(column).annotate(**_sums()).order_by():
            found[row[column]].add(row)

    fine = column in ("agent_id", "task_id")
    first = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    day0 = first.replace(hour=0)
    if day0 < first:
        day0 += timedelta(days=1)
    day1 = end.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    # The daily rollup has no task: a task's sums come from the hourly one only.
    if filters.task_id is not None or column == "task_id" or day0 >= day1:
        add(rows(first, end, filters, fine=fine))
        return found
    add(filters.apply(UsageDailyRollup.objects.filter(day__gte=day0.date(), day__lt=day1.date())))
    if first < day0:
        add(rows(first, day0, filters, fine=fine))
    if day1 < end:
        add(rows(day1, end, filters, fine=fine))
    return found


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

    def merge(self, other: Totals) -> None:
        for name in SUMMED:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def _sums() -> dict[str, Any]:
    return {name: Sum(name) for name in SUMMED}


def totals(qs: QuerySet[Any]) -> Totals:
    found = qs.aggregate(**_sums())
    total = Totals()
    total.add(found)
    return total


def _ranked(found: dict[Any, Totals]) -> list[Totals]:
    out = []
    for key, t in found.items():
        t.extra["key"] = key
        out.append(t)
    out.sort(key=lambda t: (-t.cost_nanos, -t.tokens, str(t.extra["key"])))
    return out


@dataclass
class Page:
    """Everything the Costs page shows of one window, from three small grouped queries."""

    total: Totals
    rows: list[Totals]  # the breakdown by the asked dimension, most expensive first
    series: Series
    unpriced: list[dict[str, Any]]  # per model: {"model", "records", "tokens"}


def page(win: Window, by: Dimension, filters: Filters) -> Page:
    """Totals, the breakdown, the chart and the unpriced models of a window: the sums per
    model (totals, the model breakdown, unpriced), the cost per hour × model (the chart: one
    column), and the breakdown asked for. Hours become local days in Python (time zones with
    DST cannot be shifted in SQL)."""
    total = Totals()
    models: dict[str, Totals] = defaultdict(Totals)
    per: dict[tuple[datetime, str], int] = defaultdict(int)
    first: datetime | None = None
    qs = rows(win.start, win.end, filters)
    for model, t in sums(win.start, win.end, filters, "model").items():
        total.merge(t)
        models[model] = t
    tz, hourly = win.tz, win.hourly
    midnights: dict[date, datetime] = {}
    for hour, model, nanos in (
        qs.values("hour", "model")
        .annotate(c=Sum("cost_nanos"))
        .order_by()
        .values_list("hour", "model", "c")
    ):
        local = hour.astimezone(tz)
        if hourly:
            bucket = local
        else:
            day = local.date()
            bucket = midnights.get(day) or midnights.setdefault(day, local_midnight(day, tz))
        per[(bucket, model)] += nanos or 0
        if first is None or bucket < first:
            first = bucket
    if by == "model":
        shown = _ranked(models)
    elif by == "day":
        days: dict[date, Totals] = defaultdict(Totals)
        for row in qs.values("hour").annotate(**_sums()).order_by():
            days[row["hour"].astimezone(tz).date()].add(row)
        shown = []
        for day in sorted(days, reverse=True):
            days[day].extra["key"] = day
            shown.append(days[day])
    elif by == "gateway":
        shown = _ranked(sums(win.start, win.end, filters, "gateway_id"))
    elif by == "agent":
        shown = _ranked(sums(win.start, win.end, filters, "agent_id"))
    else:
        by_task = sums(win.start, win.end, filters, "task_id")
        by_task.pop(0, None)  # usage that named no task
        shown = _ranked(by_task)
    unpriced: list[dict[str, Any]] = [
        {"model": m, "records": t.unpriced_records, "tokens": t.unpriced_tokens}
        for m, t in sorted(models.items(), key=lambda mt: -mt[1].unpriced_tokens)
        if t.unpriced_records
    ]
    start = win.start if win.key != "all" or first is None else first
    return Page(total, shown, _series(per, win, start), unpriced)


def breakdown(win: Window, by: Dimension, filters: Filters) -> list[Totals]:
    """One Totals per value of the dimension, most expensive first (`extra["key"]` is the
    value: a model name, an agent/gateway/task id, or a local date)."""
    return page(win, by, filters).rows


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
TOP_MODELS = 6
MAX_BUCKETS = 800


def _series(per: dict[tuple[datetime, str], int], win: Window, start: datetime) -> Series:
    by_model: dict[str, int] = defaultdict(int)
    for (_bucket, model), nanos in per.items():
        by_model[model] += nanos
    ranked = [m for m, c in sorted(by_model.items(), key=lambda kv: -kv[1]) if c > 0]
    models = ranked[:TOP_MODELS]
    values: dict[tuple[datetime, str], int] = defaultdict(int)
    for (bucket, model), nanos in per.items():
        values[(bucket, model if model in models else OTHER)] += nanos
    if len(ranked) > TOP_MODELS:
        models.append(OTHER)
    buckets: list[datetime] = []
    cursor = start.astimezone(win.tz)
    if win.hourly:
        cursor = cursor.replace(minute=0, second=0, microsecond=0)
    else:
        cursor = local_midnight(cursor.date(), win.tz)
    end = min(win.end, timezone.now())
    while cursor < end and len(buckets) < MAX_BUCKETS:
        buckets.append(cursor)
        # Local days differ in length around DST changes: step in local dates, not seconds.
        cursor = (
            cursor + timedelta(hours=1)
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
        ("Today", today, today - timedelta(days=1), "yesterday"),
        ("This week", week, week - timedelta(days=7), "last week"),
        ("This month", month, last_month, "last month"),
    ]
    out = []
    for label, first, previous, before_label in spans:
        start, before = local_midnight(first, tz), local_midnight(previous, tz)
        current = sums(start, now, filters)[None].cost
        earlier = sums(before, start, filters)[None].cost
        out.append(Headline(label, current, earlier, before_label))
    return out


def spend_today(now: datetime, tz: tzinfo, filters: Filters) -> Decimal:
    return sums(local_midnight(now.astimezone(tz).date(), tz), now, filters)[None].cost


def cost_by_agent(agent_ids: list[int], start: datetime, end: datetime) -> dict[int, Decimal]:
    """Each agent's cost over [start, end) (to the hour), for lists of agents."""
    if not agent_ids:
        return {}
    found = (
        rows(start, end, Filters(), fine=True)
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
