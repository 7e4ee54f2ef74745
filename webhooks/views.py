"""The Webhooks pages (admins only): endpoints, their secrets and health, the delivery history
with every attempt, test events, redelivery and cancelling."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from missioncontrol.audit import Actor
from missioncontrol.http import parse_int
from missioncontrol.roles import role_required
from webhooks import actions, outbox
from webhooks.forms import EndpointForm, RedeliverForm
from webhooks.models import Attempt, Delivery, Endpoint

PAGE = 50


def _health(endpoints: list[Endpoint]) -> None:
    """Each endpoint's success rate over the last 24 hours (attempts, not deliveries)."""
    since = timezone.now() - timedelta(hours=24)
    rows = (
        Attempt.objects.filter(delivery__endpoint__in=endpoints, at__gte=since)
        .exclude(delivery__event_type=outbox.TEST)
        .values("delivery__endpoint_id")
        .annotate(
            n=Count("id"), good=Count("id", filter=Q(status_code__gte=200, status_code__lt=300))
        )
        .values_list("delivery__endpoint_id", "good", "n")
    )
    found = {endpoint_id: (good, n) for endpoint_id, good, n in rows}
    for endpoint in endpoints:
        ok, n = found.get(endpoint.pk, (0, 0))
        endpoint.attempts_24h = n  # type: ignore[attr-defined]
        endpoint.success_rate = round(100 * ok / n) if n else None  # type: ignore[attr-defined]


def _filtered(
    request: HttpRequest, deliveries: QuerySet[Delivery]
) -> tuple[QuerySet[Delivery], dict[str, str]]:
    chosen = {
        "status": request.GET.get("status", ""),
        "type": request.GET.get("type", "")[:64],
        "hours": request.GET.get("hours", ""),
    }
    if chosen["status"] in Delivery.Status.values:
        deliveries = deliveries.filter(status=chosen["status"])
    if chosen["type"]:
        deliveries = deliveries.filter(event_type=chosen["type"])
    if (hours := parse_int(chosen["hours"], low=1, high=24 * 365)) is not None:
        deliveries = deliveries.filter(created_at__gte=timezone.now() - timedelta(hours=hours))
    return deliveries, chosen


def _page(request: HttpRequest, deliveries: QuerySet[Delivery]) -> dict[str, Any]:
    deliveries, chosen = _filtered(request, deliveries.select_related("endpoint"))
    page = Paginator(deliveries, PAGE).get_page(request.GET.get("page"))
    query = "&".join(f"{k}={v}" for k, v in chosen.items() if v)
    return {
        "page": page,
        "chosen": chosen,
        "query": query,
        "statuses": Delivery.Status.choices,
        "spans": [("1", "Last hour"), ("24", "Last 24 hours"), ("168", "Last 7 days")],
        "types": list(outbox.CATALOGUE),
    }


@require_http_methods(["GET", "POST"])
@role_required("admin")
def endpoint_list(request: HttpRequest) -> HttpResponse:
    form = EndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        endpoint = actions.save_endpoint(Actor.user(request.user), form.save(commit=False))
        messages.success(
            request, f"Endpoint {endpoint.url} added. Its signing secret is on its page."
        )
        return redirect("webhooks:detail", endpoint.pk)
    endpoints = list(Endpoint.objects.all())
    _health(endpoints)
    return render(
        request,
        "webhooks/list.html",
        {
            "endpoints": endpoints,
            "form": form,
            "catalogue": outbox.CATALOGUE,
            "recent": Delivery.objects.select_related("endpoint")[:10],
        },
        status=422 if form.errors else 200,
    )


@require_http_methods(["GET", "POST"])
@role_required("admin")
def endpoint_detail(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint, pk=pk)
    form = EndpointForm(request.POST or None, instance=endpoint)
    if request.method == "POST" and form.is_valid():
        actions.save_endpoint(Actor.user(request.user), form.save(commit=False))
        messages.success(request, "Endpoint saved.")
        return redirect("webhooks:detail", endpoint.pk)
    return _detail(request, endpoint, form, status=422 if form.errors else 200)


def _detail(
    request: HttpRequest, endpoint: Endpoint, form: EndpointForm, status: int = 200, **extra: Any
) -> HttpResponse:
    """An endpoint's page: its settings form, health, secret panel and delivery history."""
    _health([endpoint])
    return render(
        request,
        "webhooks/detail.html",
        {
            "endpoint": endpoint,
            "form": form,
            "catalogue": outbox.CATALOGUE,
            "redeliver_form": RedeliverForm(initial={"since": timezone.now() - timedelta(days=1)}),
            **_page(request, endpoint.deliveries.all()),
            **extra,
        },
        status=status,
    )


@require_POST
@role_required("admin")
def endpoint_secret(request: HttpRequest, pk: int) -> HttpResponse:
    """The signing secret, shown on demand (POST: never in a URL, a cache or a prefetch), audited."""
    endpoint = get_object_or_404(Endpoint, pk=pk)
    actions.secret_viewed(Actor.user(request.user), endpoint)
    grace = endpoint.previous_until and endpoint.previous_until > timezone.now()
    return _detail(
        request,
        endpoint,
        EndpointForm(instance=endpoint),
        secret_shown=endpoint.secret,
        previous_shown=endpoint.previous_secret if grace else "",
    )


@require_POST
@role_required("admin")
def endpoint_rotate(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint, pk=pk)
    actions.rotate_secret(Actor.user(request.user), endpoint.pk)
    messages.success(
        request,
        "A new signing secret is in use. Deliveries carry a signature with the old one too "
        f"for {actions.ROTATION_GRACE.total_seconds() / 3600:.0f} hours: update your receiver meanwhile.",
    )
    return redirect("webhooks:detail", endpoint.pk)


@require_POST
@role_required("admin")
def endpoint_test(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint, pk=pk)
    delivery = actions.send_test(Actor.user(request.user), endpoint.pk)
    messages.success(request, "Test event queued; its attempt shows here as it happens.")
    return redirect("webhooks:delivery", delivery.pk)


@require_POST
@role_required("admin")
def endpoint_redeliver(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint, pk=pk)
    form = RedeliverForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the time from which failed deliveries are sent again.")
        return redirect("webhooks:detail", endpoint.pk)
    since = form.cleaned_data["since"]
    queued = actions.redeliver_failed(Actor.user(request.user), endpoint.pk, since)
    messages.success(request, f"{queued} failed deliveries queued again.")
    return redirect("webhooks:detail", endpoint.pk)


@require_POST
@role_required("admin")
def endpoint_delete(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(Endpoint, pk=pk)
    actions.delete_endpoint(Actor.user(request.user), endpoint)
    messages.success(request, f"Endpoint {endpoint.url} deleted, with its delivery history.")
    return redirect("webhooks:list")


@require_safe
@role_required("admin")
def delivery_list(request: HttpRequest) -> HttpResponse:
    return render(request, "webhooks/deliveries.html", _page(request, Delivery.objects.all()))


@require_safe
@role_required("admin")
def delivery_detail(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(Delivery.objects.select_related("endpoint"), pk=pk)
    return render(
        request,
        "webhooks/delivery.html",
        {
            "delivery": delivery,
            "attempts": list(delivery.attempt_rows.all()),
            "body": json.dumps(delivery.payload, indent=2, ensure_ascii=False),
        },
    )


@require_POST
@role_required("admin")
def delivery_redeliver(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(Delivery, pk=pk)
    if actions.redeliver(Actor.user(request.user), [delivery.pk]):
        messages.success(request, "Queued to be sent again (same webhook id).")
    else:
        messages.error(request, "It is on its way right now; try again in a moment.")
    return redirect("webhooks:delivery", delivery.pk)


@require_POST
@role_required("admin")
def delivery_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(Delivery, pk=pk)
    if actions.cancel(Actor.user(request.user), [delivery.pk]):
        messages.success(request, "Its retries are cancelled.")
    else:
        messages.error(request, "Only a pending or retrying delivery can be cancelled.")
    return redirect("webhooks:delivery", delivery.pk)
