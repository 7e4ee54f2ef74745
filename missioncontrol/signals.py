"""Sign-in and sign-out go into the audit trail (failed attempts are django-axes' records)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.db import transaction
from django.dispatch import receiver

from missioncontrol import audit


@receiver(user_logged_in, dispatch_uid="mc-audit-login")
def audit_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    # The client's address (the proxy's X-Forwarded-For only from MC_TRUSTED_PROXIES): who
    # signed in from where, for the audit log.
    address = (getattr(request, "META", None) or {}).get("REMOTE_ADDR", "")
    with transaction.atomic():
        audit.record(
            audit.Actor.user(user),
            "signed_in",
            user,
            object_repr=user.get_username(),
            after={"address": address} if address else None,
        )


@receiver(user_logged_out, dispatch_uid="mc-audit-logout")
def audit_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is None:
        return
    with transaction.atomic():
        audit.record(audit.Actor.user(user), "signed_out", user, object_repr=user.get_username())
