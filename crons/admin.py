from __future__ import annotations

from django.contrib import admin

from crons.models import Job
from missioncontrol.admin import ReadOnlyAdmin


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
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
