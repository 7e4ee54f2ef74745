"""A day given on a command line (`--since 2026-11-01`), as the UTC midnight it starts at."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from django.core.management.base import CommandError


def utc_day(value: str | None, option: str = "--since") -> datetime | None:
    """None when not given; CommandError when not a YYYY-MM-DD day."""
    if not value:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), time.min, tzinfo=UTC)
    except ValueError:
        raise CommandError(f"{option} is a day, written YYYY-MM-DD.") from None
