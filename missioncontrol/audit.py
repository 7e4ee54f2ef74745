"""The one helper every action calls to record who changed what."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from django.db import models

from missioncontrol import live
from missioncontrol.models import AuditEvent


class ActorData(TypedDict):
    """Who acted, as events carry it."""

    type: str
    label: str
    user_id: int | None


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

    def as_dict(self) -> ActorData:
        return {"type": self.type, "label": self.label, "user_id": self.user_id}


@dataclass
class Entry:
    """One audit row to write (see record)."""

    actor: Actor
    verb: str
    obj: models.Model | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    object_type: str = ""
    object_id: str = ""
    object_repr: str = ""

    def build(self) -> AuditEvent:
        object_type, object_id, object_repr = self.object_type, self.object_id, self.object_repr
        if self.obj is not None:
            object_type = object_type or self.obj._meta.label_lower
            object_id = object_id or str(self.obj.pk)
            object_repr = object_repr or str(self.obj)[:200]
        changes: dict[str, Any] = {}
        if self.before is not None:
            changes["before"] = self.before
        if self.after is not None:
            changes["after"] = self.after
        return AuditEvent(
            actor_type=self.actor.type,
            actor_user_id=self.actor.user_id,
            actor_label=self.actor.label[:150],
            verb=self.verb,
            object_type=object_type,
            object_id=object_id,
            object_repr=object_repr,
            changes=changes,
        )


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
    entry = Entry(actor, verb, obj, before, after, object_type, object_id, object_repr)
    return record_many([entry])[0]


def record_many(entries: list[Entry]) -> list[AuditEvent]:
    """Write audit rows in one statement (inside the action's transaction) and show them all in
    the activity feed with one live event."""
    events = [entry.build() for entry in entries]
    if len(events) == 1:
        events[0].save()
    else:
        # SQLite >= 3.35 and PostgreSQL return the new primary keys.
        AuditEvent.objects.bulk_create(events)
    _publish_activity(events)
    return events


class AuditEntryData(TypedDict):
    id: int
    actor: ActorData
    verb: str
    object: dict[str, str]
    changes: dict[str, Any]
    created_at: str


class AuditRecorded(TypedDict):
    """Audit rows were written (the activity feed's source): every audited change."""

    type: Literal["audit.recorded"]
    entries: list[AuditEntryData]


def entry_data(event: AuditEvent) -> AuditEntryData:
    return {
        "id": event.pk,
        "actor": {
            "type": event.actor_type,
            "label": event.actor_label,
            "user_id": event.actor_user_id,
        },
        "verb": event.verb,
        "object": {"type": event.object_type, "id": event.object_id, "repr": event.object_repr},
        "changes": event.changes,
        "created_at": event.created_at.isoformat(),
    }


def _publish_activity(events: list[AuditEvent]) -> None:
    """Every audited change appears live in the Overview's activity feed."""
    recorded: AuditRecorded = {
        "type": "audit.recorded",
        "entries": [entry_data(event) for event in events],
    }
    live.publish("activity", recorded)
