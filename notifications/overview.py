"""Notification channels on the overview (an edge, admins only): channels failing, or disabled
for it — the other channels tell of it."""

from __future__ import annotations

from django.db.models import Q
from django.urls import reverse

from missioncontrol import overview
from missioncontrol.overview import Attention, Viewer
from notifications.models import Channel


def failing(viewer: Viewer) -> list[Attention]:
    if viewer.chosen not in (None, 0):
        return []  # not a gateway's: hidden while the switch shows one gateway
    found = []
    rows = Channel.objects.filter(
        Q(enabled=True, consecutive_failures__gt=0) | Q(enabled=False, disabled_reason__gt="")
    ).select_related("owner")[: viewer.limit]
    for channel in rows:
        since = channel.failing_since
        disabled = not channel.enabled
        whose = f"{channel.owner.get_username()}'s " if channel.owner else ""
        found.append(
            Attention(
                key=overview.occurrence(
                    f"channel.{'disabled' if disabled else 'failing'}", channel.pk, since
                ),
                kind="Notifications",
                severity=overview.DEGRADED,
                title=f"{whose}{channel.get_kind_display()} channel “{channel.name}” "
                + ("was disabled" if disabled else "is failing"),
                detail=channel.disabled_reason or channel.last_error,
                url=reverse("notifications:team")
                if channel.owner is None
                else reverse("notifications:mine"),
                since=since,
                action="Open channel",
                more_url=reverse("notifications:team"),
                more_label="channels in trouble",
            )
        )
    return found


def register() -> None:
    overview.register_attention(
        "notifications.failing", failing, topics=("alerts",), notify="webhook", min_role="admin"
    )
