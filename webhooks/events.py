"""The webhooks app's domain events (docs/events.md, "Webhooks")."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from missioncontrol.audit import ActorData
from webhooks.models import Endpoint


class EndpointRef(TypedDict):
    id: int
    url: str
    description: str


class EndpointDisabled(TypedDict):
    """An endpoint kept failing and was disabled (docs/webhooks.md)."""

    type: Literal["webhook.endpoint_disabled"]
    endpoint: EndpointRef
    reason: str


class EndpointSaved(TypedDict):
    """An admin added or changed an endpoint (never its secret)."""

    type: Literal["webhook.endpoint_saved"]
    actor: ActorData
    endpoint: dict[str, Any]
    created: bool


class EndpointDeleted(TypedDict):
    type: Literal["webhook.endpoint_deleted"]
    actor: ActorData
    endpoint: dict[str, Any]


class DeliveryData(TypedDict):
    id: int
    endpoint_id: int
    event_type: str
    status: str
    attempts: int


class DeliveriesChanged(TypedDict):
    """Deliveries were queued or attempted (the deliveries pages follow it; never sent to an
    endpoint: a delivery about deliveries would feed itself)."""

    type: Literal["webhook.deliveries_changed"]
    deliveries: list[DeliveryData]


def deliveries_changed(deliveries: list[Any]) -> DeliveriesChanged:
    return {
        "type": "webhook.deliveries_changed",
        "deliveries": [
            {
                "id": d.pk,
                "endpoint_id": d.endpoint_id,
                "event_type": d.event_type,
                "status": d.status,
                "attempts": d.attempts,
            }
            for d in deliveries
        ],
    }


def endpoint_disabled(endpoint: Endpoint, reason: str) -> EndpointDisabled:
    return {
        "type": "webhook.endpoint_disabled",
        "endpoint": {"id": endpoint.pk, "url": endpoint.url, "description": endpoint.description},
        "reason": reason,
    }
