from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from channels.db import database_sync_to_async
from django.contrib.auth import views as auth_views
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.views.decorators.http import require_safe

from missioncontrol import live
from missioncontrol.consumers import parse_live_query
from missioncontrol.context_processors import live_seq_for
from missioncontrol.http import json_error
from missioncontrol.models import AuditEvent
from missioncontrol.roles import role_of, role_required

logger = logging.getLogger(__name__)

# SSE keep-alive comment interval: under the idle timeouts of common proxies (60 s).
SSE_KEEPALIVE_S = 15.0


@require_safe
@role_required("viewer")
def home(request: HttpRequest) -> HttpResponse:
    live_seq_for(request)
    activity = AuditEvent.objects.select_related(None).order_by("-id")[:30]
    return render(request, "missioncontrol/home.html", {"activity": activity})


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and database check for monitors; unauthenticated and secret-free."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        logger.exception("healthz: database check failed")
        return JsonResponse({"status": "error", "database": "unavailable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True


async def event_stream(request: HttpRequest) -> HttpResponseBase:
    """SSE fallback of /ws/live/: same topics, same replay rules, `Last-Event-ID` resume."""
    if request.method != "GET":
        return json_error(405, "method_not_allowed", "Use GET.")
    user = await request.auser()
    role = await database_sync_to_async(role_of)(user)
    if role is None:
        return json_error(
            401 if not user.is_authenticated else 403, "forbidden", "Sign in with a role."
        )
    topics, since = parse_live_query(request.META.get("QUERY_STRING", ""))
    last_id = request.headers.get("Last-Event-ID", "")
    if last_id.isdigit():
        since = int(last_id)
    sub = live.Subscription(topics, role)
    response = StreamingHttpResponse(_sse(sub, since), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def _sse_frame(text: str, seq: int | None = None) -> str:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}data: {text}\n\n"


async def _sse(sub: live.Subscription, since: int | None) -> AsyncIterator[str]:
    yield "retry: 2000\n\n"
    async for text in live.follow(sub, since, SSE_KEEPALIVE_S):
        # Every frame carries its seq as the event id: a reconnect resumes exactly there.
        yield ": keep-alive\n\n" if text is None else _sse_frame(text, live.seq_of(text))
