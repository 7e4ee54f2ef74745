from __future__ import annotations

from django.contrib import admin

from crons.models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Read-only: a gateway's jobs mirror the gateway, health is kept by the monitor. Direct
    checks are made on the Crons page (it shows the check-in URL); the id is never listed here."""

    list_display = ("name", "source", "gateway", "health", "enabled", "last_run_at", "next_run_at")
    list_filter = ("source", "health", "enabled")
    search_fields = ("name", "external_id")
    exclude = ("token",)
    readonly_fields = (
        "source",
        "gateway",
        "external_id",
        "agent",
        "agent_ref",
        "schedule",
        "payload_kind",
        "next_run_at",
        "last_run_at",
        "last_status",
        "last_duration_ms",
        "last_summary",
        "last_error",
        "running_since",
        "consecutive_failures",
        "health",
        "health_since",
        "health_reason",
        "deadline",
        "removed_at",
    )

    # Every write goes through crons.actions (audited, published): the admin only looks.
    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False
