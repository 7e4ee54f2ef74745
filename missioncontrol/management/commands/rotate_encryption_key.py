"""Seal every stored secret again under a new encryption key, in one transaction.

With the key file (the default: `$MC_DATA_DIR/encryption_key`): a new key is made and put
first in the file beside the old one, every secret is sealed again under it in one
transaction, then the old key leaves the file. A crash at any step leaves keys that open
everything.

With `MC_ENCRYPTION_KEYS`: put a new key first (`rotate_encryption_key --new-key` prints one),
keep the old one after it, restart, run this; then drop the old key from the variable.

`--dry-run`: say what would be sealed again, change nothing.
"""

from __future__ import annotations

from typing import Any

from cryptography.fernet import InvalidToken
from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from tqdm import tqdm

from missioncontrol import audit, secretbox
from missioncontrol.secretbox import SealedField


def sealed_columns() -> list[tuple[Any, list[str]]]:
    """(model, [sealed field names]) for every model with a SealedField."""
    found = []
    for model in apps.get_models():
        names = [f.attname for f in model._meta.concrete_fields if isinstance(f, SealedField)]
        if names:
            found.append((model, names))
    return found


def reseal_all(*, dry_run: bool = False, progress: bool = False) -> dict[str, int]:
    """Every sealed value sealed again under the first key, in one transaction: {label: n}.
    Raises CommandError (and changes nothing) if any value is one no key in force opens."""
    counts: dict[str, int] = {}
    with transaction.atomic():
        for model, names in sealed_columns():
            label = model._meta.label
            done = 0
            for pk, *stored in tqdm(_raw_rows(model, names), desc=label, disable=not progress):
                changes = {}
                for name, sealed in zip(names, stored, strict=True):
                    if not sealed:
                        continue
                    try:
                        changes[name] = secretbox.reseal(sealed)
                    except InvalidToken:
                        raise CommandError(
                            f"{label} {pk}: its {name} is sealed with a key not in force; "
                            "nothing was changed. Put that key back (after the new one) first."
                        ) from None
                if changes:
                    done += 1
                    if not dry_run:
                        _write_raw(model, pk, changes)
            counts[label] = done
        if dry_run:
            transaction.set_rollback(True)
        else:
            audit.record(
                audit.Actor.system("rotate_encryption_key"),
                "secrets.resealed",
                object_type="secrets",
                object_repr="stored secrets",
                after={"rows": sum(counts.values())},
            )
    return counts


def _raw_rows(model: Any, names: list[str]) -> list[tuple[Any, ...]]:
    """The sealed text as stored (the field would open it on the way out)."""
    from django.db import connection

    quote = connection.ops.quote_name
    columns = ", ".join(quote(model._meta.get_field(name).column) for name in names)
    table, key = quote(model._meta.db_table), quote(model._meta.pk.column)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {key}, {columns} FROM {table} ORDER BY {key}")  # noqa: S608 - quoted names
        return list(cursor.fetchall())


def _write_raw(model: Any, pk: Any, changes: dict[str, str]) -> None:
    from django.db import connection

    table = connection.ops.quote_name(model._meta.db_table)
    key = connection.ops.quote_name(model._meta.pk.column)
    sets = ", ".join(
        f"{connection.ops.quote_name(model._meta.get_field(name).column)} = %s" for name in changes
    )
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {sets} WHERE {key} = %s", [*changes.values(), pk])  # noqa: S608 - quoted names


class Command(BaseCommand):
    help = "Seal every stored secret (gateway tokens, device keys, webhook secrets) again under a new key."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dry-run", action="store_true", help="say what would change")
        parser.add_argument(
            "--new-key", action="store_true", help="print a new key for MC_ENCRYPTION_KEYS and stop"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["new_key"]:
            self.stdout.write(secretbox.new_key())
            return
        dry_run = options["dry_run"]
        file_mode = secretbox.uses_key_file()
        old = secretbox.current_keys()
        if file_mode and not dry_run:
            new = secretbox.new_key()
            # 1. Both keys in the file, the new one sealing: everything still opens.
            secretbox.write_key_file([new, *old])
        counts = reseal_all(dry_run=dry_run, progress=True)
        total = sum(counts.values())
        if file_mode and not dry_run:
            # 3. Everything is sealed under the new key: the old one can go.
            secretbox.write_key_file([new])
        for label, n in counts.items():
            self.stdout.write(f"{label}: {n} row{'s' if n != 1 else ''}")
        if dry_run:
            self.stdout.write(f"dry run: {total} rows would be sealed again; nothing changed.")
        elif file_mode:
            self.stdout.write(
                f"{total} rows sealed again under a new key in {secretbox.key_file_path()}; "
                "the old key is gone from it. Back up the new file with the database."
            )
        else:
            self.stdout.write(
                f"{total} rows sealed again under the first key of MC_ENCRYPTION_KEYS; you can "
                "now remove the other keys from it (and restart)."
            )
