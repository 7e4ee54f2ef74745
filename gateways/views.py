"""The Gateways pages: everyone with a role sees each gateway's state and health; admins add,
edit, test and remove them. Tokens never reach a browser."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from agents import actions as agent_actions
from agents.models import Agent
from gateways import actions, connector
from gateways.forms import GatewayForm
from gateways.models import Gateway
from missioncontrol.audit import Actor
from missioncontrol.context_processors import live_seq_for
from missioncontrol.errors import ActionError
from missioncontrol.roles import role_required


def _form_errors(form: GatewayForm, error: ActionError) -> None:
    for field, problems in error.message_dict.items():
        for problem in problems:
            form.add_error(field if field in form.fields else None, problem)


@require_safe
@role_required("viewer")
def gateway_list(request: HttpRequest) -> HttpResponse:
    live_seq_for(request)
    gateways = list(Gateway.objects.all())
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
    gateway = get_object_or_404(Gateway, pk=pk)
    return render(
        request,
        "gateways/detail.html",
        {
            "gateway": gateway,
            "history": gateway.state_changes.all()[:50],
            "agents": Agent.objects.of_gateway(gateway.pk).order_by("name")[:200],
            "test": request.session.pop(f"gateway-test-{gateway.pk}", None),
        },
    )


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
            actions.update_gateway(Actor.user(request.user), gateway.pk, form.cleaned_data)
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
