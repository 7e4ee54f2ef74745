"""Gateways on the overview (an edge): a gateway that is not connected, with its remedy."""

from __future__ import annotations

from django.urls import reverse

from gateways.models import Gateway
from missioncontrol import overview
from missioncontrol.overview import Attention, Viewer


def not_connected(viewer: Viewer) -> list[Attention]:
    found = []
    for gateway in Gateway.objects.filter(enabled=True).exclude(state=Gateway.State.CONNECTED):
        if not viewer.sees(gateway.pk):
            continue
        since = gateway.state_since
        found.append(
            Attention(
                key=overview.occurrence(f"gateway.{gateway.state}", gateway.pk, since),
                kind="Gateway",
                severity=overview.CRITICAL,
                title=f"{gateway.name} is {gateway.get_state_display().lower()}",
                detail=gateway.remedy or gateway.last_error,
                url=reverse("gateways:detail", args=[gateway.pk]),
                since=since,
                gateway=gateway,
                action="Open gateway",
                more_url=reverse("gateways:list"),
                more_label="gateways not connected",
            )
        )
    return found


def register() -> None:
    from gateways.context_processors import chosen_gateway_id

    overview.register_attention("gateways.down", not_connected, topics=("gateways",))
    overview.register_gateway_choice(chosen_gateway_id)
