"""Webhook endpoints for tests, saved through their action (a secret, audit and event each)."""

from __future__ import annotations

from typing import Any

from missioncontrol.audit import Actor
from webhooks import actions
from webhooks.models import Endpoint


def make_endpoint(
    url: str = "https://example.com/hook", types: list[str] | None = None, **kwargs: Any
) -> Endpoint:
    return actions.save_endpoint(
        Actor.system("test"), Endpoint(url=url, event_types=types or ["*"], **kwargs)
    )
