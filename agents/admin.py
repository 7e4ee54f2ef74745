from __future__ import annotations

from django.contrib import admin

from agents.models import Agent


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["name", "framework", "role", "status", "last_seen_at"]
    list_filter = ["status", "framework"]
    search_fields = ["name", "role"]
