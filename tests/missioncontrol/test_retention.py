from __future__ import annotations

import io
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from missioncontrol import audit, retention
from missioncontrol.models import AuditEvent, LiveEvent

pytestmark = pytest.mark.django_db


def make_history() -> None:
    with transaction.atomic():
        audit.record(audit.Actor.system(), "old.thing")


def test_prunes_by_age_not_by_count(settings):
    settings.MC_EVENT_RETENTION_HOURS = 24
    settings.MC_AUDIT_RETENTION_DAYS = 30
    with time_machine.travel(timezone.now() - timedelta(days=40)):
        make_history()
    with time_machine.travel(timezone.now() - timedelta(days=2)):
        make_history()
    make_history()
    assert AuditEvent.objects.count() == 3
    assert LiveEvent.objects.count() == 3

    deleted = retention.prune()

    assert deleted == {"missioncontrol.LiveEvent": 2, "missioncontrol.AuditEvent": 1}
    assert AuditEvent.objects.count() == 2
    assert LiveEvent.objects.count() == 1


def test_prune_command_is_a_dry_run_by_default(settings):
    settings.MC_AUDIT_RETENTION_DAYS = 1
    with time_machine.travel(timezone.now() - timedelta(days=5)):
        make_history()
    out = io.StringIO()
    call_command("prune", stdout=out)
    assert "missioncontrol.AuditEvent: 1 rows past retention" in out.getvalue()
    assert AuditEvent.objects.count() == 1
    call_command("prune", "--apply", stdout=out)
    assert AuditEvent.objects.count() == 0
