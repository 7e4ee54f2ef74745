from __future__ import annotations

from django.contrib import admin

from missioncontrol.admin import ReadOnlyAdmin
from pipelines.models import Approval, Pipeline, PipelineRun


@admin.register(Pipeline)
class PipelineAdmin(ReadOnlyAdmin):
    """Read-only: definitions are edited on the Pipelines pages (each save a new version)."""

    list_display = ("name", "created_at", "next_slot_at", "archived_at")
    search_fields = ("name",)


@admin.register(PipelineRun)
class PipelineRunAdmin(ReadOnlyAdmin):
    """Read-only: runs move on by themselves; operators cancel them on their page."""

    list_display = ("pipeline", "number", "state", "trigger", "requested_label", "created_at")
    list_filter = ("state", "trigger")


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdmin):
    """Read-only: approvals are answered on the Approvals page (first answer wins)."""

    list_display = ("step", "outcome", "answered_label", "requested_at", "answered_at")
    list_filter = ("outcome",)
