"""Costs: the page (headline, chart, breakdowns, filters in the URL), CSV exports, and the
admins' prices."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, time
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from agents.models import Agent, AgentSession
from billing import actions, budgets, prices, reports
from billing.forms import BudgetForm, PriceOverrideForm
from billing.models import Budget, BudgetAlert, BudgetSpend, PriceOverride, UsageRecord
from gateways import access
from gateways.context_processors import chosen_gateway_id
from gateways.models import Gateway
from missioncontrol import streaming
from missioncontrol.audit import Actor
from missioncontrol.context_processors import live_seq_for
from missioncontrol.http import parse_int, safe_next
from missioncontrol.roles import has_role, role_required
from tasks.models import Task

CHART_W, CHART_H, CHART_TOP = 720, 180, 8
ROWS_SHOWN = 200  # breakdown rows on the page (the table CSV has them all)
NO_DATES: dict[str, Any] = {"from": None, "to": None}


def _int(value: str) -> int | None:
    return parse_int(value)


class CostQuery:
    """What a costs URL asks for: window, dimension and filters, parsed once (bad values are
    dropped with a note, never a 500)."""

    def __init__(self, request: HttpRequest) -> None:
        get = request.GET
        self.params = get
        self.tz = timezone.get_current_timezone()
        self.now = timezone.now()
        self.window, self.error = reports.window(
            get.get("range", "7d"), self.now, self.tz, get.get("from", ""), get.get("to", "")
        )
        by = get.get("by", "model")
        self.by: reports.Dimension = by if by in reports.DIMENSIONS else "model"  # type: ignore[assignment]
        self.filters = reports.Filters(visible_gateways=_visible(request))
        self.chips: list[tuple[str, str, str]] = []  # (what, shown, url without it)
        gateway = get.get("gateway", "")
        self.switched = False
        if gateway == "direct":
            self.filters.gateway_id = 0
            self.chips.append(("Gateway", "direct agents", self.url(gateway=None)))
        elif gateway:
            found = _int(gateway)
            if found is not None:
                self.filters.gateway_id = found
                # A gateway this user may not see is not named (its data is filtered out too).
                name = (
                    Gateway.objects.filter(access.narrowing(request.user, "pk", direct=False))
                    .filter(pk=found)
                    .values_list("name", flat=True)
                    .first()
                )
                self.chips.append(("Gateway", name or f"#{found}", self.url(gateway=None)))
        else:
            chosen = chosen_gateway_id(request)
            if chosen is not None:
                self.filters.gateway_id = chosen
                self.switched = True
        agent = get.get("agent", "")
        if agent:
            found_agent = (
                Agent.objects.visible_to(request.user).filter(name=agent).only("pk", "name").first()
            )
            self.filters.agent_id = found_agent.pk if found_agent else -1
            self.chips.append(("Agent", agent, self.url(agent=None)))
        session = get.get("session", "")[:128]
        if session and self.filters.agent_id is not None:
            # A session is one agent's: its name is only unique with the agent.
            self.filters.session = session
            self.chips.append(("Session", session, self.url(session=None)))
        if get.get("model"):
            self.filters.model = get["model"][:128]
            self.chips.append(("Model", self.filters.model, self.url(model=None)))
        task = _int(get.get("task", ""))
        if task is not None:
            self.filters.task_id = task
            title = Task.objects.filter(pk=task).values_list("title", flat=True).first()
            self.chips.append(("Task", f"#{task} {title or ''}".strip(), self.url(task=None)))

    def _carried(self, *dropped: str) -> list[tuple[str, str]]:
        return [(k, v) for k, vs in self.params.lists() if k not in dropped for v in vs]

    @property
    def carried_by_range_form(self) -> list[tuple[str, str]]:
        """Hidden inputs of the range form: the rest of the query. Built here, not in the
        template: there `q.params.lists` is `params["lists"]` when the URL has `?lists=`."""
        return self._carried("range", "from", "to", "format")

    @property
    def carried_by_gateway_form(self) -> list[tuple[str, str]]:
        return self._carried("gateway", "format")

    def url(self, *, base: str = "", **changes: Any) -> str:
        pairs: dict[str, list[str]] = {k: list(vs) for k, vs in self.params.lists()}
        for key, change in changes.items():
            if change is None:
                pairs.pop(key, None)
            else:
                pairs[key] = [change]
        encoded = urlencode(sorted((k, v) for k, vs in pairs.items() for v in vs))
        return f"{base or reverse('billing:costs')}" + (f"?{encoded}" if encoded else "")


def _visible(request: HttpRequest) -> set[int] | None:
    ids = access.visible_ids(request.user)
    return None if ids is None else set(ids)


def _labels(q: CostQuery, found: list[reports.Totals]) -> list[dict[str, Any]]:
    """Each breakdown row with its label, its link to the view filtered by it, and share."""
    keys = [t.extra["key"] for t in found]
    names: dict[Any, Any] = {}
    if q.by == "agent":
        names = {a.pk: a for a in Agent.objects.filter(pk__in=keys).select_related("gateway")}
    elif q.by == "gateway":
        names = {g.pk: g for g in Gateway.objects.filter(pk__in=keys)}
    elif q.by == "task":
        names = {t.pk: t for t in Task.objects.filter(pk__in=keys).only("pk", "title", "status")}
    elif q.by == "session":
        agent_ids = {a for a, _s in keys}
        names = {a.pk: a for a in Agent.objects.filter(pk__in=agent_ids).select_related("gateway")}
        pages = {
            (s.agent_id, s.key): s.pk
            for s in AgentSession.objects.filter(
                agent_id__in=agent_ids, key__in={s for _a, s in keys}
            ).only("pk", "agent_id", "key")
        }
    total = sum(t.cost_nanos for t in found) or 1
    out = []
    for t in found:
        key = t.extra["key"]
        row: dict[str, Any] = {"t": t, "share": t.cost_nanos / total, "key": key}
        if q.by == "model":
            row["label"] = key
            row["href"] = q.url(model=key, by="agent" if not q.filters.agent_id else "day")
            row["table"] = prices.table_model(key, "")
        elif q.by == "agent":
            agent = names.get(key)
            row["agent"] = agent
            row["label"] = agent.display_name if agent else f"deleted agent #{key}"
            row["href"] = q.url(agent=agent.name, by="model") if agent else ""
        elif q.by == "gateway":
            gateway = names.get(key)
            row["gateway"] = gateway
            row["label"] = gateway.name if gateway else ("direct agents" if key == 0 else f"#{key}")
            row["href"] = q.url(gateway=str(key) if key else "direct", by="agent")
        elif q.by == "session":
            agent_id, session = key
            agent = names.get(agent_id)
            row["agent"] = agent
            row["label"] = session
            row["agent_label"] = agent.display_name if agent else f"deleted agent #{agent_id}"
            row["href"] = q.url(agent=agent.name, session=session, by="model") if agent else ""
            page = pages.get((agent_id, session))
            row["page"] = reverse("agents:session", args=[page]) if page else ""
        elif q.by == "task":
            task = names.get(key)
            row["task"] = task
            row["label"] = f"#{key} {task.title}" if task else f"#{key} (deleted)"
            row["href"] = q.url(task=str(key), by="agent")
        else:
            row["label"] = key
            day = key.isoformat()
            row["href"] = q.url(range="custom", **{"from": day, "to": day}, by="model")
        out.append(row)
    return out


def _chart(series: reports.Series) -> dict[str, Any]:
    """A stacked bar chart as SVG geometry (drawn by the template; colours by CSS class, so it
    reads in both themes and needs no inline style)."""
    n = max(1, len(series.buckets))
    peak = series.peak or 1
    slot = CHART_W / n
    width = max(1.0, slot * 0.72)
    bars = []
    for index, bucket in enumerate(series.buckets):
        y = float(CHART_TOP + CHART_H)
        x = index * slot + (slot - width) / 2
        for m_index, model in enumerate(series.models):
            value = series.values.get((bucket, model), 0)
            if not value:
                continue
            h = value / peak * CHART_H
            y -= h
            # Geometry as text: the template would localise each float (a thousand number
            # formats a 30-day chart).
            bars.append(
                {
                    "x": f"{x:.2f}",
                    "y": f"{y:.2f}",
                    "w": f"{width:.2f}",
                    "h": f"{max(h, 0.5):.2f}",
                    "series": m_index + 1,
                    "title": f"{bucket:%b %-d %H:%M} · {model}: ${prices.from_nanos(value):,.4f}",
                }
            )
    # One label slot per bar (HTML under the chart: SVG text would stretch with it), every
    # step-th one written.
    step = max(1, -(-n // 8))
    hourly = _hourly(series)
    ticks = [
        (f"{b:%H:%M}" if hourly else f"{b:%b %-d}") if i % step == 0 else ""
        for i, b in enumerate(series.buckets)
    ]
    return {
        "bars": bars,
        "ticks": ticks,
        "peak": prices.from_nanos(series.peak),
        "legend": [{"model": m, "series": i + 1} for i, m in enumerate(series.models)],
        "w": CHART_W,
        "h": CHART_H + CHART_TOP,
        "base": CHART_TOP + CHART_H,
        "empty": series.peak == 0,
    }


def _hourly(series: reports.Series) -> bool:
    b = series.buckets
    return len(b) > 1 and (b[1] - b[0]).total_seconds() <= 3600


@require_safe
@role_required("viewer")
def costs(request: HttpRequest) -> HttpResponse:
    live_seq_for(request)
    q = CostQuery(request)
    if request.GET.get("format") == "csv":
        return _table_csv(q)
    shown = reports.page(q.window, q.by, q.filters, limit=ROWS_SHOWN)
    total, found, unpriced = shown.total, shown.rows, shown.unpriced[:20]
    return render(
        request,
        "billing/costs.html",
        {
            "q": q,
            "total": total,
            "headlines": reports.headlines(q.now, q.tz, q.filters),
            "rows": _labels(q, found[:ROWS_SHOWN]),
            "more_rows": max(0, shown.count - ROWS_SHOWN),
            "chart": _chart(shown.series),
            "unpriced": unpriced,
            "dimensions": [(k, v, q.url(by=k)) for k, v in reports.DIMENSIONS.items()],
            "ranges": [
                (k, v, q.url(range=k, **NO_DATES))
                for k, v in reports.RANGES.items()
                if k != "custom"
            ],
            "gateways": Gateway.objects.filter(pk__in=q.filters.visible_gateways).order_by("name")
            if q.filters.visible_gateways is not None
            else Gateway.objects.order_by("name"),
            "csv_table": q.url(format="csv"),
            "csv_records": q.url(base=reverse("billing:export")),
            "tz": q.tz,
        },
    )


def _table_csv(q: CostQuery) -> HttpResponse:
    found = _labels(q, reports.breakdown(q.window, q.by, q.filters))
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="costs-by-{q.by}.csv"'
    writer = csv.writer(response)
    session = q.by == "session"  # a session's name is only unique with its agent
    writer.writerow(
        [
            q.by,
            *(["agent"] if session else []),
            "cost_usd",
            "records",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "unpriced_records",
            "unpriced_tokens",
            "reported_cost_usd",
        ]
    )
    for row in found:
        t = row["t"]
        writer.writerow(
            [
                _safe(str(row["label"])),
                *(
                    [_safe(row["agent"].name if row["agent"] else row["agent_label"])]
                    if session
                    else []
                ),
                t.cost,
                t.records,
                t.input_tokens,
                t.output_tokens,
                t.cache_read_tokens,
                t.cache_write_tokens,
                t.reasoning_tokens,
                t.unpriced_records,
                t.unpriced_tokens,
                t.reported if t.reported_records else "",
            ]
        )
    return response


def _safe(value: str) -> str:
    """A cell a spreadsheet would run as a formula is written as text."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


EXPORT_CHUNK = 2000
# The records CSV: its column, and the value it shows.
EXPORT = (
    ("occurred_at", "occurred_at"),
    ("agent", "agent__name"),
    ("gateway", "agent__gateway__name"),
    *(
        (name, name)
        for name in (
            "model",
            "provider",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "cost_usd",
            "price_version",
            "reported_cost_usd",
            "session",
            "task_id",
        )
    ),
    ("id", "client_id"),
)
EXPORT_COLUMNS = [column for column, _field in EXPORT]
EXPORT_FIELDS = [field for _column, field in EXPORT]


@require_safe
@role_required("viewer")
def export(request: HttpRequest) -> StreamingHttpResponse:
    """The raw records of the view, streamed: a million rows never sit in memory (the query
    reads in chunks through a server-side cursor on PostgreSQL)."""
    q = CostQuery(request)
    f = q.filters
    records = UsageRecord.objects.filter(
        occurred_at__gte=q.window.start, occurred_at__lt=q.window.end
    )
    if f.visible_gateways is not None:
        records = records.filter(
            Q(agent__gateway__isnull=True) | Q(agent__gateway_id__in=f.visible_gateways)
        )
    if f.gateway_id == 0:
        records = records.filter(agent__gateway__isnull=True)
    elif f.gateway_id is not None:
        records = records.filter(agent__gateway_id=f.gateway_id)
    if f.agent_id is not None:
        records = records.filter(agent_id=f.agent_id)
    if f.model:
        records = records.filter(model=f.model)
    if f.task_id is not None:
        records = records.filter(task_id=f.task_id)
    if f.session:
        records = records.filter(session=f.session)
    tz = q.tz
    writer = streaming.csv_writer()

    def page(after: tuple[Any, int] | None) -> tuple[str, tuple[Any, int] | None]:
        """The next EXPORT_CHUNK records after `after` (occurred_at, pk) as CSV text."""
        chunk = records
        if after is not None:
            chunk = chunk.filter(
                Q(occurred_at__gt=after[0]) | Q(occurred_at=after[0], pk__gt=after[1])
            )
        rows = list(
            chunk.order_by("occurred_at", "pk").values_list("pk", *EXPORT_FIELDS)[:EXPORT_CHUNK]
        )
        text = "".join(
            writer.writerow(
                [
                    at.astimezone(tz).isoformat(),
                    *(_safe(v) if isinstance(v, str) else ("" if v is None else v) for v in rest),
                ]
            )
            for _pk, at, *rest in rows
        )
        return text, ((rows[-1][1], rows[-1][0]) if len(rows) == EXPORT_CHUNK else None)

    stamp = q.window.start.astimezone(UTC).strftime("%Y%m%d")
    return streaming.csv_response(
        EXPORT_COLUMNS, page, filename=f"usage-{stamp}.csv", what="usage records export"
    )


# --- Prices (admins) --------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@role_required("admin")
def price_list(request: HttpRequest) -> HttpResponse:
    initial: dict[str, Any] = {"effective_from": timezone.localdate()}
    if request.GET.get("model"):
        name, provider = prices.split(request.GET["model"][:128], request.GET.get("provider", ""))
        initial.update(model_pattern=name, provider=provider)
    form = PriceOverrideForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        override = actions.save_override(Actor.user(request.user), form.save(commit=False))
        text = f"Price for {override} saved."
        if form.cleaned_data.get("reprice"):
            report = actions.reprice(
                Actor.user(request.user),
                since=datetime.combine(override.effective_from, time.min, tzinfo=UTC),
                pattern=override.model_pattern,
                for_real=True,
            )
            text += (
                f" {report.changed:,} of {report.records:,} records repriced: "
                f"${prices.from_nanos(report.before_nanos):,.4f} → "
                f"${prices.from_nanos(report.after_nanos):,.4f}."
            )
        messages.success(request, text)
        return redirect("billing:prices")
    return render(
        request,
        "billing/prices.html",
        {
            "form": form,
            "overrides": PriceOverride.objects.order_by("model_pattern", "-effective_from"),
            "table_version": prices.TABLE_VERSION,
        },
    )


@require_POST
@role_required("admin")
def price_delete(request: HttpRequest, pk: int) -> HttpResponse:
    override = get_object_or_404(PriceOverride, pk=pk)
    actions.delete_override(Actor.user(request.user), override)
    messages.success(
        request,
        f"Price for {override} deleted. Records it priced keep their cost until a reprice "
        "(`manage.py reprice --for-real`).",
    )
    return redirect("billing:prices")


# --- Budgets and their alerts -------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@role_required("viewer")
def budget_list(request: HttpRequest) -> HttpResponse:
    """Every budget with this period's spend; admins add and remove them."""
    return _budget_page(request, None)


@require_http_methods(["GET", "POST"])
@role_required("admin")
def budget_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """The budgets page with one budget's form (raise the amount, change what it covers)."""
    return _budget_page(request, get_object_or_404(Budget, pk=pk))


def _budget_page(request: HttpRequest, editing: Budget | None) -> HttpResponse:
    is_admin = has_role(request.user, "admin")
    form = BudgetForm(request.POST or None, instance=editing) if is_admin else None
    if request.method == "POST":
        if form is None:
            raise PermissionDenied("Only admins change budgets.")
        if form.is_valid():
            budget = form.save(commit=False)
            budget.thresholds = form.cleaned_data["thresholds_text"]
            actions.save_budget(Actor.user(request.user), budget)
            messages.success(request, f"Budget {budget.name} saved.")
            return redirect("billing:budgets")
    now = timezone.now()
    periods = {p: budgets.period_start(p, now) for p in Budget.Period.values}
    # This period's running total of every budget, in one query.
    spends = {
        (b, str(start)): (nanos, lifted)
        for b, start, nanos, lifted in BudgetSpend.objects.filter(
            period_start__in=set(periods.values())
        ).values_list("budget_id", "period_start", "spent_nanos", "pause_lifted_at")
    }
    shown = []
    for budget in Budget.objects.visible_to(request.user).select_related("gateway", "agent"):
        start = periods[budget.period]
        nanos, lifted = spends.get((budget.pk, str(start)), (0, None))
        spent = prices.from_nanos(nanos)
        shown.append(
            {
                "budget": budget,
                "spent": spent,
                "share": spent / budget.amount_usd,
                "start": start,
                # As budgets.pauses() decides, from the rows already read.
                "pausing": budget.enabled
                and lifted is None
                and budgets.is_pausing(budget.enforce, budget.scope, nanos, budget.amount_usd),
                "lifted_at": lifted,
            }
        )
    return render(
        request,
        "billing/budgets.html",
        {
            "budgets": shown,
            "form": form,
            "editing": editing,
            "alerts": BudgetAlert.objects.visible_to(request.user).select_related(
                "budget", "acknowledged_by"
            )[:50],
            "server_tz": settings.TIME_ZONE,
        },
        status=422 if form is not None and form.is_bound else 200,
    )


@require_POST
@role_required("admin")
def budget_lift(request: HttpRequest, pk: int) -> HttpResponse:
    """Lift a spent budget's pause for the rest of its period."""
    budget = get_object_or_404(Budget, pk=pk)
    if actions.lift_pause(Actor.user(request.user), budget):
        messages.success(request, f"Pause lifted: agents under {budget.name} work on this period.")
    else:
        messages.info(request, f"{budget.name} pauses no one right now.")
    return redirect(safe_next(request, reverse("billing:budgets")))


@require_POST
@role_required("admin")
def budget_delete(request: HttpRequest, pk: int) -> HttpResponse:
    budget = get_object_or_404(Budget, pk=pk)
    actions.delete_budget(Actor.user(request.user), budget)
    messages.success(request, f"Budget {budget.name} deleted.")
    return redirect("billing:budgets")


@require_POST
@role_required("operator")
def alert_acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    # An alert of a gateway this user may not see is not there for them (404, not 403: its
    # existence is not theirs to learn).
    alert = get_object_or_404(BudgetAlert.objects.visible_to(request.user), pk=pk)
    actions.acknowledge_alert(Actor.user(request.user), alert)
    return redirect(safe_next(request, reverse("billing:budgets")))


@require_safe
@role_required("operator")
def spend_chip(request: HttpRequest) -> HttpResponse:
    """The shell's "spent today" chip alone: the page fetches it again when usage is recorded
    (a `usage.recorded` event names no person's total: each sees their own gateways')."""
    return render(request, "billing/_spend_chip.html")
