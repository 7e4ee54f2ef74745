"""Who calls the MCP server: an agent (its own key) or a person (an API token, acting with
that person's role and gateway grants). Set for each HTTP request by the endpoint; the tools
read it (a context variable: the SDK runs a request's tool in a task started from it)."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from agents.keys import KeyInfo
from missioncontrol.audit import Actor
from missioncontrol.errors import Forbidden
from missioncontrol.roles import RANK

# What a tool is for: an agent's key, or a person with at least this role.
Access = Literal["agent", "viewer", "operator"]


@dataclass(frozen=True)
class Principal:
    kind: Literal["agent", "person"]
    label: str
    key: KeyInfo | None = None
    user: Any = None  # the person (a User) for a token
    role: str | None = None

    @property
    def agent_id(self) -> int:
        if self.key is None or self.key.agent_id is None:
            raise Forbidden("This tool is for agents' keys.")
        return self.key.agent_id

    @property
    def actor(self) -> Actor:
        return Actor.agent(self.label) if self.kind == "agent" else Actor.user(self.user)

    def may(self, access: Access) -> bool:
        if access == "agent":
            return self.kind == "agent"
        return self.kind == "person" and RANK.get(self.role or "", -1) >= RANK[access]


_current: ContextVar[Principal | None] = ContextVar("mcp_principal", default=None)


def current() -> Principal:
    found = _current.get()
    if found is None:  # only a call that bypassed the endpoint
        raise Forbidden("No credential.")
    return found


def bind(principal: Principal) -> Any:
    return _current.set(principal)


def unbind(token: Any) -> None:
    _current.reset(token)
