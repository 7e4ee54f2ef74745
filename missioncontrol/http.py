"""Typed requests and the JSON error shape every API answer uses."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest, JsonResponse
from django_htmx.middleware import HtmxDetails


class MCRequest(HttpRequest):
    """An HttpRequest as our middleware leaves it."""

    htmx: HtmxDetails
    user: AbstractBaseUser | AnonymousUser  # type: ignore[assignment]


def json_error(status: int, error: str, detail: Any = None) -> JsonResponse:
    """`{"error": ..., "detail": ...}` with the given 4xx/5xx status."""
    return JsonResponse({"error": error, "detail": detail}, status=status)
