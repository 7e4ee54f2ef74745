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
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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


class Child:
    """A management command in a child process: what migrating or compressing static files
    allocates is not kept by the serving process for its whole life. Forked from this process
    when it has no other thread (Django and the apps are loaded already: a second's start-up
    saved per child), else a new interpreter."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.pid = 0
        self.proc: subprocess.Popen[bytes] | None = None
        if threading.active_count() == 1 and hasattr(os, "fork"):
            from django.db import connections

            connections.close_all()  # the child must not share this process's connections
            sys.stdout.flush()
            sys.stderr.flush()
            self.pid = os.fork()
            if self.pid == 0:  # the child
                code = 1
                try:
                    call_command(*args)
                    code = 0
                except BaseException:
                    import traceback

                    traceback.print_exc()
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
        else:
            manage = str(Path(settings.BASE_DIR) / "manage.py")
            self.proc = subprocess.Popen([sys.executable, manage, *args])

    def wait(self) -> None:
        if self.proc is not None:
            code = self.proc.wait()
        else:
            code = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        if code != 0:
            raise subprocess.CalledProcessError(code, ["manage.py", *self.args])


def start_collecting() -> Child:
    args = [arg for pattern in COLLECT_IGNORE for arg in ("--ignore", pattern)]
    return Child("collectstatic", "--noinput", "--skip-checks", *args, "--verbosity", "0")


def collect_static(stamp: str) -> None:
    start_collecting().wait()
    (Path(settings.STATIC_ROOT) / STAMP).write_text(stamp)


@dataclass
class Started:
    """What `begin` set going: the child processes still running, and the stamp to write."""

    stamp: str
    collecting: Child | None
    migrating: Child | None


def begin(say: Callable[[str], None] = print) -> Started:
    """Start what is out of date — collecting the static files (compressing is most of it) and
    migrating the database, two child processes at once, one per core (a first start: 10 s →
    4.4 s, docs/benchmarks.md) — and return at once."""
    stamp = static_stamp()
    collecting = migrating = None
    if not static_is_current(stamp):
        say("Collecting static files…")
        collecting = start_collecting()
    pending = pending_migrations()
    if pending:
        say(f"Applying {len(pending)} migration(s)…")
        migrating = Child("migrate", "--noinput", "--skip-checks", "--verbosity", "0")
    return Started(stamp, collecting, migrating)


def finish(started: Started) -> None:
    """Wait for what `begin` started, then make sure an admin exists."""
    try:
        if started.migrating is not None:
            started.migrating.wait()
        call_command("ensure_admin", stdout=sys.stdout)
    finally:
        if started.collecting is not None:
            started.collecting.wait()
    if started.collecting is not None:
        (Path(settings.STATIC_ROOT) / STAMP).write_text(started.stamp)


def run(say: Callable[[str], None] = print) -> None:
    """Bring the database and the static files up to date, and make sure an admin exists."""
    finish(begin(say))
