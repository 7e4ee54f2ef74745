"""The Gateways pages: everyone with a role sees each gateway's state and health; admins add,
edit, test and remove them. Tokens never reach a browser."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from agents import actions as agent_actions
from agents.models import Agent
from gateways import access, actions, connector, context_processors
from gateways.forms import GatewayForm
from gateways.models import Gateway
from missioncontrol.audit import Actor
from missioncontrol.context_processors import live_seq_for
from missioncontrol.errors import ActionError
from missioncontrol.http import parse_int
from missioncontrol.roles import has_role, role_required


def _visible(request: HttpRequest) -> QuerySet[Gateway]:
    """The gateways this user may see (per-gateway grants narrow it)."""
    ids = access.visible_ids(request.user)
    return Gateway.objects.all() if ids is None else Gateway.objects.filter(pk__in=ids)


def _form_errors(form: GatewayForm, error: ActionError) -> None:
    for field, problems in error.message_dict.items():
        for problem in problems:
            form.add_error(field if field in form.fields else None, problem)


@require_safe
@role_required("viewer")
def gateway_list(request: HttpRequest) -> HttpResponse:
    live_seq_for(request)
    gateways = list(_visible(request))
    counts: dict[int, int] = {}
    for gateway_id in Agent.objects.filter(gateway__isnull=False).values_list(
        "gateway_id", flat=True
    ):
        counts[gateway_id] = counts.get(gateway_id, 0) + 1
    for gateway in gateways:
        gateway.agent_count = counts.get(gateway.pk, 0)  # type: ignore[attr-defined]
    return render(request, "gateways/list.html", {"gateways": gateways})


@require_safe
@role_required("viewer")
def gateway_detail(request: HttpRequest, pk: int) -> HttpResponse:
    live_seq_for(request)
    gateway = get_object_or_404(_visible(request), pk=pk)
    test = request.session.pop(f"gateway-test-{gateway.pk}", None)
    states = dict(Gateway.State.choices)
    return render(
        request,
        "gateways/detail.html",
        {
            "gateway": gateway,
            # The state in the words the page uses elsewhere ("Token rejected", not AUTHFAILED).
            "test_label": states.get(test["state"], "Failed") if isinstance(test, dict) else "",
            "grants": access.granted_users(gateway) if has_role(request.user, "admin") else [],
            "history": gateway.state_changes.all()[:50],
            "agents": Agent.objects.of_gateway(gateway.pk).order_by("name")[:200],
            "test": test,
            "skipped": _skipped(gateway),
        },
    )


def _skipped(gateway: Gateway) -> list[dict[str, Any]]:
    """What the connector left out of this gateway's frames, the latest first."""
    rows = []
    for kind, entry in (gateway.skipped or {}).items():
        if not isinstance(entry, dict):
            continue
        at = entry.get("at")
        rows.append(
            {
                "kind": kind,
                "count": entry.get("count", 0),
                "reasons": list((entry.get("reasons") or {}).items()),
                "at": datetime.fromisoformat(at) if isinstance(at, str) else None,
            }
        )
    return sorted(rows, key=lambda r: r["at"] or datetime.min.replace(tzinfo=UTC), reverse=True)


@require_http_methods(["GET", "POST"])
@role_required("admin")
def gateway_new(request: HttpRequest) -> HttpResponse:
    form = GatewayForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            gateway = actions.create_gateway(
                Actor.user(request.user),
                name=data["name"],
                url=data["url"],
                token=data["token"],
                colour=data["colour"],
                enabled=data["enabled"],
            )
        except ActionError as error:
            _form_errors(form, error)
        else:
            messages.success(request, f"Added {gateway.name}; connecting now.")
            return redirect("gateways:detail", pk=gateway.pk)
    status = 422 if request.method == "POST" else 200
    return render(request, "gateways/form.html", {"form": form, "gateway": None}, status=status)


@require_http_methods(["GET", "POST"])
@role_required("admin")
def gateway_edit(request: HttpRequest, pk: int) -> HttpResponse:
    gateway = get_object_or_404(Gateway, pk=pk)
    initial = {
        "name": gateway.name,
        "url": gateway.url,
        "colour": gateway.colour,
        "enabled": gateway.enabled,
    }
    form = GatewayForm(request.POST or None, initial=initial, editing=True)
    if request.method == "POST" and form.is_valid():
        try:
            actions.update_gateway(
                Actor.user(request.user),
                gateway.pk,
                cast(actions.GatewayChanges, form.cleaned_data),
            )
        except ActionError as error:
            _form_errors(form, error)
        else:
            messages.success(request, f"Saved {form.cleaned_data['name']}.")
            return redirect("gateways:detail", pk=gateway.pk)
    status = 422 if request.method == "POST" else 200
    return render(request, "gateways/form.html", {"form": form, "gateway": gateway}, status=status)


@require_POST
@role_required("admin")
def gateway_delete(request: HttpRequest, pk: int) -> HttpResponse:
    gateway = get_object_or_404(Gateway, pk=pk)
    agent_actions.gateway_agents_offline(gateway.pk, "its gateway was removed")
    actions.delete_gateway(Actor.user(request.user), gateway.pk)
    messages.success(request, f"Removed {gateway.name}. Its agents and their history stay.")
    return redirect("gateways:list")


@require_POST
@role_required("admin")
def gateway_test(request: HttpRequest, pk: int) -> HttpResponse:
    """Connect once with the stored settings and report exactly what happened."""
    gateway = get_object_or_404(Gateway, pk=pk)
    identity = actions.device_identity()
    result = async_to_sync(connector.test_connection)(gateway.url, gateway.token, identity)
    request.session[f"gateway-test-{gateway.pk}"] = result
    return redirect("gateways:detail", pk=gateway.pk)


@require_POST
@role_required("admin")
def gateway_access(request: HttpRequest, pk: int) -> HttpResponse:
    """Grant a user view or operate on this gateway (narrowing them to granted gateways), or
    remove their grant."""
    gateway = get_object_or_404(Gateway, pk=pk)
    username = (request.POST.get("username") or "").strip()
    level = request.POST.get("level") or ""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        messages.error(request, f"No user named {username!r}.")
    elif has_role(user, "admin"):
        messages.error(
            request, "Admins see and act on every gateway; a grant would not narrow them."
        )
    else:
        try:
            actions.set_grant(Actor.user(request.user), gateway, user, level)
        except ActionError as error:
            messages.error(request, error.messages[0])
            return redirect("gateways:detail", pk=gateway.pk)
        messages.success(
            request,
            f"{user.get_username()}: {level} on {gateway.name}."
            if level != "none"
            else f"{user.get_username()} no longer has a grant on {gateway.name}.",
        )
    return redirect("gateways:detail", pk=gateway.pk)


@require_POST
@role_required("viewer")
def gateway_view(request: HttpRequest) -> HttpResponse:
    """The shell's switch: show one gateway's data everywhere, or all gateways'."""
    raw = request.POST.get("gateway") or ""
    gateway = None
    if raw:
        pk = parse_int(raw)
        gateway = _visible(request).filter(pk=pk).first() if pk is not None else None
        if gateway is None:
            messages.error(request, "That gateway is not one you can see.")
    assert request.user.pk is not None  # role_required: someone signed in
    actions.choose_view(request.user.pk, gateway)
    context_processors.remember(request, gateway.pk if gateway else None)
    target = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    return redirect(target)
