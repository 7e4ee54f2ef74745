"""Browser routes on the fast path: Django's own request object, session and CSRF checks.

A browser route (the board's move) does explicitly what Django's middleware would: the CSRF
check (token and Origin), the session's user (cached SESSION_TTL_S; sign-out and role changes
drop it at once, through signals), then the role.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.auth.signals import user_logged_out
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse
from django.middleware.csrf import CsrfViewMiddleware

from missioncontrol import state
from missioncontrol.fastpath.http import Scope, Send
from missioncontrol.roles import role_changed, role_of


def django_request(scope: Scope, body: bytes) -> Any:
    """Django's request for a fast route (cookies, host, CSRF and form parsing as everywhere)."""
    return ASGIRequest(scope, io.BytesIO(body))


def csrf_failure(request: Any) -> str | None:
    """Why Django's CSRF check refuses this request, or None when it passes."""
    middleware = CsrfViewMiddleware(_protected_view)
    middleware.process_request(request)
    refused = middleware.process_view(request, _protected_view, (), {})
    return None if refused is None else "CSRF check failed: reload the page and try again."


def _protected_view(request: Any) -> HttpResponse:
    """Stands for the view in the CSRF check (not exempt); never called."""
    return HttpResponse(status=500)


@dataclass(frozen=True)
class SessionUser:
    """Who a session cookie signs in, checked by Django (session, auth hash, active user)."""

    id: int
    username: str
    role: str | None


# A session's user, kept SESSION_TTL_S: sign-out, a password change or a new role reach the fast
# routes within that (sign-out in this process at once).
SESSION_TTL_S = 2.0
_sessions: dict[str, tuple[float, SessionUser | None]] = {}
_sessions_lock = threading.Lock()


async def session_user(request: Any) -> SessionUser | None:
    key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if not key:
        return None
    with _sessions_lock:
        hit = _sessions.get(key)
    if hit is not None and time.monotonic() - hit[0] < SESSION_TTL_S:
        return hit[1]
    user = await asyncio.get_running_loop().run_in_executor(None, _load_session_user, request, key)
    with _sessions_lock:
        if len(_sessions) > 10000:
            _sessions.clear()
        _sessions[key] = (time.monotonic(), user)
    return user


def _load_session_user(request: Any, key: str) -> SessionUser | None:
    request.session = import_module(settings.SESSION_ENGINE).SessionStore(key)
    user = get_user(request)
    if not user.is_authenticated:
        return None
    return SessionUser(user.pk, user.get_username(), role_of(user))


def forget_session(key: str | None = None) -> None:
    """Drop one cached session (sign-out) or all of them (roles changed)."""
    with _sessions_lock:
        if key is None:
            _sessions.clear()
        else:
            _sessions.pop(key, None)


async def send_django_response(send: Send, response: Any) -> None:
    """Send a Django HttpResponse (e.g. the sign-in redirect) from a fast route."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.items()]
    headers.append((b"content-length", str(len(response.content)).encode()))
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.content})


def _forget_on_sign_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Sign-out ends the session on the fast routes at once."""
    session = getattr(request, "session", None)
    forget_session(getattr(session, "session_key", None) or "")


def _forget_on_role_change(sender: Any, **kwargs: Any) -> None:
    forget_session()  # the cached sessions carry their users' roles


user_logged_out.connect(_forget_on_sign_out, dispatch_uid="mc-fastpath-forget-session")
role_changed.connect(_forget_on_role_change, dispatch_uid="mc-fastpath-forget-roles")
state.register("fast-path sessions", forget_session)
