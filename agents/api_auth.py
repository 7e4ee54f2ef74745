"""DRF plumbing for the agent API: key authentication, its permission and base view."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

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
        raw = keys.from_headers(
            request.headers.get("Authorization"), request.headers.get("X-Api-Key")
        )
        if not raw:
            return None
        info = keys.verify(raw)
        if info is None:
            raise exceptions.AuthenticationFailed("This API key is unknown, revoked or expired.")
        # The same per-key budget as the fast routes: every agent-key route is rate limited.
        wait = keys.rate_limited(info.id)
        if wait:
            raise exceptions.Throttled(wait=max(1, round(wait)))
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


class IsAgent(BasePermission):
    """An agent key (an agent's own or an enrollment key): never a person."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, AgentPrincipal)


class AgentAPIView(APIView):
    """Base of every agent API view: authenticated by agent key only, for agent keys only.

    The project's DRF defaults are neutral (no authentication, nobody permitted), so a future
    admin API cannot inherit agent authentication by accident: it names its own."""

    authentication_classes = [AgentKeyAuthentication]
    permission_classes = [IsAgent]
