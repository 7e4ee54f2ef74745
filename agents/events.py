"""The agent domain events: what agents/actions.py publishes on the `fleet` topic.

Domain data only (ids, fields, before/after, actor); the Agents pages' presenter
(agents/presenters.py), webhooks and the overview read them. Catalogue: docs/events.md.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal, TypedDict

from agents.models import Agent, AgentSession
from missioncontrol.audit import ActorData


class AgentData(TypedDict):
    """An agent as an event carries it (everything its row on the Agents page shows)."""

    id: int
    name: str
    source: str
    framework: str
    role: str
    status: str
    last_seen_at: str | None
    last_message: str
    model: str
    current_task_id: int | None
    gateway_id: int | None
    # The gateway's badge (name and colour) and the agent's id on it; None / "" for direct agents.
    gateway: GatewayBadge | None
    external_id: str
    url: str
    # What other apps say of it on its row (the task's title, 24 h cost, a budget's pause): in
    # the event, so a replay renders what the live push did.
    facts: RowFacts


class RowFacts(TypedDict, total=False):
    """What other apps add to an agent's row; agents' core knows neither tasks nor billing, so
    each registers a source of its facts (register_row_facts)."""

    task_title: str  # the title of the task it works on (tasks)
    cost_24h: str  # its cost over the last 24 hours, USD (billing; absent: no usage)
    paused: str  # why a spent budget pauses it (billing; absent: not paused)
    run_task_id: int  # the task of a run it is running (runs; absent: none)
    run_task_title: str


RowFactsSource = Callable[[list[Agent]], dict[int, RowFacts]]
_row_facts: list[RowFactsSource] = []


def register_row_facts(source: RowFactsSource) -> None:
    """`source(agents)` answers {agent id: facts} for a list of agents (a query or so for all)."""
    _row_facts.append(source)


def row_facts(agents: list[Agent]) -> dict[int, RowFacts]:
    merged: dict[int, RowFacts] = {agent.pk: {} for agent in agents}
    if agents:
        for source in _row_facts:
            for pk, facts in source(agents).items():
                merged[pk].update(facts)
    return merged


class GatewayBadge(TypedDict):
    id: int
    name: str
    colour: str


class FleetData(TypedDict):
    """Where the agent's row now sits on the Agents page (the agent listed below it) and the
    number of agents in each status."""

    next_agent_id: int | None
    status_counts: dict[str, int]


class AgentAdded(TypedDict):
    """An agent appeared: registered itself with an enrollment key, or was created by someone."""

    type: Literal["agent.registered", "agent.created"]
    actor: ActorData
    agent: AgentData
    fleet: FleetData


class AgentStatusChanged(TypedDict):
    type: Literal["agent.status_changed"]
    actor: ActorData
    agent: AgentData
    before: str
    after: str
    reason: str
    fleet: FleetData


class AgentSeen(TypedDict):
    """Agents heard from (coalesced: one event a second for every agent that sent a heartbeat)."""

    type: Literal["agent.seen"]
    agents: list[dict[str, int | str]]


def agent_data(agent: Agent, facts: RowFacts | None = None) -> AgentData:
    """`facts`: the agent's from row_facts, when the caller read them for many at once."""
    return {
        "id": agent.pk,
        "name": agent.name,
        "source": agent.source,
        "framework": agent.framework,
        "role": agent.role,
        "status": agent.status,
        "last_seen_at": agent.last_seen_at.isoformat() if agent.last_seen_at else None,
        "last_message": agent.last_message,
        "model": agent.model,
        "current_task_id": agent.current_task_id,
        "gateway_id": agent.gateway_id,
        "gateway": {
            "id": agent.gateway.pk,
            "name": agent.gateway.name,
            "colour": agent.gateway.colour,
        }
        if agent.gateway_id and agent.gateway is not None
        else None,
        "external_id": agent.external_id,
        "url": f"/agents/{agent.name}/",
        "facts": row_facts([agent])[agent.pk] if facts is None else facts,
    }


def seen(at: dict[int, datetime]) -> AgentSeen:
    return {
        "type": "agent.seen",
        "agents": [{"id": pk, "last_seen_at": when.isoformat()} for pk, when in at.items()],
    }


class SessionData(TypedDict):
    """A gateway session as events carry it (what its row on the Sessions page shows)."""

    id: int
    gateway: GatewayBadge
    agent_id: int | None
    agent_name: str
    agent_display: str
    key: str
    label: str
    status: str
    model: str
    has_active_run: bool
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: str | None
    last_message_preview: str
    last_activity_at: str | None
    gone: bool


class SessionChanged(TypedDict):
    type: Literal["session.changed"]
    session: SessionData


class SessionMessage(TypedDict):
    """A transcript line the gateway appended (`session.message`), or a streaming reply so far."""

    type: Literal["session.message"]
    session_id: int
    gateway_id: int
    message_id: str
    role: str
    text: str
    at: str | None
    streaming: bool
    run_id: str  # the run a finished reply ended ("" otherwise)


class SessionRunEnded(TypedDict):
    """A run ended: its streaming line goes; `text` is its error (or "Run aborted.") if any."""

    type: Literal["session.run_ended"]
    session_id: int
    gateway_id: int
    run_id: str
    role: str
    text: str


def session_data(session: AgentSession) -> SessionData:
    gateway = session.gateway
    agent = session.agent
    return {
        "id": session.pk,
        "gateway": {"id": gateway.pk, "name": gateway.name, "colour": gateway.colour},
        "agent_id": session.agent_id,
        "agent_name": agent.name if agent else "",
        "agent_display": agent.display_name if agent else "",
        "key": session.key,
        "label": session.label,
        "status": session.status,
        "model": session.model,
        "has_active_run": session.has_active_run,
        "input_tokens": session.input_tokens,
        "output_tokens": session.output_tokens,
        "total_tokens": session.total_tokens,
        "cost_usd": str(session.cost_usd) if session.cost_usd is not None else None,
        "last_message_preview": session.last_message_preview,
        "last_activity_at": session.last_activity_at.isoformat()
        if session.last_activity_at
        else None,
        "gone": session.gone,
    }
