"""`manage.py create_api_token USERNAME [--expires DAYS] [--name NAME]`: a person's API token,
printed once on its own line (the operator API acts as that person: missioncontrol/tokens.py)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from missioncontrol import tokens
from missioncontrol.audit import Actor
from missioncontrol.errors import ActionError


class Command(BaseCommand):
    help = "Make a person's API token; prints it once (stdout: the token alone)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--expires", type=int, default=None, metavar="DAYS")
        parser.add_argument("--name", default="")

    def handle(self, *args: Any, **opts: Any) -> None:
        user = get_user_model().objects.filter(username=opts["username"], is_active=True).first()
        if user is None:
            raise CommandError(f"No active person called {opts['username']!r}.")
        try:
            _token, full = tokens.issue(
                Actor.system("manage.py create_api_token"),
                user,
                name=opts["name"],
                days=opts["expires"],
            )
        except ActionError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(full)
        self.stderr.write(
            "Shown once: store it now. It acts as "
            f"{user.get_username()} on the API: Authorization: Bearer <token>."
        )
