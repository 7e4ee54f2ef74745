"""`manage.py copy_data --from sqlite:///old.sqlite3`: move an installation to another database.

Copies every row of another Mission Control database (any URL `DATABASE_URL` accepts; usually
the SQLite file of a one-machine installation) into this one (usually a new PostgreSQL
database): users, roles and grants, agents and their keys (still valid: their hashes move
with them), tasks, comments, usage, the audit trail and the event log. The target must be
migrated and hold no data of its own yet. Rows are streamed model by model through Django's
serializers with natural keys (content types and permissions are matched by name, not id),
in one transaction: a failure leaves the target as it was. Sequences are reset afterwards, so
new rows continue after the copied ids.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import serializers
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections, models, transaction
from tqdm import tqdm

from missioncontrol.config import database_config

SOURCE = "copy_source"
# Made by migrations on both sides (matched by natural key when referenced), or per process.
SKIP = {"contenttypes.contenttype", "auth.permission", "sessions.session"}
BY_NAME = {"auth.group"}
# Rows that make the target "already in use".
IN_USE = ("auth.user", "agents.agent", "tasks.task")


def copied_models() -> list[type[models.Model]]:
    """Every concrete model with rows to copy, parents before the rows pointing at them."""
    app_list = dict.fromkeys(apps.get_app_configs())
    ordered = serializers.sort_dependencies(app_list.items(), allow_cycles=True)
    return [
        model
        for model in ordered
        if model._meta.label_lower not in SKIP
        and not model._meta.proxy
        and model._meta.managed
        and not model._meta.auto_created
    ]


class Command(BaseCommand):
    help = (
        "Copy every row of another Mission Control database (e.g. the SQLite file) into this one."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--from", dest="source", required=True, help="sqlite:///path or postgres://…"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        source = database_config(options["source"])
        if source["ENGINE"] == "missioncontrol.db.sqlite" and not Path(source["NAME"]).is_file():
            raise CommandError(f"No database file at {source['NAME']}.")
        target = connections["default"]
        same = ("ENGINE", "NAME", "HOST", "PORT")
        if all(source.get(k) == target.settings_dict.get(k) for k in same):
            raise CommandError("The source is this database.")
        settings.DATABASES[SOURCE] = {**target.settings_dict, **source}
        connections.settings = connections.configure_settings(settings.DATABASES)
        try:
            self._check(connections[SOURCE])
            used = [label for label in IN_USE if apps.get_model(label).objects.exists()]
            if used:
                raise CommandError(
                    f"This database already holds data ({', '.join(used)}): copy into a new, "
                    "migrated database."
                )
            total = self._copy()
        finally:
            connections[SOURCE].close()
            del connections[SOURCE]
            del settings.DATABASES[SOURCE]
        self.stdout.write(f"Copied {total:,} rows into {target.settings_dict['NAME']}.")

    def _check(self, source: Any) -> None:
        from django.db.migrations.recorder import MigrationRecorder

        try:
            applied = set(MigrationRecorder(source).applied_migrations())
        except Exception as exc:
            raise CommandError(f"Cannot read the source database: {exc}") from None
        mine = set(MigrationRecorder(connections["default"]).applied_migrations())
        if applied - mine:
            names = ", ".join(f"{a}.{n}" for a, n in sorted(applied - mine)[:5])
            raise CommandError(f"Migrate this database first (the source has {names}).")
        if mine - applied:
            raise CommandError("Migrate the source first (`manage.py migrate` on its URL).")

    def _copy(self) -> int:
        total = 0
        with tempfile.TemporaryDirectory() as tmp, transaction.atomic():
            for model in tqdm(copied_models(), desc="copying", unit="model", disable=None):
                rows = model._base_manager.using(SOURCE).order_by("pk")
                count = rows.count()
                if not count:
                    continue
                path = Path(tmp) / f"{model._meta.label_lower}.jsonl"
                with path.open("w") as out:
                    serializers.serialize(
                        "jsonl",
                        rows.iterator(chunk_size=2000),
                        stream=out,
                        use_natural_foreign_keys=True,
                        # Groups by name (migrations made the role groups on both sides);
                        # everything else keeps its id, which events and links refer to.
                        use_natural_primary_keys=model._meta.label_lower in BY_NAME,
                    )
                # loaddata matches natural keys (content types, permissions, the role groups
                # migrations made) and resets sequences afterwards.
                call_command("loaddata", str(path), verbosity=0)
                total += count
        return total
