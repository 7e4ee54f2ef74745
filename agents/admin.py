from __future__ import annotations

from typing import Any

from django.contrib import admin

from agents.models import Agent, AgentKey


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["name", "source", "framework", "role", "status", "last_seen_at"]
    list_filter = ["status", "source", "framework"]
    search_fields = ["name", "role"]


@admin.register(AgentKey)
class AgentKeyAdmin(admin.ModelAdmin):
    """Keys are issued and revoked on the API keys page (the full key is shown once there)."""

    list_display = ["prefix", "kind", "agent", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["kind"]
    # The secret's hash is key material: never shown (only the prefix identifies a key).
    exclude = ["secret_hash"]
    readonly_fields = [
        "prefix",
        "kind",
        "agent",
        "uses",
        "last_used_at",
        "created_by",
        "created_at",
    ]

    def has_add_permission(self, request: Any) -> bool:
        return False
