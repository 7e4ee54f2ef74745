"""The Agents pages' presenter: agent events (agents/events.py) as DOM ops for browsers.

After commit, once per event, from the event's data alone (a replay renders the same ops).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.template.loader import render_to_string
from django.utils.dateparse import parse_datetime

from agents import events, rows
from agents.models import Agent, AgentSession
from gateways.models import Gateway
from missioncontrol import live


def row_agent(data: events.AgentData) -> Agent:
    """An unsaved Agent carrying what its row shows (never saved)."""
    agent = Agent(
        pk=data["id"],
        name=data["name"],
        source=data["source"],
        framework=data["framework"],
        role=data["role"],
        status=data["status"],
        last_seen_at=parse_datetime(data["last_seen_at"]) if data["last_seen_at"] else None,
        last_message=data["last_message"],
        model=data["model"],
        current_task_id=data["current_task_id"],
        external_id=data.get("external_id", ""),
    )
    badge = data.get("gateway")
    if badge:
        # Unsaved, from the event: the row shows the badge with no query.
        agent.gateway = Gateway(pk=badge["id"], name=badge["name"], colour=badge["colour"])
    rows.with_facts(agent, data["facts"])
    return agent


def row_ops(data: events.AgentData, fleet: events.FleetData) -> list[live.Op]:
    """The agent's row in its place, its status badge on its own page, the status counts."""
    agent = row_agent(data)
    nxt = fleet["next_agent_id"]
    ops: list[live.Op] = [
        {
            "op": "upsert",
            "id": f"agent-{agent.pk}",
            "parent": "agent-rows",
            "before": f"agent-{nxt}" if nxt else None,
            "html": render_to_string("agents/list.html#agent_row", {"agent": agent}),
        },
        {"op": "text", "id": f"agent-status-{agent.pk}", "text": agent.get_status_display()},
        {
            "op": "attr",
            "id": f"agent-status-{agent.pk}",
            "name": "data-status",
            "value": agent.status,
        },
    ]
    ops += [
        {"op": "text", "id": f"agent-count-{status}", "text": f"{n:,}"}
        for status, n in fleet["status_counts"].items()
    ]
    return ops


@live.presents("agent.registered", "agent.created", "agent.status_changed")
def agent_changed(event: dict[str, Any]) -> live.BrowserPayload:
    return {"ops": row_ops(event["agent"], event["fleet"])}


@live.presents("agent.seen")
def agent_seen(event: dict[str, Any]) -> live.BrowserPayload:
    # Its row in the list (`agent-N`) and its own page's head (`agent-head-N`): one id per
    # fragment (the head once shared the row's id, and a row's upsert took the head away).
    return {
        "ops": [
            {
                "op": "attr",
                "id": f"{fragment}-{seen['id']}",
                "name": "data-seen",
                "value": str(seen["last_seen_at"]),
            }
            for seen in event["agents"]
            for fragment in ("agent", "agent-head")
        ]
    }


# --- Sessions -----------------------------------------------------------------------------------


def _session(data: events.SessionData) -> AgentSession:
    """An unsaved AgentSession carrying what its row shows (never saved; no query)."""
    badge = data["gateway"]
    session = AgentSession(
        pk=data["id"],
        gateway_id=badge["id"],
        agent_id=data["agent_id"],
        key=data["key"],
        label=data["label"],
        status=data["status"],
        model=data["model"],
        has_active_run=data["has_active_run"],
        input_tokens=data["input_tokens"],
        output_tokens=data["output_tokens"],
        total_tokens=data["total_tokens"],
        cost_usd=Decimal(data["cost_usd"]) if data["cost_usd"] is not None else None,
        last_message_preview=data["last_message_preview"],
        last_activity_at=parse_datetime(data["last_activity_at"])
        if data["last_activity_at"]
        else None,
        gone=data["gone"],
    )
    session.gateway = Gateway(pk=badge["id"], name=badge["name"], colour=badge["colour"])
    if data["agent_id"]:
        session.agent = Agent(
            pk=data["agent_id"],
            name=data["agent_name"],
            external_id=data["agent_display"]
            if data["agent_display"] != data["agent_name"]
            else "",
        )
    return session


@live.presents("session.changed")
def session_changed(event: dict[str, Any]) -> live.BrowserPayload:
    session = _session(event["session"])
    return {
        "ops": [
            {
                "op": "upsert",
                "id": f"session-{session.pk}",
                "parent": "session-rows",
                "first": True,  # newest activity first, as the page orders them
                "html": rows.row(session),
            },
            {
                "op": "upsert",
                "id": f"session-head-{session.pk}",
                "html": rows.head(session),
            },
        ]
    }


def _line(session_id: int, line: dict[str, Any]) -> live.Op:
    return {
        "op": "upsert",
        "id": f"msg-{line['id']}",
        "parent": f"transcript-{session_id}",
        "html": render_to_string("agents/session.html#transcript_line", {"line": line}),
    }


@live.presents("session.message")
def session_message(event: dict[str, Any]) -> live.BrowserPayload:
    line = {
        "id": event["message_id"],
        "role": event["role"],
        "text": event["text"],
        "at": parse_datetime(event["at"]) if event["at"] else None,
        "streaming": event["streaming"],
    }
    ops: list[live.Op] = [_line(event["session_id"], line)]
    if event.get("run_id"):
        ops.insert(0, {"op": "remove", "id": f"msg-run-{event['run_id']}"})
    return {"ops": ops}


@live.presents("session.run_ended")
def session_run_ended(event: dict[str, Any]) -> live.BrowserPayload:
    ops: list[live.Op] = [{"op": "remove", "id": f"msg-run-{event['run_id']}"}]
    if event["text"]:
        line = {"id": f"end-{event['run_id']}", "role": event["role"], "text": event["text"]}
        ops.append(_line(event["session_id"], line))
    return {"ops": ops}
