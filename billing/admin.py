from __future__ import annotations

from typing import Any

from django.contrib import admin

from billing.models import UsageRecord


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = ["occurred_at", "agent", "model", "input_tokens", "output_tokens", "cost_usd"]
    list_filter = ["model"]
    date_hierarchy = "occurred_at"

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False
