from __future__ import annotations

from django.contrib import admin

from billing.models import UsageRecord
from missioncontrol.admin import ReadOnlyAdmin


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    """Read-only: rollups and budget spend are derived from these rows as they are recorded; a
    record changed or deleted by hand would leave them wrong. Prices change on the Prices page
    (with a reprice), records go by retention."""

    list_display = ["occurred_at", "agent", "model", "input_tokens", "output_tokens", "cost_usd"]
    list_filter = ["model"]
    date_hierarchy = "occurred_at"
