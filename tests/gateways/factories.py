from __future__ import annotations

from typing import Any

from gateways import actions
from gateways.models import Gateway
from missioncontrol.audit import Actor


def make_gateway(name: str = "prod", url: str = "ws://127.0.0.1:9/", **kwargs: Any) -> Gateway:
    """A gateway created through its action (as an admin would)."""
    return actions.create_gateway(Actor.system("test"), name=name, url=url, **kwargs)
