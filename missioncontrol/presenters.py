"""The activity feed's presenter: `audit.recorded` events as list items for browsers."""

from __future__ import annotations

import datetime
from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from missioncontrol import live
from missioncontrol.models import AuditEvent

FEED_LENGTH = 30


def feed_item(entry: dict[str, Any]) -> AuditEvent:
    """An unsaved AuditEvent carrying what a feed item shows."""
    return AuditEvent(
        pk=entry["id"],
        actor_type=entry["actor"]["type"],
        actor_label=entry["actor"]["label"],
        verb=entry["verb"],
        object_type=entry["object"]["type"],
        object_id=entry["object"]["id"],
        object_repr=entry["object"]["repr"],
        created_at=_when(entry["created_at"]),
    )


@live.presents("audit.recorded")
def audit_recorded(event: dict[str, Any]) -> live.BrowserPayload:
    return {
        "ops": [
            {
                "op": "upsert",
                "id": f"activity-{entry['id']}",
                "parent": "activity-list",
                "first": True,
                "limit": FEED_LENGTH,
                "html": render_to_string(
                    "missioncontrol/home.html#activity_item", {"event": feed_item(entry)}
                ),
            }
            for entry in event["entries"]
        ]
    }


def _when(text: str) -> datetime.datetime:
    return parse_datetime(text) or timezone.now()
