"""Scheduled jobs for tests, made through their actions (health, audit and events as in use)."""

from __future__ import annotations

from typing import Any

from crons import actions
from crons.models import Job
from missioncontrol.audit import Actor


def make_check(name: str = "db dump", **settings: Any) -> Job:
    """A direct check (default: every hour, like a job an admin adds)."""
    fields: dict[str, Any] = {"name": name, "kind": "every", "every_s": 3600}
    fields.update(settings)
    return actions.create_check(Actor.system("test"), fields)  # type: ignore[arg-type]
