"""Typed requests (the JSON error shape lives in missioncontrol/errors.py)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class MCRequest(HttpRequest):
    """An HttpRequest as our middleware leaves it."""

    htmx: HtmxDetails
    user: AbstractBaseUser | AnonymousUser  # type: ignore[assignment]
