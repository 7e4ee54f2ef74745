"""Schedules: the three kinds OpenClaw knows (a cron expression with a time zone, every N
milliseconds from an anchor, once at a time), read from a gateway's job or an admin's form, shown
raw and in words, and asked for their next expected run (croniter) when the gateway does not say.
Pure functions; no database."""

from __future__ import annotations

import functools
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cron_descriptor import Options, get_description
from croniter import CroniterBadDateError, croniter

from gateways import frames

EVERY_MIN_S = 60
EVERY_MAX_S = 366 * 24 * 3600


class BadSchedule(ValueError):
    """A schedule that cannot be understood (the message says why, for a form)."""


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise BadSchedule(
            f"Unknown time zone {name!r} (use an IANA name such as Europe/Paris)."
        ) from None


def _span(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"


def _short(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class Schedule:
    kind: str  # "cron" | "every" | "at"
    expr: str = ""
    tz: str = ""
    every_s: int = 0
    anchor: datetime | None = None
    at: datetime | None = None

    # --- reading ------------------------------------------------------------------------------

    @classmethod
    def cron(cls, expr: str, tz: str = "") -> Schedule:
        expr = " ".join(expr.split())
        if not expr or not croniter.is_valid(expr):
            raise BadSchedule(f"{expr!r} is not a cron expression (five fields: m h dom mon dow).")
        _zone(tz)
        made = cls("cron", expr=expr, tz=tz)
        # croniter accepts expressions that never fire (`0 0 30 2 *`): refused here, not a 500
        # later when the next run is asked for.
        if made.next_after(datetime.now(UTC)) is None:
            raise BadSchedule(f"{expr!r} never fires (no such day in any month or year).")
        return made

    @classmethod
    def every(cls, seconds: int, anchor: datetime | None = None) -> Schedule:
        if seconds < 1:
            raise BadSchedule("The period must be at least one second.")
        return cls("every", every_s=int(seconds), anchor=anchor)

    @classmethod
    def from_gateway(cls, raw: frames.GatewaySchedule | None) -> Schedule | None:
        """A gateway job's schedule; None when it cannot be used (shown as such, never an
        error)."""
        if raw is None:
            return None
        try:
            if raw.kind == "cron":
                return cls.cron(raw.expr, raw.tz)
            if raw.kind == "every":
                # anchorMs is an epoch time for jobs made with cron.add; the built-in jobs carry
                # small offsets, which are no usable anchor (frames read them as no time).
                # At most ten years between runs.
                if not 0 < raw.every_ms <= 10 * 366 * 86_400_000:
                    return None
                return cls.every(max(1, int(raw.every_ms // 1000)), raw.anchor)
            if raw.at is not None:
                return cls("at", at=raw.at)
        except BadSchedule:
            return None
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "expr": self.expr,
            "tz": self.tz,
            "every_s": self.every_s,
            "anchor": self.anchor.isoformat() if self.anchor else None,
            "at": self.at.isoformat() if self.at else None,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Schedule | None:
        if not isinstance(data, dict) or data.get("kind") not in {"cron", "every", "at"}:
            return None
        return cls(
            data["kind"],
            expr=data.get("expr") or "",
            tz=data.get("tz") or "",
            every_s=int(data.get("every_s") or 0),
            anchor=frames.iso_time(data.get("anchor")),
            at=frames.iso_time(data.get("at")),
        )

    # --- showing ------------------------------------------------------------------------------

    def raw(self) -> str:
        """As written: `0 3 * * *` (with its zone when not UTC), `every 30m`, `at 2026-12-03
        09:00 UTC`."""
        if self.kind == "cron":
            return f"{self.expr} ({self.tz})" if self.tz and self.tz != "UTC" else self.expr
        if self.kind == "every":
            return f"every {_short(self.every_s)}"
        assert self.at is not None
        return f"at {self.at:%Y-%m-%d %H:%M} UTC"

    def words(self) -> str:
        """In words: `At 03:00`, `Every 30 minutes`, `Once, on Dec 3, 2026 at 09:00 UTC`."""
        if self.kind == "cron":
            zone = self.tz if self.tz and self.tz != "UTC" else "UTC"
            return f"{_described(self.expr)} ({zone})"
        if self.kind == "every":
            span = _span(self.every_s)
            return f"Every {span[2:] if span.startswith('1 ') else span}"
        assert self.at is not None
        return f"Once, on {self.at:%b %-d, %Y at %H:%M} UTC"

    # --- expecting ----------------------------------------------------------------------------

    def next_after(self, after: datetime) -> datetime | None:
        """The first run this schedule expects strictly after `after` (None: no more runs)."""
        if self.kind == "cron":
            zone = _zone(self.tz)
            try:
                it = croniter(self.expr, after.astimezone(zone))
                found: datetime = it.get_next(datetime)
            except (CroniterBadDateError, ValueError, OverflowError):
                return None  # never fires again
            return found.astimezone(UTC)
        if self.kind == "every":
            step = timedelta(seconds=self.every_s)
            if self.anchor is None or self.anchor > after:
                return self.anchor if self.anchor and self.anchor > after else after + step
            periods = int((after - self.anchor) / step) + 1
            return self.anchor + periods * step
        return self.at if self.at is not None and self.at > after else None


@functools.lru_cache(maxsize=4096)
def _described(expr: str) -> str:
    """cron-descriptor's words for an expression (0.16 ms a call: a list of 1,000 jobs asks for
    a handful of distinct expressions, so they are kept)."""
    options = Options()
    options.use_24hour_time_format = True
    try:
        return str(get_description(expr, options))
    except Exception:  # the library's own errors for what croniter accepted
        return expr
