"""`manage.py reprice [--since DATE] [--model M | --pattern P] [--for-real]`: cost stored usage
again with the current price table and overrides; a dry run unless --for-real."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from tqdm import tqdm

from billing import actions, prices
from billing.management.days import utc_day
from billing.models import UsageRecord
from missioncontrol.audit import Actor


class Command(BaseCommand):
    help = (
        "Recompute the cost of stored usage with the current price table and your prices; "
        "reports the changed totals. A dry run unless --for-real."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--since", help="Records from this day on (YYYY-MM-DD, UTC).")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--model", default="", help="Only this model's records.")
        which.add_argument("--pattern", default="", help="Only models matching (e.g. 'llama-*').")
        parser.add_argument("--for-real", action="store_true", help="Write the new costs.")

    def handle(self, *args: Any, **opts: Any) -> None:
        since = utc_day(opts["since"])
        records = UsageRecord.objects.all()
        if since is not None:
            records = records.filter(occurred_at__gte=since)
        if opts["model"]:
            records = records.filter(model=opts["model"])
        bar = tqdm(total=records.count(), unit="record", desc="repricing", disable=None)
        report = actions.reprice(
            Actor.system("manage.py reprice"),
            since=since,
            model=opts["model"],
            pattern=opts["pattern"],
            for_real=opts["for_real"],
            progress=bar.update,
        )
        bar.close()
        for model, (before, after) in sorted(report.by_model.items()):
            if before != after:
                self.stdout.write(
                    f"  {model}: ${prices.from_nanos(before):,.6f} → ${prices.from_nanos(after):,.6f}"
                )
        verb = "Repriced" if opts["for_real"] else "Would reprice"
        self.stdout.write(
            f"{verb} {report.changed:,} of {report.records:,} records: total "
            f"${prices.from_nanos(report.before_nanos):,.6f} → "
            f"${prices.from_nanos(report.after_nanos):,.6f} "
            f"({report.now_unpriced:,} unpriced)."
        )
        if not opts["for_real"] and report.changed:
            self.stdout.write("Dry run: nothing was written. Run again with --for-real.")
