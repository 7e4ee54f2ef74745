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


def endpoint_disabled(endpoint: Endpoint, reason: str) -> EndpointDisabled:
    return {
        "type": "webhook.endpoint_disabled",
        "endpoint": {"id": endpoint.pk, "url": endpoint.url, "description": endpoint.description},
        "reason": reason,
    }
