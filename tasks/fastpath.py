"""The board's move endpoint, `POST /tasks/<id>/move/`, answered at the ASGI layer.

Every drag and drop, keyboard move and move-menu choice is one request here. Through Django's
full stack a move cost ~11 ms of CPU (47 moves/s on two cores); here the same checks are done
explicitly with Django's own pieces (host, CSRF, the session's user, the operator role, MoveForm)
and the moves go to a group-commit writer (`tasks.actions.move_tasks`: many moves, one
transaction, each with its audit row and live event). It is the only move route: there is no
Django twin (the permission matrix walks this route through the ASGI application).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login

from missioncontrol.audit import Actor
from missioncontrol.errors import ActionError, Unavailable
from missioncontrol.fastpath import browser
from missioncontrol.fastpath import writer as fastwriter
from missioncontrol.fastpath.http import (
    Receive,
    Scope,
    Send,
    admitted_body,
    error,
    refuse,
    respond,
)
from missioncontrol.models import AuditEvent
from missioncontrol.roles import RANK
from tasks import actions
from tasks.forms import MoveForm
from tasks.models import Task

MAX_BATCH = 200
# The route (FAST_ROUTES in missioncontrol/asgi.py); the board's script reads it from the page.
MOVE_URL = "/tasks/{pk}/move/"
PATTERN = r"^/tasks/(?P<pk>[0-9]{1,18})/move/$"


def _answer(result: Task | ActionError) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) for a move's result, as the board's script expects them."""
    if isinstance(result, ActionError):
        return result.status, result.body()
    return 200, {
        "ok": True,
        "task": {"id": result.pk, "status": result.status, "version": result.version},
    }


def _writer() -> fastwriter.BatchWriter:
    # The writer's connection only ever runs move_tasks: it may carry column counts forward.
    counts = actions.CountsCache()
    return fastwriter.BatchWriter(
        "moves", lambda moves: actions.move_tasks(moves, counts), max_batch=MAX_BATCH
    )


async def move(scope: Scope, receive: Receive, send: Send, match: Any) -> None:
    body = await admitted_body(scope, receive, send, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    if body is None:
        return None
    request = browser.django_request(scope, body)
    # In Django's order: the CSRF check (middleware), then sign-in (redirect), then the role.
    refused = browser.csrf_failure(request)
    if refused:
        return await error(send, 403, refused)
    user = await browser.session_user(request)
    if user is None:
        return await browser.send_django_response(send, redirect_to_login(request.get_full_path()))
    if user.role is None or RANK[user.role] < RANK["operator"]:
        return await error(send, 403, "This needs the operator role.")
    form = MoveForm(request.POST)
    if not form.is_valid():
        return await error(send, 400, form.errors.get_json_data())
    data = form.cleaned_data
    actor = Actor(AuditEvent.ActorType.USER, user.username, user.id)
    job = actions.Move(
        actor, int(match.group("pk")), data["status"], data["before"], data["version"]
    )
    try:
        result = await fastwriter.writer("moves", _writer).submit(job)
    except fastwriter.WriteFailed:
        return await refuse(send, Unavailable("The move was not saved; try again."))
    status, answer = _answer(result)
    return await respond(send, status, answer)
