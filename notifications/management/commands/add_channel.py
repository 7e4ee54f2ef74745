"""`manage.py add_channel KIND URL [--name NAME] [--kinds k1,k2]`: a team notification channel,
checked as the page checks it (the URL through the SSRF guard, e-mail addresses parsed)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from missioncontrol.audit import Actor
from missioncontrol.overview import NOTIFY_KINDS
from notifications import actions
from notifications.forms import ChannelForm
from notifications.models import Channel


class Command(BaseCommand):
    help = (
        "Add a team notification channel: KIND is one of "
        f"{', '.join(Channel.Kind.values)}; URL its incoming-webhook URL, ntfy topic URL, or "
        "e-mail addresses (comma-separated)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("kind", choices=Channel.Kind.values)
        parser.add_argument("url", help="Where it goes (a URL, or e-mail addresses).")
        parser.add_argument("--name", default="", help="What it is called (default: the kind).")
        parser.add_argument(
            "--kinds",
            default="",
            help=f"What it is told of, comma-separated (default: all): {', '.join(NOTIFY_KINDS)}.",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        kinds = [k.strip() for k in opts["kinds"].split(",") if k.strip()]
        unknown = [k for k in kinds if k not in NOTIFY_KINDS]
        if unknown:
            raise CommandError(
                f"Unknown kinds: {', '.join(unknown)} (choose from {', '.join(NOTIFY_KINDS)})."
            )
        name = opts["name"] or f"{Channel.Kind(opts['kind']).label} (team)"
        form = ChannelForm({"kind": opts["kind"], "name": name, "target": opts["url"]})
        if not form.is_valid():
            problems = [
                f"{field}: {' '.join(map(str, errors))}" for field, errors in form.errors.items()
            ]
            raise CommandError("; ".join(problems))
        actor = Actor.system("manage.py add_channel")
        try:
            channel = actions.save_channel(actor, form.to_input())
            # What it is told of: the kinds named, else every one.
            rule = replace(actions.default_rule("UTC"), kinds=tuple(kinds or NOTIFY_KINDS))
            actions.save_rule(actor, rule, channel_id=channel.pk)
        except actions.Invalid as invalid:
            raise CommandError(str(invalid.errors)) from None
        self.stdout.write(
            f"Added {channel.get_kind_display()} channel “{channel.name}” (#{channel.pk})."
        )
