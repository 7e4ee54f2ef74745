"""SQLite runs in WAL mode with IMMEDIATE transactions: concurrent writers queue, never fail."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from django.db import connection

from missioncontrol.models import AuditEvent
from tests.live import ROOT

# The SQLite profile's own guarantees; the PostgreSQL profile has its own server's.
pytestmark = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="SQLite-specific (the suite also runs on PostgreSQL)"
)

WRITER = textwrap.dedent(
    """
    import os, sys, django
    os.environ["DATABASE_URL"] = "sqlite:///" + sys.argv[1]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()
    from django.db import transaction
    from missioncontrol.models import AuditEvent
    for i in range(int(sys.argv[3])):
        with transaction.atomic():
            # Read then write in one transaction: the pattern that fails with DEFERRED.
            n = AuditEvent.objects.count()
            AuditEvent.objects.create(actor_type="system", actor_label=sys.argv[2], verb="tick", object_id=str(n))
    print("ok")
    """
)


def test_wal_and_pragmas_are_on(db):
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
        cursor.execute("PRAGMA synchronous")
        assert cursor.fetchone()[0] == 1  # NORMAL
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] >= 20000
    assert connection.transaction_mode == "IMMEDIATE"  # type: ignore[attr-defined]


@pytest.mark.slow
def test_two_processes_writing_at_once_never_see_database_locked(transactional_db, test_db_path):
    per_process = 150
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, test_db_path, f"writer{i}", str(per_process)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert "database is locked" not in err
        assert out.strip() == "ok"
    assert AuditEvent.objects.filter(verb="tick").count() == 2 * per_process
