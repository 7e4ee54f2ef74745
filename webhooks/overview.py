"""Webhooks on the overview (an edge, admins only): endpoints failing or disabled for it."""

from __future__ import annotations

from django.db.models import Q
from django.urls import reverse

from missioncontrol import overview
from missioncontrol.overview import Attention, Viewer
from webhooks.models import Endpoint


def failing(viewer: Viewer) -> list[Attention]:
    if viewer.chosen not in (None, 0):
        return []  # not a gateway's: hidden while the switch shows one gateway
    found = []
    for endpoint in Endpoint.objects.filter(
        Q(enabled=True, consecutive_failures__gt=0) | Q(enabled=False, disabled_reason__gt="")
    ):
        since = endpoint.failing_since
        disabled = not endpoint.enabled
        found.append(
            Attention(
                key=overview.occurrence(
                    f"webhook.{'disabled' if disabled else 'failing'}", endpoint.pk, since
                ),
                kind="Webhook",
                severity=overview.DEGRADED,
                title=f"{endpoint} {'was disabled' if disabled else 'is failing'}",
                detail=endpoint.disabled_reason
                or f"{endpoint.consecutive_failures} failed attempts in a row",
                url=reverse("webhooks:detail", args=[endpoint.pk]),
                since=since,
                action="Open endpoint",
                more_url=reverse("webhooks:list"),
                more_label="endpoints in trouble",
            )
        )
    return found


def register() -> None:
    overview.register_attention(
        "webhooks.failing", failing, topics=("alerts",), notify="webhook", min_role="admin"
    )
