"""Make sure an admin exists; idempotent (never duplicates or resets a user)."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from missioncontrol import roles


class Command(BaseCommand):
    help = "Create the first admin from MC_ADMIN_USERNAME/MC_ADMIN_PASSWORD, or with a generated password printed once."

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        username = settings.MC_ADMIN_USERNAME or "admin"
        with transaction.atomic():
            if User.objects.filter(username=username).exists():
                return
            if not settings.MC_ADMIN_USERNAME and User.objects.filter(is_superuser=True).exists():
                return
            password = settings.MC_ADMIN_PASSWORD or secrets.token_urlsafe(18)
            user = User.objects.create_superuser(username=username, email="", password=password)
            roles.set_role(user, "admin")
        if settings.MC_ADMIN_PASSWORD:
            self.stdout.write(
                f"Created admin '{username}' with the password from MC_ADMIN_PASSWORD."
            )
        else:
            bar = "=" * 64
            self.stdout.write(
                f"{bar}\nCreated the first admin. This password is shown only once:\n"
                f"  username: {username}\n  password: {password}\n"
                f"Change it after signing in (user menu → Change password).\n{bar}"
            )
