"""GET /api/v1/events: Server-Sent Events for an agent — changes to its tasks and comments on them.

Authenticated with the agent's key. Resumes with Last-Event-ID (the global seq) through the
same replay rules as the browsers' stream (missioncontrol.subscriptions.Subscription), reading the task
events' data directly (no query per event).
"""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from agents import keys
from missioncontrol import streaming, subscriptions
from missioncontrol.errors import ActionError, error_response, json_error
from missioncontrol.http import parse_int

KEEPALIVE_S = 15.0
KEY_CHECK_S = 1.0


def _was_assigned(data: dict[str, Any], agent_id: int) -> bool:
    """Whether the event's task belongs, or until this event belonged, to the agent."""
    if _assignee_id(data.get("task", {}).get("assignee")) == agent_id:
        return True
    change = data.get("changes", {}).get("assignee")
    return bool(change) and _assignee_id(change.get("before")) == agent_id


def _assignee_id(assignee: Any) -> int | None:
    if isinstance(assignee, dict) and assignee.get("type") == "agent":
        return assignee.get("id")
    return None


def frame(text: str, agent_id: int) -> str | None:
    """An agent-facing SSE frame for a board event, or None if it is not about its tasks."""
    message = json.loads(text)
    if message.get("type") != "event":
        return f"data: {text}\n\n"  # ready / resync
    data = message.get("data") or {}
    task = data.get("task")
    if not isinstance(task, dict) or not _was_assigned(data, agent_id):
        return None
    if message["event"] == "run.progress":
        return None  # what the agent said itself
    if message["event"] == "task.deleted":
        shown: dict[str, Any] = {"id": task["id"], "deleted": True}
    elif _assignee_id(task.get("assignee")) != agent_id:
        shown = {"id": task["id"], "unassigned": True}
    else:
        shown = {
            k: task[k] for k in ("id", "title", "status", "priority", "blocked", "version", "url")
        }
    out: dict[str, Any] = {"type": message["event"], "seq": message["seq"], "task": shown}
    run = data.get("run")
    if isinstance(run, dict):
        out["run"] = {k: run.get(k) for k in ("id", "attempt", "state", "land_in", "url")}
    body = json.dumps(out, separators=(",", ":"))
    return f"id: {message['seq']}\nevent: {message['event']}\ndata: {body}\n\n"


def _key_still_good(raw: str) -> subscriptions.StillAllowed:
    """The key that opened the stream must still be good: a revoked (or expired, or deleted)
    key ends it within KEY_CHECK_S + the key cache's own check (≤ 2 s)."""

    async def check(sub: subscriptions.Subscription) -> bool:
        return await database_sync_to_async(keys.verify)(raw) is not None

    return check


@csrf_exempt  # authenticated by the agent's key, never by cookies
async def agent_events(request: HttpRequest) -> HttpResponseBase:
    if request.method != "GET":
        refused = json_error(405, "Use GET.")
        refused["Allow"] = "GET"
        return refused
    try:
        key = await keys.aauthenticate(
            request.headers.get("Authorization"), request.headers.get("X-Api-Key")
        )
    except ActionError as refused:
        return error_response(refused)
    assert key.agent_id is not None
    raw = keys.from_headers(request.headers.get("Authorization"), request.headers.get("X-Api-Key"))
    last_id = request.headers.get("Last-Event-ID", "") or request.GET.get("since", "")
    since = parse_int(last_id)
    # Agents see task events as a viewer would (their data, not the browsers' ops), filtered to
    # their own tasks.
    sub = subscriptions.Subscription(["board"], "viewer", form="data")
    agent_id = key.agent_id
    return streaming.event_stream(
        "retry: 2000\n\n",
        subscriptions.sse(
            sub,
            since,
            still_allowed=_key_still_good(raw),
            frame=lambda text: frame(text, agent_id),
            keepalive_s=KEEPALIVE_S,
            check_s=KEY_CHECK_S,
        ),
        what="agent event stream",
    )
