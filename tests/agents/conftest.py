from __future__ import annotations

from typing import Any

import pytest

from agents import actions
from agents.models import Agent, AgentKey
from missioncontrol.audit import Actor


def issue(kind: str, agent: Agent | None = None, **kwargs: Any) -> tuple[AgentKey, str]:
    return actions.issue_key(Actor.system("tests"), kind=kind, agent=agent, **kwargs)


@pytest.fixture
def ada(transactional_db) -> Agent:
    return Agent.objects.create(name="ada", framework="claude-code", heartbeat_interval_s=30)


@pytest.fixture
def ada_key(ada) -> str:
    return issue(AgentKey.Kind.AGENT, ada)[1]


@pytest.fixture
def bob_key(transactional_db) -> str:
    bob = Agent.objects.create(name="bob")
    return issue(AgentKey.Kind.AGENT, bob)[1]


@pytest.fixture
def enrollment_key(transactional_db) -> str:
    return issue(AgentKey.Kind.ENROLLMENT, max_uses=2)[1]


@pytest.fixture
def revoked_key(ada) -> str:
    key, full = issue(AgentKey.Kind.AGENT, ada)
    actions.revoke_key(Actor.system("tests"), key.pk)
    return full
