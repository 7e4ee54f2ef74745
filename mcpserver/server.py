"""The MCP server itself: the official SDK's `MCPServer` with Mission Control's tools.

- Each principal lists and calls only its tools (`tools.ACCESS`): an agent's key, the agents'
  tools; a person's token, the operators' tools their role allows (a viewer's: read-only ones).
  Calling another's tool is a tool error (forbidden), like any refusal.
- Every refusal is a tool error (`isError`), never a transport failure: its text and its
  structured content are the API's `{"error": code, "detail": ...}` — an action's refusal with
  its code, bad arguments as `validation_error` naming each field, anything unexpected logged
  and answered `server_error` without its details.
- Every call is audited: who, which tool, its target (a task, a run …) and whether it was
  refused — in the audit log, written by a group-commit writer (many calls' rows in one
  statement); the activity feed shows only the changes the actions record.
- Synchronous tools run on the MCP server's database threads (mcpserver/threads.py).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from django.utils import timezone
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from mcp_types import Resource as MCPResource
from pydantic import ValidationError

from mcpserver import threads, tools
from mcpserver.principal import Principal, current
from missioncontrol import audit, state
from missioncontrol.errors import CODES, ActionError, Forbidden, Invalid, error_body
from missioncontrol.fastpath import writer as fastwriter

logger = logging.getLogger("mcpserver")

INSTRUCTIONS = """Mission Control runs a fleet of AI agents: a task board (inbox, backlog, todo,
in_progress, review, done), runs of tasks by agents, pipelines and approvals, costs.
Agents: call whoami, then my_tasks; claim_task to start one (you hold its run), report_progress
as you work (it shows live and keeps your lease), finish_run with your reply when done.
People: needs_attention answers "what needs me now?"; fleet_status, running_now and spend
describe the fleet."""

# Arguments named in the audit row as the call's target, in this order.
TARGETS = ("task_id", "approval_id", "pipeline", "agent")


def error_result(refused: ActionError) -> CallToolResult:
    body = refused.body()
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(body, default=str))],
        structured_content=body,
        is_error=True,
    )


def _failed() -> CallToolResult:
    body = error_body(CODES[500], "The server failed on this call; it was logged.")
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(body))],
        structured_content=body,
        is_error=True,
    )


def _field_errors(failed: ValidationError) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for item in failed.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "arguments") or "arguments"
        found.setdefault(where, []).append(
            str(item.get("msg", "Invalid.")).removeprefix("Value error, ")
        )
    return found


def _target(arguments: dict[str, Any]) -> str:
    for name in TARGETS:
        value = arguments.get(name)
        if value not in (None, ""):
            return f"{name.removesuffix('_id')} {value}"[:200]
    return ""


def _entry(who: Principal, name: str, arguments: dict[str, Any], refused: str) -> audit.Entry:
    after: dict[str, Any] = {"tool": name}
    if refused:
        after["refused"] = refused
    return audit.Entry(
        who.actor,
        "mcp.tool_called",
        object_type="mcp.tool",
        object_id=name,
        object_repr=_target(arguments) or name,
        after=after,
    )


def _write_audit(entries: list[audit.Entry]) -> list[bool]:
    """The audit writer's batch: every waiting call's row in one INSERT."""
    audit.record_many(entries, feed=False)
    return [True] * len(entries)


async def _audit(who: Principal, name: str, arguments: dict[str, Any], refused: str) -> None:
    writer = fastwriter.writer(
        "mcp-audit", lambda: fastwriter.BatchWriter("mcp-audit", _write_audit, max_batch=200)
    )
    try:
        await writer.submit(_entry(who, name, arguments, refused))
    except fastwriter.WriteFailed:
        logger.error("mcp: the audit row of %s by %s was not written", name, who.label)


# What an agent's successful call says of it, as a heartbeat would: (status, its task, words).
def _beat_of(name: str, arguments: dict[str, Any], result: Any) -> tuple[str | None, Any, Any]:
    run = (getattr(result, "structured_content", None) or {}).get("run") or {}
    if name == "claim_task":
        return "busy", run.get("task_id"), None
    if name == "report_progress":
        return "busy", run.get("task_id"), str(arguments.get("text", ""))[:500]
    if name == "finish_run":
        return "idle", None, None
    return None, None, None


_beats: set[asyncio.Task[Any]] = set()
# A call that changes nothing of the agent's state is a heartbeat at most this often per agent.
BEAT_EVERY_S = 5.0
_last_beat: dict[int, float] = {}


def _heartbeat(who: Principal, name: str, arguments: dict[str, Any], result: Any) -> None:
    """An agent's call over MCP is a heartbeat (an MCP client sends no other): it is seen, its
    runs' leases are renewed, and claiming, reporting and finishing set it busy or idle with its
    task and words, as on the Agents page. Sent through the heartbeats' own group-commit writer,
    not waited for (the call's answer does not depend on it)."""
    from agents import ingest

    if who.key is None or who.key.agent_id is None:
        return
    status, task_id, message = (
        _beat_of(name, arguments, result) if not result.is_error else (None, None, None)
    )
    now = time.monotonic()
    if status is None and now - _last_beat.get(who.key.agent_id, -BEAT_EVERY_S) < BEAT_EVERY_S:
        return  # seen a moment ago: a plain call says nothing new
    _last_beat[who.key.agent_id] = now
    if len(_last_beat) > 10_000:
        _last_beat.clear()
    cleaned: dict[str, Any] = {
        "status": status,
        "task_id": task_id,
        "message": message,
        "usage": [],
    }
    job = ingest.Job(kind="heartbeat", key=who.key, cleaned=cleaned, received_at=timezone.now())
    sent = asyncio.ensure_future(fastwriter.writer("ingest", ingest.IngestWriter).submit(job))
    _beats.add(sent)
    sent.add_done_callback(_beat_sent)


def _beat_sent(sent: asyncio.Task[Any]) -> None:
    _beats.discard(sent)
    if not sent.cancelled() and sent.exception() is not None:
        logger.warning("mcp: an agent's heartbeat was not stored: %r", sent.exception())


def _in_thread(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A synchronous tool as the SDK's async callable (same signature, for its schema)."""

    @functools.wraps(fn)
    async def call(**kwargs: Any) -> Any:
        return await threads.run(fn, **kwargs)

    return call


class Server(MCPServer):
    """MCPServer with each principal's tools, refusals in the API's shape, and an audit row."""

    async def list_resources(self) -> list[Any]:
        """Your open tasks, each `task://{id}` (the template reads any you may see)."""
        rows = await threads.run(tools.task_resources)
        return [
            MCPResource(
                uri=f"task://{pk}",
                name=f"task-{pk}",
                title=f"#{pk} {title}"[:200],
                description=f"Task #{pk} ({status}), with its thread and runs.",
                mime_type="text/markdown",
            )
            for pk, title, status in rows
        ]

    async def list_tools(self) -> list[Any]:
        who = current()
        return [t for t in await super().list_tools() if who.may(tools.ACCESS[t.name])]

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> Any:
        who = current()
        access = tools.ACCESS.get(name)
        result: Any
        if access is None:
            result = error_result(Invalid({"name": [f"There is no tool called {name!r}."]}))
        elif not who.may(access):
            needs = "an agent's key" if access == "agent" else f"a person's token ({access} role)"
            result = error_result(Forbidden(f"{name} needs {needs}."))
        else:
            try:
                result = await super().call_tool(name, arguments, context)
            except ToolError as failed:
                cause = failed.__cause__
                if isinstance(cause, ActionError):
                    result = error_result(cause)
                elif isinstance(cause, ValidationError):
                    result = error_result(Invalid(_field_errors(cause)))
                else:
                    logger.error("mcp: tool %s failed", name, exc_info=cause or failed)
                    result = _failed()
        refused = ""
        if getattr(result, "is_error", False):
            refused = str((result.structured_content or {}).get("error", "error"))
        await _audit(who, name, arguments or {}, refused)
        if who.kind == "agent":
            _heartbeat(who, name, arguments or {}, result)
        return result


state.register("mcp heartbeats", _last_beat.clear)


def build() -> Server:
    server = Server(
        name="mission-control",
        title="Mission Control",
        instructions=INSTRUCTIONS,
        version="1",
        log_level="WARNING",
    )
    for tool in tools.TOOLS:
        name = tool.__name__
        read_only = name in tools.READ_ONLY
        server.add_tool(
            tool if inspect.iscoroutinefunction(tool) else _in_thread(tool),
            name=name,
            title=name.replace("_", " ").capitalize(),
            description=inspect.getdoc(tool),
            annotations=ToolAnnotations(
                read_only_hint=read_only,
                destructive_hint=False,
                idempotent_hint=read_only,
                open_world_hint=False,
            ),
            structured_output=True,
        )
    server.resource(
        "task://{task_id}",
        name="task",
        title="Task",
        description="A task on the board with its description, thread and runs (markdown).",
        mime_type="text/markdown",
    )(_resource(tools.task_markdown))
    return server


def _resource(fn: Callable[..., str]) -> Callable[..., Any]:
    """A resource read: in a thread like a tool, audited, refusals as the SDK's resource errors
    (the client gets an error naming why, never a failure)."""

    @functools.wraps(fn)
    async def call(**kwargs: Any) -> str:
        who = current()
        try:
            text: str = await threads.run(fn, **kwargs)
        except ActionError as refused:
            await _audit(who, "resource:task", kwargs, refused.code)
            raise ResourceError("; ".join(refused.messages)) from None
        await _audit(who, "resource:task", kwargs, "")
        return text

    return call
