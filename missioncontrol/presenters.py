"""The activity feed's presenter: `audit.recorded` events as list items for browsers.

An item is a function of who did what to which object, and when: it is rendered once per
(actor, verb, object) and kept with marks for its id and times (missioncontrol/fragments.py),
so a busy board's moves render no template for their feed items.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable
from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from missioncontrol import live
from missioncontrol.fragments import FragmentCache, mark
from missioncontrol.models import AuditEvent
from missioncontrol.templatetags.mc import went_to_text

FEED_LENGTH = 30
_items = FragmentCache("activity item cache", 5000)
# A time no item has, to mark where the template shows the time.
_MARKED_TIME = datetime.datetime(2001, 2, 3, 4, 5, 6, 789, tzinfo=datetime.UTC)


# The badge of the gateway a feed line concerns (HTML, "" for none): the gateways app's, from its
# cached list (missioncontrol knows no app).
GatewayBadge = Callable[[int | None], str]
_badge: list[GatewayBadge] = []


def register_gateway_badge(badge: GatewayBadge) -> None:
    _badge[:] = [badge]


def gateway_badge(gateway_id: int | None) -> str:
    return _badge[0](gateway_id) if _badge and gateway_id else ""


def feed_item(entry: dict[str, Any]) -> AuditEvent:
    """An unsaved AuditEvent carrying what a feed item shows."""
    item = _feed_item(entry)
    item.gateway_badge = gateway_badge(entry.get("gateway_id"))  # type: ignore[attr-defined]
    return item


def _feed_item(entry: dict[str, Any]) -> AuditEvent:
    return AuditEvent(
        pk=entry["id"],
        actor_type=entry["actor"]["type"],
        actor_label=entry["actor"]["label"],
        verb=entry["verb"],
        object_type=entry["object"]["type"],
        object_id=entry["object"]["id"],
        object_repr=entry["object"]["repr"],
        changes=entry.get("changes") or {},
        created_at=_when(entry["created_at"]),
    )


def _times(when: datetime.datetime) -> dict[str, str]:
    """The item's time in the template's formats, as its `date` filter writes them (Django's
    "c" is isoformat(); Y-m-d H:i:s are zero-padded fields), without the filter's cost."""
    iso = timezone.localtime(when).isoformat()
    return {"c": iso, "Y-m-d H:i:s": f"{iso[:10]} {iso[11:19]}", "H:i:s": iso[11:19]}


@functools.cache
def _marked_times(zone: str) -> dict[str, str]:
    return _times(_MARKED_TIME)


def _render_item(item: AuditEvent) -> str:
    return render_to_string("missioncontrol/home.html#activity_item", {"event": item})


def item_html(entry: dict[str, Any]) -> str:
    """One feed item's HTML (`missioncontrol/home.html#activity_item`)."""
    zone = timezone.get_current_timezone_name()
    marked_times = _marked_times(zone)
    shown = (entry["actor"]["label"], entry["object"]["repr"])
    if any(text in field for text in marked_times.values() for field in shown):
        return _render_item(feed_item(entry))  # its own text looks like the marked time

    def render() -> str:
        item = feed_item(entry)
        item.pk, item.created_at = mark("id"), _MARKED_TIME
        html = _render_item(item)
        for fmt, text in marked_times.items():
            html = html.replace(text, mark(fmt))
        return html

    key = (
        entry["actor"]["type"],
        entry["actor"]["label"],
        entry["verb"],
        entry["object"]["type"],
        entry["object"]["repr"],
        went_to_text(entry["verb"], entry.get("changes")),  # the line ends with it
        entry.get("gateway_id"),  # and names its gateway
        zone,
    )
    return _items.render(
        key, render, {"id": str(entry["id"]), **_times(_when(entry["created_at"]))}
    )


@live.presents("audit.recorded")
def audit_recorded(event: dict[str, Any]) -> live.BrowserPayload:
    # Only the newest FEED_LENGTH items can still be in a feed after this event.
    entries = event["entries"][-FEED_LENGTH:]
    return {
        "ops": [
            {
                "op": "upsert",
                "id": f"activity-{entry['id']}",
                "parent": "activity-list",
                "first": True,
                "limit": FEED_LENGTH,
                "html": item_html(entry),
            }
            for entry in entries
        ]
    }


def _when(text: str) -> datetime.datetime:
    return parse_datetime(text) or timezone.now()
