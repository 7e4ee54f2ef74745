"""The shell's gateway switch: which gateways the user may pick, and which one is on."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from gateways import access
from gateways.models import Gateway, GatewayView


def chosen_gateway_id(request: HttpRequest) -> int | None:
    """The gateway the user's switch is on (None: all gateways), cached for the request."""
    if hasattr(request, "_mc_gateway_view"):
        cached: int | None = request._mc_gateway_view
        return cached
    chosen: int | None = None
    user = request.user
    if user.is_authenticated:
        chosen = (
            GatewayView.objects.filter(user_id=user.pk).values_list("gateway_id", flat=True).first()
        )
        if chosen is not None and not access.can_view(user, chosen):
            chosen = None  # a grant withdrawn since
    request._mc_gateway_view = chosen  # type: ignore[attr-defined]
    return chosen


def gateway_switch(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    ids = access.visible_ids(user)
    gateways = Gateway.objects.all() if ids is None else Gateway.objects.filter(pk__in=ids)
    choices = list(gateways.only("pk", "name", "colour"))
    if not choices:
        return {}
    chosen = chosen_gateway_id(request)
    return {
        "gateway_choices": choices,
        "gateway_chosen": next((g for g in choices if g.pk == chosen), None),
    }
