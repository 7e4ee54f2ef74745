"""What the cost pages show, read from the hourly rollups only (never a scan of raw records):
windows in the user's time zone, totals, breakdowns by one dimension, a stacked series."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from time import monotonic
from typing import Any, Literal

from django.db import connections
from django.db.models import F, Q, QuerySet, Sum
from django.utils import timezone

from billing import prices, rollups
from billing.models import (
    UsageDailyRollup,
    UsageDailySession,
    UsageDailyTask,
    UsageHourlyTotal,
    UsageRollup,
)
from missioncontrol import state

Dimension = Literal["model", "agent", "gateway", "session", "task", "day"]
DIMENSIONS: dict[str, str] = {
    "model": "Model",
    "agent": "Agent",
    "gateway": "Gateway",
    "session": "Session",
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
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # usage is never older (billing/validation.py)


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
    session: str = ""  # with agent_id: one session of that agent
    visible_gateways: set[int] | None = None  # None: all (no grants narrow this user)

    @property
    def fine(self) -> bool:
        """Narrowed to one agent, task or session: only the finest rollup has those."""
        return self.agent_id is not None or self.task_id is not None or bool(self.session)

    @property
    def key(self) -> tuple[Any, ...]:
        visible = None if self.visible_gateways is None else tuple(sorted(self.visible_gateways))
        return (self.gateway_id, self.agent_id, self.model, self.task_id, self.session, visible)

    @property
    def columns(self) -> set[str]:
        """The rollup columns these filters read (gateways: every rollup has them)."""
        named = {
            "agent_id": self.agent_id is not None,
            "model": bool(self.model),
            "task_id": self.task_id is not None,
            "session": bool(self.session),
        }
        return {column for column, on in named.items() if on}

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
        if self.session:
            qs = qs.filter(session=self.session)
        return qs


def rows(start: datetime, end: datetime, filters: Filters, fine: bool = False) -> QuerySet[Any]:
    """Hourly rollup rows of the hours that start in [start, end): of the hour × gateway ×
    model totals (a few dozen an hour), or of the finest rollup when the filters name an agent
    or a task (or `fine`: the caller groups by one of them)."""
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    table = UsageRollup if fine or filters.fine else UsageHourlyTotal
    return filters.apply(table.objects.filter(hour__gte=hour, hour__lt=end))


# The daily rollups, with the columns each can group or filter by besides the day and the
# gateway, and the column a record must name to be in it at all ("": every record is).
DAILY: tuple[tuple[type[Any], frozenset[str], str], ...] = (
    (UsageDailyRollup, frozenset({"agent_id", "model"}), ""),
    (UsageDailyTask, frozenset({"task_id"}), "task_id"),
    (UsageDailySession, frozenset({"agent_id", "session"}), "session"),
)


def daily_table(needed: set[str]) -> type[Any] | None:
    """The daily rollup that holds every column a query needs (None: none does, so the whole
    window is read from the finest hourly rollup). A task or session rollup holds only records
    that name one, so it serves only queries by or for one."""
    for table, columns, only in DAILY:
        if needed <= columns and (not only or only in needed):
            return table
    return None


def _split(start: datetime, end: datetime) -> tuple[datetime, datetime, datetime]:
    """A window's first hour (UTC), and its whole UTC days [day0, day1) (day0 >= day1: none)."""
    first = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    day0 = first.replace(hour=0)
    if day0 < first:
        day0 += timedelta(days=1)
    day1 = end.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return first, day0, day1


def _utc_days(win: Window) -> bool:
    """The window's local days are UTC days (its time zone is UTC, or at UTC's offset all
    through it): a chart by day can read whole days from the daily rollup."""
    if win.hourly:
        return False
    probe = win.start
    while probe < win.end:
        if probe.astimezone(win.tz).utcoffset() != timedelta(0):
            return False
        probe += timedelta(days=20)  # no offset change lasts less (DST: months)
    return win.end.astimezone(win.tz).utcoffset() == timedelta(0)


def _parts(
    start: datetime, end: datetime, filters: Filters, columns: tuple[str, ...]
) -> list[QuerySet[Any]]:
    """The rollup rows whose sums are the window [start, end) (to the hour): its whole UTC days
    from the one daily rollup that has every column needed, the hours at its edges from an
    hourly one (or the whole window from the finest, when no daily rollup has the columns)."""
    needed = (set(columns) - {"gateway_id"}) | filters.columns
    fine = bool(needed - {"model"})  # the hourly totals have gateway and model only
    first, day0, day1 = _split(start, end)
    daily = daily_table(needed)
    if daily is None or day0 >= day1:
        return [rows(first, end, filters, fine=fine)]
    parts = [filters.apply(daily.objects.filter(day__gte=day0.date(), day__lt=day1.date()))]
    if first < day0:
        parts.append(rows(first, day0, filters, fine=fine))
    if day1 < end:
        parts.append(rows(day1, end, filters, fine=fine))
    return parts


def sums(
    start: datetime, end: datetime, filters: Filters, column: str | tuple[str, ...] | None = None
) -> dict[Any, Totals]:
    """Totals over [start, end) (to the hour), per value of `column` (a tuple of columns: per
    tuple of values; None: one total): the whole UTC days inside from a daily rollup, the hours
    at the edges from an hourly one — exact either way, and a 30-day window reads ~30 rows an
    agent × model instead of ~720. By task or session, whole days come from a rollup of only the
    records that name one: callers drop the "none" key (task 0, session "")."""
    columns: tuple[str, ...] = (column,) if isinstance(column, str) else (column or ())
    width = len(columns)
    # Plain lists of the sums per key, added up as the database gives them (no converters, no
    # dicts).
    sums_of: dict[Any, list[int]] = {}
    for qs in _parts(start, end, filters, columns):
        if not columns:
            one = qs.aggregate(**_sums())
            found_rows: Any = [tuple(one[name] for name in SUMMED)]
        else:
            found_rows = _raw(qs.values(*columns).annotate(**_sums()).order_by())
        for row in found_rows:
            key = (row[0] if width == 1 else tuple(row[:width])) if columns else None
            values = row[width:]
            acc = sums_of.get(key)
            if acc is None:
                sums_of[key] = [int(v or 0) for v in values]
            else:
                for i, v in enumerate(values):
                    if v:
                        acc[i] += int(v)
    found: dict[Any, Totals] = defaultdict(Totals)
    for key, acc in sums_of.items():
        found[key] = Totals.of(acc)
    return found


# The "none" value of a column that callers leave out of a breakdown (usage naming no task or
# no session).
NONE_SQL = {"task_id": "task_id <> 0", "session": "session <> ''"}


def ranked(
    start: datetime,
    end: datetime,
    filters: Filters,
    column: str | tuple[str, ...],
    limit: int | None = None,
) -> tuple[list[Totals], int]:
    """The breakdown by `column` over [start, end), most expensive first (then most tokens),
    without its "none" key, at most `limit` of it; and how many keys there are in all. One
    statement: the daily and edge parts of sums() as one UNION ALL, grouped, ordered and cut
    by the database — a breakdown by session can have thousands of keys, of which a page
    shows 200. `extra["key"]` is the value (a tuple for several columns)."""
    columns: tuple[str, ...] = (column,) if isinstance(column, str) else column
    parts = _parts(start, end, filters, columns)
    selects: list[str] = []
    params: list[Any] = []
    for index, qs in enumerate(parts):
        # The parts' rows as they are: the outer query groups them once.
        sql, part_params = qs.values(*columns, *SUMMED).order_by().query.sql_with_params()
        selects.append(f"SELECT * FROM ({sql}) p{index}")  # noqa: S608 - Django's own SQL
        params += part_params
    keys = ", ".join(columns)
    where = " AND ".join(NONE_SQL[c] for c in columns if c in NONE_SQL) or "1 = 1"
    tokens = "SUM(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens)"
    sql = (
        f"SELECT {keys}, {', '.join(f'SUM({c})' for c in SUMMED)}, COUNT(*) OVER () "  # noqa: S608 - names only
        f"FROM ({' UNION ALL '.join(selects)}) u WHERE {where} GROUP BY {keys} "
        f"ORDER BY SUM(cost_nanos) DESC, {tokens} DESC, {keys}"
        + (f" LIMIT {int(limit)}" if limit is not None else "")
    )
    with connections[parts[0].db].cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    width = len(columns)
    out = []
    for row in found:
        totals = Totals.of([int(v or 0) for v in row[width:-1]])
        totals.extra["key"] = row[0] if width == 1 else tuple(row[:width])
        out.append(totals)
    return out, int(found[0][-1]) if found else 0


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

    @classmethod
    def of(cls, values: list[int]) -> Totals:
        """Totals from its sums in SUMMED order (the order of its first fields)."""
        return cls(*values)  # type: ignore[arg-type]

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
    count: int  # keys of the breakdown in all (`rows` may hold only the first `limit`)


# The columns each breakdown groups by (model and day are read along with the chart).
BY_COLUMNS: dict[str, str | tuple[str, ...]] = {
    "gateway": "gateway_id",
    "agent": "agent_id",
    "session": ("agent_id", "session"),
    "task": "task_id",
}


def page(win: Window, by: Dimension, filters: Filters, limit: int | None = None) -> Page:
    """Totals, the breakdown, the chart and the unpriced models of a window: the sums per
    model (totals, the model breakdown, unpriced), the cost per hour × model (the chart: one
    column), and the breakdown asked for. Hours become local days in Python (time zones with
    DST cannot be shifted in SQL)."""
    total = Totals()
    models: dict[str, Totals] = defaultdict(Totals)
    per: dict[tuple[datetime, str], int] = defaultdict(int)
    first: datetime | None = None
    for model, t in sums(win.start, win.end, filters, "model").items():
        total.merge(t)
        models[model] = t
    tz, hourly = win.tz, win.hourly
    buckets: dict[Any, datetime] = {}  # an hour (or day) as the database gave it → its bucket

    def bucket_of(raw: Any) -> datetime:
        if (isinstance(raw, date) and not isinstance(raw, datetime)) or len(str(raw)) == 10:
            return local_midnight(date.fromisoformat(str(raw)), tz)  # a UTC day = a local one
        local = _utc(raw).astimezone(tz)
        return local if hourly else local_midnight(local.date(), tz)

    # Where the chart reads: hours of the window; or, when its local days are UTC days, whole
    # days from the daily rollup and the hours at the edges (a 30-day chart: ~250 rows, not
    # ~5,000 read from ~20,000).
    parts = [rows(win.start, win.end, filters).values(when=F("hour"))]
    if _utc_days(win) and daily_table(filters.columns) is UsageDailyRollup:
        first_hour, day0, day1 = _split(win.start, win.end)
        if day0 < day1:
            parts = [
                filters.apply(
                    UsageDailyRollup.objects.filter(day__gte=day0.date(), day__lt=day1.date())
                ).values(when=F("day"))
            ]
            if first_hour < day0:
                parts.append(rows(first_hour, day0, filters).values(when=F("hour")))
            if day1 < win.end:
                parts.append(rows(day1, win.end, filters).values(when=F("hour")))
    # Hours and days as the database gives them, each converted once (Django's converters per
    # row were a third of the page's time).
    for part in parts:
        for raw, model, nanos in _raw(
            part.values("when", "model").annotate(c=Sum("cost_nanos")).order_by()
        ):
            bucket = buckets.get(raw) or buckets.setdefault(raw, bucket_of(raw))
            per[(bucket, model)] += int(nanos or 0)  # PostgreSQL sums bigints as numeric
            if first is None or bucket < first:
                first = bucket
    count: int | None = None  # None: every key is in `shown`
    if by == "model":
        shown = _ranked(models)
    elif by == "day":
        days: dict[date, Totals] = defaultdict(Totals)
        for part in parts:
            for row in part.values("when").annotate(**_sums()).order_by():
                days[bucket_of(row["when"]).date()].add(row)
        shown = []
        for day in sorted(days, reverse=True):
            days[day].extra["key"] = day
            shown.append(days[day])
    else:
        column = BY_COLUMNS[by]
        shown, count = ranked(win.start, win.end, filters, column, limit)
    unpriced: list[dict[str, Any]] = [
        {"model": m, "records": t.unpriced_records, "tokens": t.unpriced_tokens}
        for m, t in sorted(models.items(), key=lambda mt: -mt[1].unpriced_tokens)
        if t.unpriced_records
    ]
    start = win.start if win.key != "all" or first is None else first
    return Page(
        total, shown, _series(per, win, start), unpriced, len(shown) if count is None else count
    )


def _raw(qs: QuerySet[Any]) -> list[tuple[Any, ...]]:
    """The rows of a values() query as the database driver gives them (no converters)."""
    sql, params = qs.query.sql_with_params()
    with connections[qs.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _utc(raw: Any) -> datetime:
    """A rollup's hour as a driver gives it: SQLite's UTC text, PostgreSQL's datetime."""
    if isinstance(raw, datetime):
        return raw if raw.tzinfo is not None else raw.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(raw)).replace(tzinfo=UTC)


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
    """Spend today, this week and this month (local), each against the same span of the
    previous one: as far into it as we are into this one (on the 5th, the month's first five
    days against last month's, never against the whole of it — that read "−83 %" in green).
    Only today is read afresh: the rest are spans that ended, read through a short cache
    (`closed_cost`; the previous spans end on a minute, so the cache holds)."""
    today = now.astimezone(tz).date()
    week = today - timedelta(days=today.weekday())
    month = today.replace(day=1)
    last_month = (month - timedelta(days=1)).replace(day=1)
    midnight = local_midnight(today, tz)
    spent_today = sums(midnight, now, filters)[None].cost_nanos
    spans = [
        ("Today", today, today - timedelta(days=1), "this time yesterday"),
        ("This week", week, week - timedelta(days=7), "last week so far"),
        ("This month", month, last_month, "last month so far"),
    ]
    out = []
    for label, first, previous, before_label in spans:
        start, before = local_midnight(first, tz), local_midnight(previous, tz)
        current = spent_today + (closed_cost(start, midnight, filters) if start < midnight else 0)
        # As far into the previous period as we are into this one (a shorter month ends
        # first), to the minute.
        elapsed = timedelta(minutes=int((now - start).total_seconds() // 60))
        earlier = closed_cost(before, min(before + elapsed, start), filters)
        out.append(
            Headline(label, prices.from_nanos(current), prices.from_nanos(earlier), before_label)
        )
    return out


CLOSED_TTL_S = 30.0
_closed_lock = threading.Lock()
_closed: dict[tuple[Any, ...], tuple[float, int]] = {}


def closed_cost(start: datetime, end: datetime, filters: Filters) -> int:
    """The cost of a span that ended (nano-dollars), kept per process for CLOSED_TTL_S: it
    moves only with late usage (an import, a backfill: this process forgets at once, others
    within the TTL) or a reprice (forgotten)."""
    key = (start, end, filters.key)
    with _closed_lock:
        hit = _closed.get(key)
    if hit is not None and monotonic() - hit[0] < CLOSED_TTL_S:
        return hit[1]
    nanos = sums(start, end, filters)[None].cost_nanos
    with _closed_lock:
        if len(_closed) > 2000:
            _closed.clear()
        _closed[key] = (monotonic(), nanos)
    return nanos


def forget_closed() -> None:
    with _closed_lock:
        _closed.clear()


state.register("closed-span costs", forget_closed)


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
    return totals(UsageDailyTask.objects.filter(task_id=task_id))


def task_costs(task_ids: list[int]) -> dict[int, int]:
    """What the work on each of these tasks cost, ever, in nano-dollars (tasks with none left
    out): one query on the task rollup's index."""
    if not task_ids:
        return {}
    found = (
        UsageDailyTask.objects.filter(task_id__in=task_ids)
        .values("task_id")
        .annotate(c=Sum("cost_nanos"))
        .order_by()
    )
    return {row["task_id"]: row["c"] or 0 for row in found}


def session_costs(sessions: list[tuple[int, str]]) -> dict[tuple[int, str], Totals]:
    """What each (agent id, session) cost, ever: one query on the session rollup's index."""
    if not sessions:
        return {}
    wanted = set(sessions)
    found: dict[tuple[int, str], Totals] = {}
    qs = (
        UsageDailySession.objects.filter(
            agent_id__in={a for a, _s in wanted}, session__in={s for _a, s in wanted}
        )
        .values("agent_id", "session")
        .annotate(**_sums())
        .order_by()
    )
    for row in qs:
        key = (row["agent_id"], row["session"])
        if key in wanted:
            found.setdefault(key, Totals()).add(dict(row))
    return found
