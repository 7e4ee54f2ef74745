"""Template filters of the pipelines' pages (and of their presenters: from event data only)."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()

STATE_TEXT = {
    "awaiting_approval": "Awaiting approval",
    "changes_requested": "Changes requested",
    "pending": "Waiting for an answer",
}
TRIGGER_TEXT = {
    "manual": "by hand",
    "schedule": "on schedule",
    "api": "by API",
    "webhook": "by webhook",
}


@register.filter
def step_state_text(state: str) -> str:
    return STATE_TEXT.get(state, state.replace("_", " ").capitalize())


@register.filter
def trigger_text(trigger: str) -> str:
    return TRIGGER_TEXT.get(trigger, trigger)


@register.filter
def steps_done(steps: list[dict[str, Any]]) -> int:
    return sum(1 for s in steps if s["state"] in ("succeeded", "failed", "skipped", "cancelled"))


def columns(steps: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Steps in columns, each after every step it needs: the graph, left to right."""
    depth: dict[str, int] = {}
    remaining = sorted(steps, key=lambda s: s["position"])
    while remaining:
        placed = [s for s in remaining if all(n in depth for n in s["needs"])]
        if not placed:  # not a graph (cannot happen for a checked definition): in order
            placed = remaining[:1]
        for step in placed:
            depth[step["id"]] = 1 + max((depth.get(n, -1) for n in step["needs"]), default=-1)
            remaining.remove(step)
    out: list[list[dict[str, Any]]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for step in sorted(steps, key=lambda s: s["position"]):
        out[depth[step["id"]]].append(step)
    return out


@register.filter
def graph_columns(run: dict[str, Any]) -> list[list[dict[str, Any]]]:
    return columns(run["steps"])


@register.filter
def seconds_text(value: Any) -> str:
    from datetime import timedelta

    from missioncontrol.templatetags.mc import duration_text

    try:
        return duration_text(timedelta(seconds=float(value)))
    except (TypeError, ValueError):
        return ""


@register.filter
def nanos_money(value: Any) -> str:
    from decimal import Decimal

    from missioncontrol.templatetags.mc import money

    try:
        return money(Decimal(int(value)).scaleb(-9))
    except (TypeError, ValueError):
        return ""


@register.filter
def run_state_text(state: str, agent: str) -> str:
    from runs.presenters import run_state_text as text

    return text(state or "", agent)
