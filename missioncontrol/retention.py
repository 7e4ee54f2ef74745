"""Pruning the event log and audit trail by age (never by row count alone)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from missioncontrol.models import AuditEvent, LiveEvent

# Small batches keep each write transaction short, so heartbeats never wait long for the lock.
BATCH = 2000


def cutoffs(now: datetime | None = None) -> dict[type[models.Model], datetime]:
    now = now or timezone.now()
    return {
        LiveEvent: now - timedelta(hours=settings.MC_EVENT_RETENTION_HOURS),
        AuditEvent: now - timedelta(days=settings.MC_AUDIT_RETENTION_DAYS),
    }


def expired_counts(now: datetime | None = None) -> dict[str, int]:
    """How many rows of each table are past their retention."""
    return {
        model._meta.label: model._default_manager.filter(created_at__lt=cutoff).count()
        for model, cutoff in cutoffs(now).items()
    }


def delete_in_batches(rows: models.QuerySet[Any]) -> int:
    """Delete `rows` BATCH at a time, each batch its own short transaction; rows deleted
    (cascades counted too)."""
    total = 0
    while True:
        with transaction.atomic():
            ids = list(rows.order_by().values_list("pk", flat=True)[:BATCH])
            if not ids:
                return total
            total += rows.model._default_manager.filter(pk__in=ids).delete()[0]


def prune(now: datetime | None = None) -> dict[str, int]:
    """Delete rows past retention in short batches; returns rows deleted per table."""
    return {
        model._meta.label: delete_in_batches(model._default_manager.filter(created_at__lt=cutoff))
        for model, cutoff in cutoffs(now).items()
    }
