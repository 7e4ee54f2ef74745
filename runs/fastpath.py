"""Dispatch, `POST /api/v1/tasks/<id>/runs`, answered at the ASGI layer (#27's 100 a second).

Through Django and django-ninja a dispatch cost ~37 ms of the server's CPU (29 a second,
p99 947 ms: bench/runs.py, docs/benchmarks.md): two thirds of it the HTTP stack and the
request's own reads. Here the request is read and its body checked on the event loop, and the
dispatch goes to a group-commit writer (`runs.actions.dispatch_many`: many dispatches, one
transaction, each on a savepoint of its own), which also reads the person's token, role and
gateway grant in that transaction. Answers and refusals are those of the rest of the API (the
run in the run event's own shape; `{"error", "detail"}`); the route is documented in the API's
schema (runs/openapi.py). It is the only dispatch route of the API: there is no twin.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings

from missioncontrol import tokens
from missioncontrol.audit import Actor
from missioncontrol.errors import ActionError, Invalid, Unauthenticated, Unavailable
from missioncontrol.fastpath import writer as fastwriter
from missioncontrol.fastpath.http import (
    Receive,
    Scope,
    Send,
    admitted_body,
    header,
    refuse,
    respond,
)
from missioncontrol.http import text_problem
from runs import access, actions, events
from runs.models import Run

MAX_BATCH = 200
PATTERN = r"^/api/v1/tasks/(?P<pk>[0-9]{1,18})/runs/?$"
NO_TOKEN = "Send a person's API token as 'Authorization: Bearer mct_…'."


def parse(body: bytes, task_id: int, idempotency_key: str) -> actions.Dispatch:
    """The request's dispatch order: an empty body, or a JSON object with `instructions`
    (text) and `land_in` (review | done); other fields are ignored, as the API's schemas do."""
    if not body.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise Invalid({"body": ["The body is not valid JSON."]}) from None
    if not isinstance(data, dict):
        raise Invalid({"body": ["Send a JSON object."]})
    instructions, land_in = data.get("instructions", ""), data.get("land_in", "review")
    problems: dict[str, list[str]] = {}
    if not isinstance(instructions, str):
        problems["instructions"] = ["Input should be a valid string"]
    elif problem := text_problem(instructions):
        problems["instructions"] = [problem]
    if land_in not in Run.LandIn.values:
        problems["land_in"] = ["Input should be 'review' or 'done'"]
    if problems:
        raise Invalid(problems)
    return actions.Dispatch(task_id, instructions, land_in, idempotency_key)


def _admitted(
    authorization: str, task_id: int, known: dict[str, tuple[int, Any]]
) -> Callable[[], Actor]:
    """Who asks, read on the writer's thread in the batch's transaction: the token's person
    (an operator at least), allowed to operate the task's agent's gateway. `known`: the
    batch's tokens already read (one person's many dispatches read it once; each still counts
    against its rate limit)."""

    def admit() -> Actor:
        user = tokens.authenticate(authorization, least="operator", known=known)
        access.check_dispatch(user, task_id)
        return Actor.user(user)

    return admit


def _apply(
    jobs: list[tuple[str, actions.Dispatch]],
) -> list[tuple[int, dict[str, Any]] | ActionError]:
    """On the writer's thread: the batch, then each answer (the run as its events carry it:
    reading it may query, which the event loop's thread must not)."""
    known: dict[str, tuple[int, Any]] = {}
    orders = [(_admitted(auth, order.task_id, known), order) for auth, order in jobs]
    return [
        result
        if isinstance(result, ActionError)
        else (202 if result[1] else 200, {"run": events.run_data(result[0])})
        for result in actions.dispatch_many(orders)
    ]


def _writer() -> fastwriter.BatchWriter:
    return fastwriter.BatchWriter("dispatches", _apply, max_batch=MAX_BATCH)


async def dispatch(scope: Scope, receive: Receive, send: Send, match: Any) -> None:
    body = await admitted_body(scope, receive, send, settings.MC_API_MAX_BODY)
    if body is None:
        return None
    authorization = header(scope, b"authorization") or ""
    if not tokens.is_token(tokens.bearer(authorization)):
        # No credential, or an agent's key: dispatching is a person's (an operator's).
        return await refuse(send, Unauthenticated(NO_TOKEN))
    task_id = int(match.group("pk"))
    try:
        order = parse(body, task_id, header(scope, b"idempotency-key") or "")
    except ActionError as refused:
        return await refuse(send, refused)
    try:
        result = await fastwriter.writer("dispatches", _writer).submit((authorization, order))
    except fastwriter.WriteFailed:
        return await refuse(send, Unavailable("The dispatch was not saved; try again."))
    if isinstance(result, ActionError):
        return await refuse(send, result)
    status, answer = result
    return await respond(send, status, answer)
