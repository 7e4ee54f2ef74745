"""What a gateway sends, read into values the rest of the product can trust: the one place
OpenClaw's wire values are bounded (issue #30 §3, boundary issue #26 §1).

This module grows into the typed frames (ListedAgent, SessionSnapshot, …); today it holds the
value readers every ingest uses, so that no frame can carry a value past it that breaks a page
or a connector: a timestamp in year 9999 was a 500 on /sessions/ east of UTC and an
OverflowError that restarted a gateway's connector in a loop; a cost of NaN stopped the session
sync; a NUL character is refused by PostgreSQL. And the accounting of what was skipped: an item
no reader can make sense of is left out, named (`Skipped`), logged once and counted on the
gateway's page, and the items around it are stored. No models here.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import DataError, IntegrityError

logger = logging.getLogger(__name__)

# C0 controls but tab and newline, DEL, and the UTF-16 surrogates a JSON string may carry
# unpaired: PostgreSQL refuses NUL and the encoder refuses lone surrogates.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")

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
    """A non-negative count (a float's whole part), 0 when it is not one; at most `high`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        return 0  # NaN fails `>= 0` too
    return int(min(value, high))


def text(value: Any, limit: int) -> str:
    """A string (or a number, as written) cut to `limit`, without the characters a database
    or a page cannot hold; "" for anything else (containers, booleans, None)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    return _UNSAFE.sub("", str(value))[:limit]


def ident(value: Any, limit: int = 128) -> str | None:
    """An identifier (agent id, session key, job id): a non-empty string of at most `limit`
    characters, none of them unsafe — else None (the item it names is skipped: an id cut or
    cleaned would name another item)."""
    if not isinstance(value, str) or not 0 < len(value) <= limit or _UNSAFE.search(value):
        return None
    return value


def cost(value: Any, high: Decimal = Decimal(10) ** 8) -> Decimal | None:
    """A US-dollar amount in [0, 10^8) to the micro-dollar, or None (NaN, infinities, words,
    booleans, negative or absurd amounts)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = Decimal(str(value))
        if not amount.is_finite() or not Decimal(0) <= amount < high:
            return None
        return amount.quantize(Decimal("0.000001"))
    except (InvalidOperation, ValueError):
        return None


def number(value: Any) -> float | None:
    """A finite number (not a boolean), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if abs(value) < 1e15 else None  # NaN fails this too


INT64 = 2**63


def portable(value: Any) -> Any:
    """A gateway's answer made safe to relay over any channel layer (msgpack over Redis refuses
    integers past 64 bits) and to render: such integers become floats, NaN and infinities
    None."""
    if isinstance(value, dict):
        return {str(k): portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not -INT64 <= value < INT64:
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class Skipped:
    """What one pass over a gateway's frames left out: {kind: {reason: count}}."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, kind: str, reason: str, n: int = 1) -> None:
        reasons = self.counts.setdefault(kind, {})
        reasons[reason[:120]] = reasons.get(reason[:120], 0) + n

    def __bool__(self) -> bool:
        return bool(self.counts)


# What a reader (or the database, on a value it refuses) raises on a value nobody foresaw:
# the item is skipped, the rest go on. A database that is unavailable is not among them.
READ_ERRORS = (
    ValueError,
    TypeError,
    ArithmeticError,
    LookupError,
    AttributeError,
    DataError,
    IntegrityError,
)


def read[T, R](reader: Callable[[T], R], item: T, kind: str, skipped: Skipped | None) -> R | None:
    """`reader(item)`, or None when the item holds what it cannot read (counted in `skipped`,
    or logged when nobody counts)."""
    with skipping(kind, skipped):
        return reader(item)
    return None


@contextmanager
def skipping(kind: str, skipped: Skipped | None) -> Iterator[None]:
    """Around one item's work (with a savepoint inside it, when it writes): what a reader did
    not foresee skips that item — counted, or logged when nobody counts — and the rest go on."""
    try:
        yield
    except READ_ERRORS as failure:
        reason = f"{type(failure).__name__}: {failure}"
        if skipped is None:
            logger.warning("gateway %s skipped: %s", kind, reason[:200])
        else:
            skipped.add(kind, reason)


def items(
    raw: Any, key: str, kind: str, skipped: Skipped, limit: int = 128
) -> list[dict[str, Any]]:
    """A list of objects each named by a safe identifier under `key`; whatever is not one is
    left out and counted in `skipped` (the latest of two items with one id wins later)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        skipped.add(kind, "the list is not a list")
        return []
    kept: list[dict[str, Any]] = []
    for item in raw:
        if not isinstance(item, dict):
            skipped.add(kind, "an item that is not an object")
        elif ident(item.get(key), limit) is None:
            skipped.add(kind, f"no usable {key}")
        else:
            kept.append(item)
    return kept
