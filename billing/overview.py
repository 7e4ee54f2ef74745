"""Spend on the overview (an edge): budget thresholds crossed (unacknowledged) as "Needs
attention" items, and the Spend panel (today, this week and month, budgets, top models today)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from agents.models import Agent
from billing import budgets, prices, reports
from billing.models import Budget, BudgetAlert, BudgetSpend
from missioncontrol import live, overview
from missioncontrol.overview import Attention, Viewer


def _chosen_key(budget: Budget) -> int | None:
    """What the gateway switch compares: the gateway a budget is about, None for one over
    everything (shown whatever gateway is chosen, as the spend panel's totals are)."""
    gateway_id = budgets.concerns(budget)
    return None if gateway_id == live.EVERY_GATEWAY else gateway_id


def thresholds(viewer: Viewer) -> list[Attention]:
    found = []
    for alert in (
        BudgetAlert.objects.visible_to(viewer.user)
        .standing()
        .select_related("budget__gateway", "budget__agent__gateway")[: viewer.limit]
    ):
        budget = alert.budget
        if not viewer.sees(_chosen_key(budget)):
            continue
        found.append(
            Attention(
                key=f"budget.alert:{alert.pk}",
                kind="Budget",
                severity=overview.CRITICAL if alert.pauses_agents else overview.DEGRADED,
                title=f"{budget.name} crossed {alert.threshold}%",
                detail=f"${alert.spent:,.2f} of ${alert.amount_usd:,.2f}"
                + (" — its agents are paused" if alert.pauses_agents else ""),
                url=reverse("billing:budgets"),
                since=alert.created_at,
                gateway=budget.gateway or (budget.agent.gateway if budget.agent else None),
                action="Budgets",
                more_url=reverse("billing:budgets"),
                more_label="budget alerts",
                # One over everything or a model sums every gateway's spend: not for people
                # narrowed to some gateways (billing.models.budget_narrowing).
                ungated=budget.scope == Budget.Scope.AGENT,
            )
        )
    return found


def spend(viewer: Viewer) -> dict[str, Any]:
    now = timezone.now()
    tz = timezone.get_current_timezone()
    visible, chosen = viewer.gateway_filter()
    filters = reports.Filters(
        visible_gateways=None if visible is None else set(visible), gateway_id=chosen
    )
    headlines = reports.headlines(now, tz, filters)
    midnight = reports.local_midnight(now.astimezone(tz).date(), tz)
    today_rows = reports.rows(midnight, now, filters, fine=True)
    top = today_rows.values("model").annotate(c=Sum("cost_nanos")).order_by("-c", "model")[:3]
    top_agents = list(
        today_rows.values("agent_id").annotate(c=Sum("cost_nanos")).order_by("-c", "agent_id")[:3]
    )
    names = dict(
        Agent.objects.filter(pk__in=[r["agent_id"] for r in top_agents]).values_list("pk", "name")
    )
    # The last seven days (closed days from the per-process cache), oldest first.
    today = now.astimezone(tz).date()
    trend = []
    for back in range(6, -1, -1):
        day = today - timedelta(days=back)
        start = reports.local_midnight(day, tz)
        nanos = (
            reports.closed_cost(start, reports.local_midnight(day + timedelta(days=1), tz), filters)
            if back
            else reports.sums(midnight, now, filters)[None].cost_nanos
        )
        trend.append((day, nanos))
    peak = max((n for _d, n in trend), default=0) or 1
    bars = [
        {
            "x": i * 20 + 3,
            "h": f"{max(1.0, n / peak * 36):.1f}",
            "y": f"{40 - max(1.0, n / peak * 36):.1f}",
            "title": f"{d:%a %b %-d}: ${prices.from_nanos(n):,.2f}",
        }
        for i, (d, n) in enumerate(trend)
    ]
    periods = {p: budgets.period_start(p, now) for p in Budget.Period.values}
    spends = {
        (b, start): nanos
        for b, start, nanos in BudgetSpend.objects.filter(
            period_start__in=set(periods.values())
        ).values_list("budget_id", "period_start", "spent_nanos")
    }
    shown = []
    for budget in (
        Budget.objects.visible_to(viewer.user)
        .filter(enabled=True)
        .select_related("gateway", "agent")[:6]
    ):
        if not viewer.sees(_chosen_key(budget)):
            continue
        spent = prices.from_nanos(spends.get((budget.pk, periods[budget.period]), 0))
        share = min(100, int(spent / budget.amount_usd * 100)) if budget.amount_usd else 0
        shown.append({"budget": budget, "spent": spent, "share": share})
    return {
        "headlines": headlines,
        "top_models": [(row["model"], prices.from_nanos(row["c"])) for row in top if row["c"]],
        "top_agents": [
            (names.get(row["agent_id"], "?"), prices.from_nanos(row["c"]))
            for row in top_agents
            if row["c"] and row["agent_id"]
        ],
        "trend": bars,
        "budgets": shown,
    }


def register() -> None:
    overview.register_attention(
        "billing.thresholds", thresholds, topics=("alerts",), notify="budget", min_role="operator"
    )
    overview.register_panel(
        overview.Panel("spend", 30, "billing/_overview_spend.html", spend, min_role="operator"),
        topics=("costs", "alerts"),
    )
