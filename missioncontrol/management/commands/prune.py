from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from missioncontrol import retention


class Command(BaseCommand):
    help = "Delete event-log and audit rows older than their retention (dry run unless --apply)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--apply", action="store_true", help="Really delete.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["apply"]:
            for label, count in retention.expired_counts().items():
                self.stdout.write(
                    f"{label}: {count} rows past retention (dry run; --apply deletes)"
                )
            return
        for label, count in retention.prune().items():
            self.stdout.write(f"{label}: deleted {count} rows")
