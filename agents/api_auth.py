"""DRF plumbing for the agent API: key authentication and the JSON error shape."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from agents import keys


class AgentPrincipal:
    """The caller of the agent API: a key, never a user (and never an operator)."""

    is_authenticated = True
    is_active = True
    is_superuser = False

    def __init__(self, key: keys.KeyInfo) -> None:
        self.key = key

    def __str__(self) -> str:
        return self.key.agent_name or f"enrollment:{self.key.prefix}"


class AgentKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[AgentPrincipal, keys.KeyInfo] | None:
        raw = request.headers.get("Authorization", "")
        raw = raw[7:] if raw.lower().startswith("bearer ") else request.headers.get("X-Api-Key", "")
        if not raw:
            return None
        info = keys.verify(raw)
        if info is None:
            raise exceptions.AuthenticationFailed("This API key is unknown, revoked or expired.")
        return AgentPrincipal(info), info

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"


class SessionNoCsrf(BaseAuthentication):
    """A signed-in browser user, for read-only pages of the API (schema, docs)."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        user = getattr(request._request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        return user, None


class ViewerOrAgent(BasePermission):
    """An agent key, or a person with at least the viewer role."""

    def has_permission(self, request: Request, view: Any) -> bool:
        from missioncontrol.roles import has_role

        if isinstance(request.user, AgentPrincipal):
            return True
        return has_role(request.user, "viewer")


CODES = {
    400: "validation_error",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every DRF error as {"error": ..., "detail": ...}."""
    # Imported here: rest_framework.views imports the settings that name this module.
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response.status_code = 401
    code = CODES.get(response.status_code, "error")
    detail = response.data
    if isinstance(detail, dict) and set(detail) == {"detail"}:
        detail = detail["detail"]
    response.data = {"error": code, "detail": detail}
    return response
