"""`manage.py backfill_usage --gateway NAME [--since DATE]`: read every session's transcript on a
gateway and store the usage not stored yet. Each message counts once (keyed by its id), so
running it again, or beside the running connector, adds nothing twice."""

from __future__ import annotations

import asyncio
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from billing.management.days import utc_day
from gateways import history, protocol
from gateways.models import Gateway
from missioncontrol.audit import Actor


class Command(BaseCommand):
    help = (
        "Pull a gateway's historical token usage from its session transcripts (chat.history), "
        "without double counting."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--gateway", required=True, help="The gateway's name.")
        parser.add_argument(
            "--since", help="Only usage from this day on (YYYY-MM-DD, UTC); default: all of it."
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        since = utc_day(opts["since"])
        gateway = Gateway.objects.filter(name=opts["gateway"]).first()
        if gateway is None:
            names = ", ".join(Gateway.objects.values_list("name", flat=True)) or "none yet"
            raise CommandError(f"No gateway named {opts['gateway']!r} (gateways: {names}).")
        bar = tqdm(unit="session", desc=f"backfilling {gateway.name}", disable=None)

        def sessions(n: int) -> None:
            bar.total = n
            bar.refresh()

        try:
            report = asyncio.run(
                history.backfill_gateway(
                    gateway,
                    since,
                    actor=Actor.system("manage.py backfill_usage"),
                    on_sessions=sessions,
                    on_session=lambda: bar.update(1),
                )
            )
        except protocol.Refused as refused:
            raise CommandError(
                f"Could not connect to {gateway.name} ({refused.state}): {refused.detail}\n"
                f"{refused.remedy}"
            ) from None
        finally:
            bar.close()
        failed = f"; {report.failed} refused their history" if report.failed else ""
        self.stdout.write(
            f"Read {report.messages:,} messages in {report.sessions:,} sessions of "
            f"{gateway.name}: stored {report.stored:,} new usage records{failed}."
        )
