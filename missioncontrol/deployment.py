"""Deployment mistakes, detected from real traffic and named with their fix.

Behind a TLS proxy the common mistakes fail quietly (cookies without `Secure`, a whole team
locked out as one address, a bare error page). Each is noticed where it shows — a request's
headers, a refused host, a refused form — and becomes a *finding*: one warning line in the log
naming the variable to set, and a row on the admins' Deployment page (`/settings/deployment/`),
counted, with first and last seen. What strangers see never names the configuration.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

logger = logging.getLogger("missioncontrol.deployment")

# Per process: a finding is written (and logged) at most once a minute.
EVERY_S = 60.0
_seen: dict[tuple[str, str], float] = {}
_lock = threading.Lock()
# Distinct details kept per kind of finding: a stranger sending random Host values must not
# grow the table and the log without bound (issue #30 §5). Past this, one row counts the rest.
MAX_PER_CODE = 20


def note(code: str, detail: str, remedy: str) -> None:
    """Record one observation of a mistake (throttled; never raises)."""
    key = (code, detail[:300])
    now = time.monotonic()
    with _lock:
        if key not in _seen and sum(1 for c, _d in _seen if c == code) >= MAX_PER_CODE:
            key = (code, _MORE)
            detail = _MORE
        if now - _seen.get(key, -EVERY_S) < EVERY_S:
            return
        _seen[key] = now
        if len(_seen) > 1000:
            _seen.clear()
    logger.warning("deployment: %s — %s", detail, remedy)
    try:
        _store(code, detail[:300], remedy[:500])
    except Exception:  # a finding must never break the request that revealed it
        logger.exception("deployment: could not store a finding")


_MORE = "More findings of this kind with other values (not kept one by one)."


def _store(code: str, detail: str, remedy: str) -> None:
    from missioncontrol.models import DeploymentFinding

    now = timezone.now()
    with transaction.atomic():
        known = DeploymentFinding.objects.filter(code=code)
        if not known.filter(detail=detail).exists() and known.count() >= MAX_PER_CODE:
            detail = _MORE
        updated = DeploymentFinding.objects.filter(code=code, detail=detail).update(
            count=F("count") + 1, last_seen=now, remedy=remedy
        )
        if not updated:
            try:
                with transaction.atomic():
                    DeploymentFinding.objects.create(
                        code=code, detail=detail, remedy=remedy, first_seen=now, last_seen=now
                    )
            except IntegrityError:  # another process made it meanwhile
                DeploymentFinding.objects.filter(code=code, detail=detail).update(
                    count=F("count") + 1, last_seen=now
                )


def reset() -> None:
    with _lock:
        _seen.clear()


def _header(request: Any, name: str) -> str:
    return str(request.META.get(name, ""))[:200]


class DeploymentMiddleware:
    """Looks at each request for the proxy mistakes a header reveals."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        scope = getattr(request, "scope", None) or {}
        forwarded = _header(request, "HTTP_X_FORWARDED_FOR") or _header(
            request, "HTTP_X_FORWARDED_PROTO"
        )
        peer = (scope.get("mc_peer") or (request.META.get("REMOTE_ADDR") or ""))[:64]
        if forwarded and not scope.get("mc_forwarded"):
            note(
                "untrusted_proxy",
                f"forwarded headers from {peer}, which is not a trusted proxy: they were ignored",
                f"If {peer} is your proxy, set MC_TRUSTED_PROXIES={peer} (until then every client "
                "looks like the proxy: one lockout locks everyone out). If it is not, someone is "
                "trying to pass for another address, and was ignored.",
            )
        elif scope.get("mc_forwarded") and request.is_secure() and not settings.MC_TLS:
            note(
                "tls_off",
                "served over https through the trusted proxy, but MC_TLS is off",
                "Set MC_TLS=1: session and CSRF cookies then carry Secure, and HSTS is sent.",
            )
        return self.get_response(request)
