"""Turn a person's two-factor sign-in off (a lost phone): they sign in with the password alone
and can set it up again. Audited."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from missioncontrol import audit, two_factor


class Command(BaseCommand):
    help = "Turn two-factor sign-in off for USERNAME (their authenticator app was lost)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user named {options['username']!r}.")
        count = two_factor.reset(user, audit.Actor.system("manage.py reset_two_factor"))
        if count:
            self.stdout.write(f"Two-factor sign-in is off for {user.get_username()}.")
        else:
            self.stdout.write(f"{user.get_username()} had no two-factor sign-in; nothing changed.")
