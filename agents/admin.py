from __future__ import annotations

from django.contrib import admin

from agents.models import Agent, AgentKey
from missioncontrol.admin import ReadOnlyAdmin


@admin.register(Agent)
class AgentAdmin(ReadOnlyAdmin):
    """Read-only: agents register through the API or come from their gateway, and are changed on
    their page (audited, live); an edit here would reach neither the audit log nor the browsers."""

    list_display = ["name", "source", "framework", "role", "status", "last_seen_at"]
    list_filter = ["status", "source", "framework"]
    search_fields = ["name", "role"]


@admin.register(AgentKey)
class AgentKeyAdmin(ReadOnlyAdmin):
    """Read-only: keys are issued and revoked on the API keys page (the full key is shown once
    there; a revocation is audited and closes the key's streams)."""

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
