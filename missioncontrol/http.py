"""Typed requests (the JSON error shape lives in missioncontrol/errors.py)."""

from __future__ import annotations

import re
from datetime import date, datetime, time, tzinfo

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.middleware import HtmxDetails


class MCRequest(HttpRequest):
    """An HttpRequest as our middleware leaves it."""

    htmx: HtmxDetails
    user: AbstractBaseUser | AnonymousUser  # type: ignore[assignment]


# One way to read an integer from a request (query string, header, form field): ASCII digits
# only (str.isdigit() also accepts '²' and other digits int() refuses) and bounded (a 30-digit
# offset or id is not a number any column holds).
_DIGITS = re.compile(r"[0-9]{1,18}", re.ASCII)
MAX_ID = 2**63 - 1


def parse_int(raw: str | None, *, low: int = 0, high: int = MAX_ID) -> int | None:
    """The integer `raw` spells, if it is plain ASCII digits within [low, high]; else None."""
    if raw is None or not _DIGITS.fullmatch(raw.strip()):
        return None
    value = int(raw.strip())
    return value if low <= value <= high else None


# Days read from a request are kept where every zone's local midnight, a day either side, is a
# datetime Python and the database can hold: 0001-01-01 in UTC+14 is year 0 in UTC (OverflowError
# at query time, issue #30 §0). Earlier or later days are clamped (they select the same rows).
_DAY = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})", re.ASCII)
MIN_DAY = date(2, 1, 1)
MAX_DAY = date(9998, 12, 30)


def parse_day(raw: str | None) -> date | None:
    """The calendar day `raw` spells as YYYY-MM-DD (ASCII digits, a real date), clamped to
    [MIN_DAY, MAX_DAY]; else None."""
    found = _DAY.fullmatch((raw or "").strip())
    if found is None:
        return None
    try:
        day = date(*(int(part) for part in found.groups()))
    except ValueError:
        return None
    return min(max(day, MIN_DAY), MAX_DAY)


def day_start(day: date, zone: tzinfo) -> datetime:
    """Local midnight of `day` in `zone`, as an aware datetime: representable in UTC for any day
    parse_day returns, and the day after it."""
    return datetime.combine(day, time.min, zone)


def safe_next(request: HttpRequest, fallback: str) -> str:
    """A `next` URL from the request, if it stays on this site (no `javascript:`, no
    `//evil.example`, no other host); else `fallback`."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return fallback


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored as text on every database we run on, or None."""
    if "\x00" in value:
        return "NUL characters are not allowed."
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "The text is not valid Unicode (a lone surrogate)."
    return None
