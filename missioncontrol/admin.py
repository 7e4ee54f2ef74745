from __future__ import annotations

import contextlib
from typing import Any

from django.contrib import admin
from django.contrib.admin.exceptions import NotRegistered
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import FieldDoesNotExist
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest
from django_otp.plugins.otp_totp.models import TOTPDevice

from missioncontrol import audit, two_factor
from missioncontrol.models import AuditEvent, ExternalIdentity, LiveEvent
from missioncontrol.roles import role_of

# Fields that hold a secret or a secret's hash: never filtered on in a changelist, where
# `?key__startswith=a` answers yes or no and so reads a secret a character at a time (a TOTP
# key in 396 requests; issue #30 §5). Sealed fields are secret whatever their name.
SECRET_FIELDS = frozenset(
    {"key", "password", "secret", "previous_secret", "secret_hash", "token", "device_token"}
)


def _touches_secret(model: Any, lookup: str) -> bool:
    """Whether a changelist lookup (`user__password__startswith`) reads a secret field of the
    model or of one it reaches through relations."""
    from missioncontrol.secretbox import SealedField

    for part in lookup.split(LOOKUP_SEP):
        try:
            field = model._meta.get_field(part)
        except FieldDoesNotExist:
            return False  # a transform or lookup name (`startswith`): the path has ended
        if part in SECRET_FIELDS or isinstance(field, SealedField):
            return True
        model = field.related_model
        if model is None:
            return False
    return False


_lookup_allowed = admin.ModelAdmin.lookup_allowed


def _lookup_allowed_but_secrets(
    self: admin.ModelAdmin, lookup: str, value: str, request: HttpRequest
) -> bool:
    if _touches_secret(self.model, lookup):
        return False  # the admin answers 400 (DisallowedModelAdminLookup)
    return _lookup_allowed(self, lookup, value, request)


# On every ModelAdmin, ours and Django's (users' password hashes) and the packages' alike.
admin.ModelAdmin.lookup_allowed = _lookup_allowed_but_secrets  # type: ignore[method-assign, assignment]


class ReadOnlyAdmin(admin.ModelAdmin):
    """The admin shows; the actions write (audited, published, with what they derive kept right).
    A model whose admin is read-only says why and where it is changed instead."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """History: written by actions, pruned by retention; never edited or deleted by hand."""

    list_display = ["created_at", "actor_label", "actor_type", "verb", "object_type", "object_repr"]
    list_filter = ["actor_type", "verb", "object_type"]
    search_fields = ["actor_label", "object_repr", "object_id"]
    date_hierarchy = "created_at"


@admin.register(LiveEvent)
class LiveEventAdmin(ReadOnlyAdmin):
    """The event log tabs replay from: a row deleted by hand would be a gap nobody repairs."""

    list_display = ["seq", "created_at", "type", "topic", "min_role"]
    list_filter = ["topic", "type"]


# Two-factor devices: who has one and whether it is confirmed; never the secret key (django-otp's
# own admin shows and edits it). Deleting one is how an admin lets a person who lost their phone
# sign in with the password alone (audited by `manage.py reset_two_factor` too).
if admin.site.is_registered(TOTPDevice):
    admin.site.unregister(TOTPDevice)


@admin.register(TOTPDevice)
class TOTPDeviceAdmin(admin.ModelAdmin):
    """Shown without the key; deleting one is the audited reset (missioncontrol.two_factor)."""

    list_display = ["user", "name", "confirmed", "last_used_at", "created_at"]
    list_filter = ["confirmed"]
    search_fields = ["user__username"]
    fields = ("user", "name", "confirmed", "last_used_at", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: TOTPDevice) -> None:
        two_factor.reset(obj.user, audit.Actor.user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for device in queryset.select_related("user"):
            self.delete_model(request, device)


@admin.register(ExternalIdentity)
class ExternalIdentityAdmin(ReadOnlyAdmin):
    """Made and kept by single sign-on; a person is removed on the Users page."""

    list_display = ["user", "issuer", "subject", "created_at", "last_signed_in_at"]
    search_fields = ["user__username", "subject"]


# The users list shows each person's role (the People page, /settings/people/, is where a team
# lead manages them; the Django admin stays for everything else).
User = get_user_model()
with contextlib.suppress(NotRegistered):
    admin.site.unregister(User)


@admin.register(User)
class PersonAdmin(UserAdmin):
    list_display = ["username", "email", "role", "is_active", "last_login"]

    @admin.display(description="Role")
    def role(self, obj: Any) -> str:
        return role_of(obj) or "—"
