from __future__ import annotations

from django.contrib import admin

from missioncontrol.admin import ReadOnlyAdmin
from webhooks.models import Delivery, Endpoint


@admin.register(Endpoint)
class EndpointAdmin(ReadOnlyAdmin):
    """Read-only: endpoints are added, changed, tested and removed on the Webhooks page (audited;
    the secret is sealed and shown there on demand)."""

    list_display = ("url", "description", "enabled", "consecutive_failures", "last_success_at")
    # The secrets never show here (sealed at rest; the Webhooks page shows them on demand).
    exclude = ("secret", "previous_secret")
    readonly_fields = (
        "consecutive_failures",
        "failing_since",
        "last_success_at",
        "disabled_reason",
    )


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    """Read-only: the outbox's history; a delivery is sent again with Redeliver on its page."""

    list_display = ("pk", "event_type", "endpoint", "status", "attempts", "created_at")
    list_filter = ("status", "event_type")
    readonly_fields = ("endpoint", "event_seq", "event_type", "payload", "attempts", "created_at")
