"""Rendering a gateway session's row (Sessions page) and head (its own page): one template
each, cached by what rarely changes.

A busy gateway changes its sessions hundreds of times a second (tokens, preview, time), and
each change is pushed as the row's HTML. Rendering the partial took half the writer thread's
time at 1,000 changes/s, so the HTML is cached (missioncontrol/fragments.py) under what the
row shows that seldom changes — the session, its title, gateway, agent, status and model —
with marks where the often-changing values go: preview, tokens, cost and last activity. The
session's own id, link, title and key are marks too, so one entry serves every session of an
agent in the same state: a gateway's first changes after a re-sync (thousands of sessions
never rendered in this process) hit the cache instead of rendering each row once (that was
the event → browser tail in bench/gateways.py). The page and the live push render through
here alike, so they never differ.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator

from agents.events import RowFacts
from agents.models import Agent, AgentSession
from missioncontrol.fragments import FragmentCache, mark
from missioncontrol.templatetags.mc import ago, num

_rows = FragmentCache("session row cache", 5000)
_heads = FragmentCache("session head cache", 2000)
VALUES = ("pk", "href", "title", "long_title", "key", "preview", "tokens", "cost", "ago", "at")


def with_facts(agent: Agent, facts: RowFacts) -> Agent:
    """The agent as its row on the Agents page shows it: with what other apps say of it (the
    task it works on, its 24 h cost, a budget's pause). The page and the live push alike."""
    title = facts.get("task_title")
    if title is not None:
        working_on: dict[str, Any] | None = {"pk": agent.current_task_id, "title": title}
    elif "run_task_id" in facts and agent.current_task_id is None:
        # What a run it is running works on, when its own reports name no task.
        working_on = {"pk": facts["run_task_id"], "title": facts.get("run_task_title", "")}
    else:
        working_on = None
    agent.current_task = working_on  # type: ignore[attr-defined]
    cost = facts.get("cost_24h")
    agent.cost_24h = Decimal(cost) if cost is not None else None  # type: ignore[attr-defined]
    reason = facts.get("paused")
    agent.paused = {"reason": reason} if reason is not None else None  # type: ignore[attr-defined]
    return agent


def _truncated(text: str, length: int) -> str:
    """As the `truncatechars` filter shows it, escaped."""
    return escape(Truncator(text).chars(length))


def values(session: AgentSession) -> dict[str, str]:
    """The session's own and often-changing values as the row shows them (escaped)."""
    preview = session.last_message_preview
    return {
        "pk": str(session.pk),
        "href": reverse("agents:session", args=[session.pk]),
        "title": _truncated(session.title, 48),
        "long_title": _truncated(session.title, 80),
        "key": escape(session.key),
        "preview": escape(preview[:79] + "…" if len(preview) > 80 else preview),
        "tokens": num(session.total_tokens),
        "cost": f"${session.cost_usd:.4f}" if session.cost_usd is not None else "—",
        "ago": escape(ago(session.last_activity_at)),
        "at": timezone.localtime(session.last_activity_at).strftime("%Y-%m-%d %H:%M:%S")
        if session.last_activity_at
        else "",
    }


def _key(session: AgentSession) -> tuple[Any, ...]:
    gateway, agent = session.gateway, session.agent
    return (
        gateway.pk,
        gateway.name,
        gateway.colour,
        agent.pk if agent else None,
        agent.name if agent else "",
        agent.display_name if agent else "",
        session.status,
        session.gone,
        session.has_active_run,
        session.model,
        bool(session.last_message_preview),
        bool(session.label),
    )


def _cached(cache: FragmentCache, template: str, session: AgentSession) -> SafeString:
    def render() -> str:
        return render_to_string(
            template, {"session": session, "shown": {name: mark(name) for name in VALUES}}
        )

    html = cache.render(_key(session), render, values(session))
    return mark_safe(html)  # noqa: S308 - our template's output, values escaped above


def row(session: AgentSession) -> SafeString:
    """The session's row on the Sessions page (`agents/sessions.html#session_row`)."""
    return _cached(_rows, "agents/sessions.html#session_row", session)


def head(session: AgentSession) -> SafeString:
    """The head of the session's page (`agents/session.html#session_head`)."""
    return _cached(_heads, "agents/session.html#session_head", session)
