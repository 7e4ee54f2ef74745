"""The Gateways pages' presenter: gateway events as DOM ops (from the event's data alone)."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string

from gateways.models import Gateway
from missioncontrol import live
from missioncontrol import presenters as mc_presenters
from missioncontrol.cached import Reloaded


def _gateway(data: dict[str, Any]) -> Gateway:
    """An unsaved Gateway carrying what the pages show (never saved)."""
    return Gateway(
        pk=data["id"],
        name=data["name"],
        colour=data["colour"],
        url=data["url"],
        enabled=data["enabled"],
        state=data["state"],
        last_error=data["last_error"],
        remedy=data["remedy"],
        pairing_request_id=data["pairing_request_id"],
        server_version=data["server_version"],
        health=data["health"],
    )


@live.presents("gateway.added", "gateway.updated", "gateway.state_changed")
def gateway_changed(event: dict[str, Any]) -> live.BrowserPayload:
    gateway = _gateway(event["gateway"])
    row: live.Op = {
        "op": "upsert",
        "id": f"gateway-{gateway.pk}",
        "html": render_to_string("gateways/list.html#gateway_row", {"gateway": gateway}),
    }
    if event["type"] == "gateway.added":
        row["parent"] = "gateway-rows"  # new: at the end; known rows are replaced in place
    return {
        "ops": [
            row,
            {
                "op": "upsert",
                "id": f"gateway-state-{gateway.pk}",
                "html": render_to_string("gateways/detail.html#state_panel", {"gateway": gateway}),
            },
        ]
    }


@live.presents("gateway.deleted")
def gateway_deleted(event: dict[str, Any]) -> live.BrowserPayload:
    return {"ops": [{"op": "remove", "id": f"gateway-{event['gateway']['id']}"}]}


def _badges() -> dict[int, str]:
    return {
        g.pk: render_to_string("gateways/_badge.html", {"gateway": g}).strip()
        for g in Gateway.objects.only("pk", "name", "colour")
    }


# Each gateway's badge, rendered once: the activity feed names the gateway of a line with it.
_badge_cache = Reloaded("gateway badges", _badges, ttl_s=5.0)


def badge(gateway_id: int | None) -> str:
    return _badge_cache.get().get(gateway_id or 0, "")


def register() -> None:
    _badge_cache.forget_on_change(Gateway)
    mc_presenters.register_gateway_badge(badge)
