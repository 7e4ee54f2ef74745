"""GET /api/v1/events: Server-Sent Events for an agent — changes to its tasks and comments on them.

Authenticated with the agent's key. Resumes with Last-Event-ID (the global seq) through the
same replay rules as the browsers' stream (missioncontrol.live.Subscription).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from channels.db import database_sync_to_async
from django.http import HttpRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase

from agents import keys
from agents.models import AgentKey
from missioncontrol import live
from missioncontrol.http import json_error
from tasks.models import Task

KEEPALIVE_S = 15.0


def _task_json(task_id: int, agent_id: int) -> dict[str, Any] | None:
    """The task as the agent sees it, if it is (or just stopped being) the agent's."""
    row = (
        Task.objects.filter(pk=task_id)
        .values("title", "status", "priority", "blocked", "assignee_agent_id", "version")
        .first()
    )
    if row is None:
        return {"id": task_id, "deleted": True}
    if row["assignee_agent_id"] != agent_id:
        return None
    return {
        "id": task_id,
        "title": row["title"],
        "status": row["status"],
        "priority": Task.Priority(row["priority"]).label.lower(),
        "blocked": row["blocked"],
        "version": row["version"],
        "url": f"/tasks/{task_id}/",
    }


async def _frame(text: str, agent_id: int) -> str | None:
    """An agent-facing SSE frame for a board event, or None if it is not about its tasks."""
    message = json.loads(text)
    if message.get("type") != "event":
        return f"data: {text}\n\n"  # ready / resync
    task_id = (message.get("payload") or {}).get("task")
    if not isinstance(task_id, int):
        return None
    task = await database_sync_to_async(_task_json)(task_id, agent_id)
    if task is None:
        return None
    body = json.dumps(
        {"type": message["event"], "seq": message["seq"], "task": task}, separators=(",", ":")
    )
    return f"id: {message['seq']}\nevent: {message['event']}\ndata: {body}\n\n"


async def _stream(sub: live.Subscription, since: int | None, agent_id: int) -> AsyncIterator[str]:
    yield "retry: 2000\n\n"
    async for text in live.follow(sub, since, KEEPALIVE_S):
        if text is None:
            yield ": keep-alive\n\n"
            continue
        frame = await _frame(text, agent_id)
        if frame:
            yield frame


async def agent_events(request: HttpRequest) -> HttpResponseBase:
    if request.method != "GET":
        return json_error(405, "method_not_allowed", "Use GET.")
    raw = request.headers.get("Authorization", "")
    raw = raw[7:] if raw.lower().startswith("bearer ") else request.headers.get("X-Api-Key", "")
    if not raw:
        return json_error(401, "unauthenticated", "Send the agent's API key.")
    key = await database_sync_to_async(keys.verify)(raw)
    if key is None:
        return json_error(401, "unauthenticated", "This API key is unknown, revoked or expired.")
    if key.kind != AgentKey.Kind.AGENT or key.agent_id is None:
        return json_error(403, "forbidden", "Only an agent's own key has events.")
    last_id = request.headers.get("Last-Event-ID", "") or request.GET.get("since", "")
    since = int(last_id) if last_id.isdigit() else None
    # Agents see task events as a viewer would, filtered to their own tasks.
    sub = live.Subscription(["board"], "viewer")
    response = StreamingHttpResponse(
        _stream(sub, since, key.agent_id), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
