"""Set-up checks that `serve` runs in its own process before it listens.

Each has a fast no-op path when nothing changed, so a restart costs no extra Django start-ups:
- migrations: the migration files on disk against the `django_migrations` table (one query,
  a directory listing per app); `migrate` runs only when one is missing;
- the first admin: `ensure_admin` (one query when an admin exists), which prints a generated
  password once when it creates one;
- static files: a stamp of the static sources (paths, sizes, mtimes) and of the installed
  packages beside the collected files; `collectstatic` runs only when it differs or the
  manifest is missing, so a started server never answers 500 for missing static files.
Migrating and collecting run in child processes (only when needed): the serving process does
not keep what they allocate (compressing Swagger UI alone grows a process by ~50 MB).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterable
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

# As ./mc and the tests pass them: unused bundles and source maps stay out of the data dir
# (see missioncontrol/storage.py).
COLLECT_IGNORE = ["redoc*", "*.map"]
STAMP = ".mc-stamp"


def migrations_on_disk() -> set[tuple[str, str]]:
    """(app label, migration name) of every migration file of the installed apps."""
    found: set[tuple[str, str]] = set()
    for config in apps.get_app_configs():
        folder = Path(config.path) / "migrations"
        if not folder.is_dir():
            continue
        for entry in os.listdir(folder):
            if entry.endswith(".py") and entry[:4].isdigit():
                found.add((config.label, entry[:-3]))
    return found


def pending_migrations() -> set[tuple[str, str]]:
    """Migrations on disk that the database has not recorded (all of them on a new database)."""
    recorder = MigrationRecorder(connection)
    if not recorder.has_table():
        return migrations_on_disk()
    applied = set(recorder.migration_qs.values_list("app", "name"))
    return migrations_on_disk() - applied


def _files(root: Path) -> Iterable[str]:
    for folder, _dirs, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = Path(folder) / name
            stat = path.stat()
            yield f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}"


def static_stamp() -> str:
    """What the collected files are made from: our static sources and the installed packages
    (whose static files — the admin's, Swagger UI's — come along)."""
    digest = hashlib.sha256()
    for entry in settings.STATICFILES_DIRS:
        root = entry[1] if isinstance(entry, tuple) else entry  # (prefix, folder) or a folder
        for line in _files(Path(root)):
            digest.update(line.encode())
    # The installed packages, by their dist-info folders' names (name and version): a listing,
    # not the metadata of each (which costs memory in the serving process).
    for folder in sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}):
        with contextlib.suppress(OSError):
            for entry in sorted(os.listdir(folder)):
                if entry.endswith(".dist-info"):
                    digest.update(entry.encode())
    digest.update(repr(COLLECT_IGNORE).encode())
    return digest.hexdigest()[:16]


def static_is_current(stamp: str) -> bool:
    root = Path(settings.STATIC_ROOT)
    stamp_file = root / STAMP
    return (
        (root / "staticfiles.json").is_file()
        and stamp_file.is_file()
        and stamp_file.read_text().strip() == stamp
    )


def _manage(*args: str) -> None:
    """A management command in a child process: what migrating or compressing static files
    allocates is not kept by the serving process for its whole life."""
    subprocess.run([sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args], check=True)


def collect_static(stamp: str) -> None:
    args = [arg for pattern in COLLECT_IGNORE for arg in ("--ignore", pattern)]
    _manage("collectstatic", "--noinput", *args, "-v", "0")
    (Path(settings.STATIC_ROOT) / STAMP).write_text(stamp)


def run(say: Callable[[str], None] = print) -> None:
    """Bring the database and the static files up to date, and make sure an admin exists."""
    pending = pending_migrations()
    if pending:
        say(f"Applying {len(pending)} migration(s)…")
        _manage("migrate", "--noinput", "-v", "0")
    call_command("ensure_admin", stdout=sys.stdout)
    stamp = static_stamp()
    if not static_is_current(stamp):
        say("Collecting static files…")
        collect_static(stamp)
