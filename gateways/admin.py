from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from gateways import actions
from gateways.models import Gateway
from missioncontrol.audit import Actor


class GatewayAdminForm(forms.ModelForm):
    # Write-only: the stored token is never put into the page.
    token = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the stored token.",
    )

    class Meta:
        model = Gateway
        fields = ["name", "url", "token", "colour", "enabled"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        stored = self.instance if self.instance.pk else None
        url, token = data.get("url"), data.get("token")
        asks = stored is not None and stored.token and url and not token
        if asks and actions.moves_away(stored, url):  # type: ignore[arg-type]
            self.add_error("token", actions.TOKEN_AGAIN)
        return data


@admin.register(Gateway)
class GatewayAdmin(admin.ModelAdmin):
    """Seeding gateways from Django admin goes through the same actions as the pages."""

    form = GatewayAdminForm
    list_display = ["name", "url", "state", "enabled", "server_version"]
    readonly_fields = ["state", "last_error", "remedy", "server_version", "connected_at"]

    def save_model(self, request: HttpRequest, obj: Gateway, form: Any, change: bool) -> None:
        data = form.cleaned_data
        actor = Actor.user(request.user)
        if change:
            changes: actions.GatewayChanges = {
                "name": data["name"],
                "url": data["url"],
                "colour": data["colour"],
                "enabled": data["enabled"],
            }
            if data.get("token"):
                changes["token"] = data["token"]
            saved = actions.update_gateway(actor, obj.pk, changes)
        else:
            saved = actions.create_gateway(
                actor,
                name=data["name"],
                url=data["url"],
                token=data.get("token") or "",
                colour=data["colour"],
                enabled=data["enabled"],
            )
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Gateway) -> None:
        actions.delete_gateway(Actor.user(request.user), obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        """ "Delete selected": each through the action, as one by one."""
        for pk in list(queryset.values_list("pk", flat=True)):
            actions.delete_gateway(Actor.user(request.user), pk)
