"""The one helper every action calls to record who changed what."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import models
from django.template.loader import render_to_string

from missioncontrol.models import AuditEvent


@dataclass(frozen=True)
class Actor:
    """Who acts: a user, an agent, a gateway or the system itself."""

    type: str
    label: str
    user_id: int | None = None

    @classmethod
    def user(cls, user: Any) -> Actor:
        return cls(AuditEvent.ActorType.USER, user.get_username(), user.pk)

    @classmethod
    def agent(cls, name: str) -> Actor:
        return cls(AuditEvent.ActorType.AGENT, name)

    @classmethod
    def gateway(cls, name: str) -> Actor:
        return cls(AuditEvent.ActorType.GATEWAY, name)

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(AuditEvent.ActorType.SYSTEM, label)

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "label": self.label}


def record(
    actor: Actor,
    verb: str,
    obj: models.Model | None = None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
) -> AuditEvent:
    """Write one audit row; call inside the action's transaction."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
        object_repr = object_repr or str(obj)[:200]
    changes: dict[str, Any] = {}
    if before is not None:
        changes["before"] = before
    if after is not None:
        changes["after"] = after
    event = AuditEvent.objects.create(
        actor_type=actor.type,
        actor_user_id=actor.user_id,
        actor_label=actor.label[:150],
        verb=verb,
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr,
        changes=changes,
    )
    _publish_activity(event)
    return event


def _publish_activity(event: AuditEvent) -> None:
    """Every audited change appears live in the Overview's activity feed."""
    from missioncontrol import live

    html = render_to_string("missioncontrol/home.html#activity_item", {"event": event})
    live.publish(
        "activity.new",
        "activity",
        {
            "ops": [
                {
                    "op": "upsert",
                    "id": f"activity-{event.pk}",
                    "parent": "activity-list",
                    "first": True,
                    "limit": 30,
                    "html": html,
                }
            ]
        },
    )
