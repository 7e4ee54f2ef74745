"""What a gateway sends, read into values the rest of the product can trust: the one place
OpenClaw's wire values are bounded (issue #30 §3, boundary issue #26 §1).

This module grows into the typed frames (ListedAgent, SessionSnapshot, …); today it holds the
value readers every ingest uses, so that no frame can carry a value past it that breaks a page
or a connector: a timestamp in year 9999 was a 500 on /sessions/ east of UTC and an
OverflowError that restarted a gateway's connector in a loop. No Django here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

# Timestamps a gateway may report: from 2000 to 2999. Anything else is no time (treated as
# missing): far enough from the ends of the calendar that every zone, and a day either side,
# stays representable.
EARLIEST_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
LATEST_MS = 32_503_680_000_000  # 3000-01-01T00:00:00Z
# Durations: up to a year (a run or a job longer than that is a broken clock, not a run).
LONGEST_MS = 366 * 86_400_000


def ms_time(value: Any) -> datetime | None:
    """An epoch-milliseconds number as an aware UTC datetime, or None when it is not a number
    (booleans neither) or outside [2000, 3000)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not EARLIEST_MS <= value < LATEST_MS:  # NaN fails this too
        return None
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def duration(value: Any) -> timedelta | None:
    """A milliseconds duration, or None when it is not a whole number in [0, a year]."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= LONGEST_MS:
        return None
    return timedelta(milliseconds=value)


def duration_ms(value: Any) -> int | None:
    """A milliseconds duration as a whole number in [0, a year], or None."""
    took = duration(value)
    return None if took is None else value


def count(value: Any, high: int = 10**9) -> int:
    """A non-negative whole-number count, 0 when it is not one; at most `high`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return min(value, high)
