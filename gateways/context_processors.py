"""The shell's gateway switch: which gateways the user may pick, and which one is on."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from gateways import access
from gateways.models import Gateway, GatewayView
from missioncontrol.roles import role_of

SESSION_KEY = "mc_gateway_view"


def chosen_gateway_id(request: HttpRequest) -> int | None:
    """The gateway the user's switch is on (None: all gateways). Kept per user in the database
    and copied into the session, so pages read it without a query."""
    if hasattr(request, "_mc_gateway_view"):
        cached: int | None = request._mc_gateway_view
        return cached
    chosen: int | None = None
    user = request.user
    if role_of(user) is not None and user.pk is not None:
        session = getattr(request, "session", None)
        if session is not None and SESSION_KEY in session:
            chosen = session[SESSION_KEY]
        else:
            chosen = (
                GatewayView.objects.filter(user_id=user.pk)
                .values_list("gateway_id", flat=True)
                .first()
            )
            if session is not None:
                session[SESSION_KEY] = chosen
        if chosen is not None and not access.can_view(user, chosen):
            chosen = None  # a grant withdrawn since
    request._mc_gateway_view = chosen  # type: ignore[attr-defined]
    return chosen


def remember(request: HttpRequest, gateway_id: int | None) -> None:
    """After the switch changed: this session sees the new choice at once."""
    request.session[SESSION_KEY] = gateway_id
    request._mc_gateway_view = gateway_id  # type: ignore[attr-defined]


def gateway_switch(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or role_of(user) is None:
        return {}  # signed out, no role, or not a person (an agent key reading the API docs)
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
