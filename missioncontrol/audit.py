"""The one helper every action calls to record who changed what."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from django.db import connection, models
from django.utils import timezone

from missioncontrol import live
from missioncontrol.db import bulk
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
    gateway_id: int | None = None,
    feed: bool = True,
) -> AuditEvent:
    """Write one audit row; call inside the action's transaction. `gateway_id`: the change
    concerns that gateway's data (its feed entry reaches only those who may see the gateway).
    `feed=False`: kept in the audit log only, not shown in the activity feed (a read: who
    looked at what, e.g. an MCP client's read tools)."""
    entry = Entry(actor, verb, obj, before, after, object_type, object_id, object_repr)
    return record_many([entry], gateway_id=gateway_id, feed=feed)[0]


def record_many(
    entries: list[Entry], *, gateway_id: int | None = None, feed: bool = True
) -> list[AuditEvent]:
    """Write audit rows in one statement (inside the action's transaction) and show them all in
    the activity feed with one live event (unless `feed` is False)."""
    events = [entry.build() for entry in entries]
    for event in events:
        event.gateway_id = gateway_id
    _insert(events)
    if feed:
        _publish_activity(events, gateway_id)
    return events


_COLUMNS = (
    "created_at",
    "actor_type",
    "actor_user_id",
    "actor_label",
    "verb",
    "object_type",
    "object_id",
    "object_repr",
    "changes",
    "gateway_id",
)
_CHANGES = AuditEvent._meta.get_field("changes")


def _insert(events: list[AuditEvent]) -> None:
    """One multi-row INSERT … RETURNING id (SQLite >= 3.35, PostgreSQL): the ORM's bulk_create
    compile step was most of the audit cost on the board's move path."""
    now = timezone.now()
    ops = connection.ops
    rows = []
    for event in events:
        event.created_at = now
        rows.append(
            (
                ops.adapt_datetimefield_value(now),
                event.actor_type,
                event.actor_user_id,
                event.actor_label,
                event.verb,
                event.object_type,
                event.object_id,
                event.object_repr,
                _CHANGES.get_db_prep_save(event.changes, connection),
                event.gateway_id,
            )
        )
    table = AuditEvent._meta.db_table
    with connection.cursor() as cursor:
        done = 0
        for values, params in bulk.values_chunks(rows, len(_COLUMNS)):
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(_COLUMNS)}) VALUES {values} RETURNING id",  # noqa: S608 - fixed names, placeholders only
                params,
            )
            # Ids are handed out in VALUES order (SQLite: the next rowid; PostgreSQL: nextval per
            # row as inserted), whatever order RETURNING emits them in.
            ids = sorted(row[0] for row in cursor.fetchall())
            for event, pk in zip(events[done : done + len(ids)], ids, strict=True):
                event.pk = pk
                event._state.adding = False
            done += len(ids)


class AuditEntryData(TypedDict):
    id: int
    actor: ActorData
    verb: str
    object: dict[str, str]
    changes: dict[str, Any]
    created_at: str
    gateway_id: int | None  # the gateway whose data it concerns (its feed line names it)


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
        "gateway_id": event.gateway_id,
    }


def _publish_activity(events: list[AuditEvent], gateway_id: int | None = None) -> None:
    """Every audited change appears live in the Overview's activity feed."""
    recorded: AuditRecorded = {
        "type": "audit.recorded",
        "entries": [entry_data(event) for event in events],
    }
    live.publish("activity", recorded, gateway_id=gateway_id)
