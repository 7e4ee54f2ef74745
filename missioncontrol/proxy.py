"""Forwarded headers, believed only from MC_TRUSTED_PROXIES, applied at the ASGI layer."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings

from missioncontrol.fastpath.http import Scope, header


def _trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in settings.MC_TRUSTED_PROXIES)


def apply_forwarded(scope: Scope) -> Scope:
    """A copy of the scope with client/scheme from X-Forwarded-* if the peer is a trusted proxy."""
    client = scope.get("client")
    if not client or not settings.MC_TRUSTED_PROXIES or not _trusted(client[0]):
        return scope
    scope = dict(scope)
    # For the deployment checks: the headers were believed, and who sent them.
    scope["mc_forwarded"] = True
    scope["mc_peer"] = client[0]
    forwarded_for = header(scope, b"x-forwarded-for")
    if forwarded_for:
        # Walk from the right: the first address that is not one of our proxies is the client.
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        for hop in reversed(hops):
            if not _trusted(hop):
                scope["client"] = (hop, 0)
                break
    proto = (header(scope, b"x-forwarded-proto") or "").lower()
    if proto in {"http", "https"}:
        secure = proto == "https"
        if scope["type"] == "websocket":
            scope["scheme"] = "wss" if secure else "ws"
        else:
            scope["scheme"] = proto
    return scope


class TrustedProxyMiddleware:
    """ASGI middleware around the whole application."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        if scope["type"] in {"http", "websocket"}:
            scope = apply_forwarded(scope)
            if scope["type"] == "http" and scope.get("scheme") == "https":
                hsts = _hsts_header()
                if hsts is not None:
                    send = _with_header(send, b"strict-transport-security", hsts)
        return await self.app(scope, receive, send)


def _hsts_header() -> bytes | None:
    """Strict-Transport-Security as Django's SecurityMiddleware words it, for every HTTPS
    response: the fast routes (heartbeats, moves) answer before Django's middleware, and would
    otherwise go without it."""
    seconds = settings.SECURE_HSTS_SECONDS
    if not seconds:
        return None
    value = f"max-age={seconds}"
    if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
        value += "; includeSubDomains"
    if settings.SECURE_HSTS_PRELOAD:
        value += "; preload"
    return value.encode()


def _with_header(send: Any, name: bytes, value: bytes) -> Any:
    async def sending(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers") or [])
            if not any(key.lower() == name for key, _ in headers):
                headers.append((name, value))
                message = {**message, "headers": headers}
        await send(message)

    return sending
