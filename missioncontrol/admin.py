from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from missioncontrol.models import AuditEvent, LiveEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is written by actions only; the admin shows it."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor_label", "actor_type", "verb", "object_type", "object_repr"]
    list_filter = ["actor_type", "verb", "object_type"]
    search_fields = ["actor_label", "object_repr", "object_id"]
    date_hierarchy = "created_at"


@admin.register(LiveEvent)
class LiveEventAdmin(ReadOnlyAdmin):
    list_display = ["seq", "created_at", "type", "topic", "min_role"]
    list_filter = ["topic", "type"]
