"""Shared by the notification tests: team channels and people with rules, one evaluation and
flush as the evaluator loop makes them, and the gateway / agent troubles they are told of."""

from __future__ import annotations

from datetime import time
from typing import Any

from django.utils import timezone

from agents.models import Agent
from gateways.models import Gateway
from missioncontrol.audit import Actor
from notifications import actions, loops
from notifications.models import Channel, Message, Rule
from tests.gateways.factories import make_gateway

ADMIN = Actor.system("tests")


def team_channel(
    kind: str = "slack", url: str = "https://hooks.example.com/x", **rule: Any
) -> Channel:
    channel = actions.save_channel(
        ADMIN, actions.ChannelInput(kind=kind, name=f"{kind} team", target=url)
    )
    if rule:
        Rule.objects.filter(channel=channel).update(**rule)
    return channel


def personal(user: Any, kind: str = "email", target: str = "", **rule: Any) -> Channel:
    channel = actions.save_channel(
        ADMIN,
        actions.ChannelInput(kind=kind, name="mine", target=target or user.email),
        owner_id=user.pk,
    )
    actions.save_rule(ADMIN, actions.default_rule("UTC"), user_id=user.pk)
    if rule:
        Rule.objects.filter(user=user).update(**rule)
    return channel


def step() -> list[Message]:
    """One look at Needs attention and one flush, as the evaluator loop does."""
    loops.evaluate_now()
    return actions.flush()


def down(name: str = "prod") -> Gateway:
    """A gateway that is not connected (a new one is connecting)."""
    return make_gateway(name=name)


def connect(gateway: Gateway) -> None:
    Gateway.objects.filter(pk=gateway.pk).update(
        state=Gateway.State.CONNECTED, state_since=timezone.now()
    )


def disconnect(gateway: Gateway) -> None:
    Gateway.objects.filter(pk=gateway.pk).update(
        state=Gateway.State.UNREACHABLE, state_since=timezone.now()
    )


def failing_agents(n: int, gateway: Gateway | None = None) -> list[Agent]:
    return [
        Agent.objects.create(
            name=f"worker-{i}", status=Agent.Status.ERROR, gateway=gateway, last_message="crashed"
        )
        for i in range(n)
    ]


def quiet(start: str, end: str) -> dict[str, Any]:
    return {"quiet_start": time.fromisoformat(start), "quiet_end": time.fromisoformat(end)}
