from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from agents import actions
from agents.models import Agent, AgentKey
from missioncontrol.admin import ReadOnlyAdmin
from missioncontrol.audit import Actor


@admin.register(Agent)
class AgentAdmin(ReadOnlyAdmin):
    """Read-only: agents register through the API or come from their gateway, and are changed on
    their page (audited, live); an edit here would reach neither the audit log nor the browsers."""

    list_display = ["name", "source", "framework", "role", "status", "last_seen_at"]
    list_filter = ["status", "source", "framework"]
    search_fields = ["name", "role"]


@admin.register(AgentKey)
class AgentKeyAdmin(admin.ModelAdmin):
    """Keys are issued on the API keys page (the full key is shown once there). Here an admin
    may change a key's label and limits, or revoke it, through agents.actions.change_key;
    "delete" revokes (the row stays: the audit log names it)."""

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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: AgentKey, form: Any, change: bool) -> None:
        limits = actions.KeyLimits(
            name=obj.name,
            max_uses=obj.max_uses,
            expires_at=obj.expires_at,
            revoked=obj.revoked_at is not None,
        )
        actions.change_key(Actor.user(request.user), obj.pk, limits)

    def delete_model(self, request: HttpRequest, obj: AgentKey) -> None:
        actions.revoke_key(Actor.user(request.user), obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for pk in list(queryset.values_list("pk", flat=True)):
            actions.revoke_key(Actor.user(request.user), pk)
