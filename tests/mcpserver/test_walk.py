"""Walking tests over every tool of the MCP server: who sees and may call each one (the
permission matrix of the tools), and hostile arguments — any JSON where each parameter goes —
answered as a tool error naming the problem, never a server failure, whoever calls."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.keys import KeyInfo
from mcpserver import tools
from mcpserver.principal import Principal, bind, unbind
from missioncontrol import tokens
from missioncontrol.audit import Actor
from missioncontrol.roles import role_of
from tests.missioncontrol.factories import UserFactory
from tests.tasks.factories import make_task

pytestmark = pytest.mark.django_db(transaction=True)

WHO = ("agent", "viewer", "operator", "admin")
CODES = {"validation_error", "not_found", "forbidden", "conflict", "agent_paused", "run_active"}


def _principals(ada: Any) -> dict[str, Principal]:
    from agents.models import AgentKey
    from tests.agents.conftest import issue

    row, _full = issue(AgentKey.Kind.AGENT, ada)
    key = KeyInfo(row.pk, row.prefix, row.kind, ada.pk, ada.name, row.secret_hash, None, False)
    found = {"agent": Principal("agent", ada.name, key=key)}
    for role in ("viewer", "operator", "admin"):
        user = UserFactory.create(username=f"mcp-{role}", role=role)
        found[role] = Principal("person", user.get_username(), user=user, role=role_of(user))
    return found


@pytest.fixture
def principals(ada) -> dict[str, Principal]:
    return _principals(ada)


@pytest.fixture(scope="module")
def server() -> Any:
    from mcpserver.server import build

    return build()


def test_every_tool_is_registered_with_who_may_use_it(server) -> None:
    registered = {t.name for t in server._tool_manager.list_tools()}
    assert registered == set(tools.ACCESS)
    assert set(tools.ACCESS) >= tools.READ_ONLY


async def test_each_principal_lists_and_calls_exactly_its_tools(server, principals) -> None:
    for who, principal in principals.items():
        bound = bind(principal)
        try:
            listed = {t.name for t in await server.list_tools()}
            expected = {n for n, access in tools.ACCESS.items() if principal.may(access)}
            assert listed == expected, who
            for name in set(tools.ACCESS) - expected:
                result = await server.call_tool(name, {})
                assert result.is_error, (who, name)
                assert result.structured_content["error"] == "forbidden", (who, name)
        finally:
            unbind(bound)
    # A viewer's token gets read-only tools only (and answering a gate, which asks who may).
    viewer = {n for n, a in tools.ACCESS.items() if principals["viewer"].may(a)}
    assert viewer - tools.READ_ONLY == {"answer_approval"}


async def test_an_outsider_token_is_refused_at_the_door(api) -> None:
    user = await sync_to_async(UserFactory.create)(username="oscar", role=None)
    token = await sync_to_async(tokens.issue)(Actor.system("test"), user)
    async with api(token[1]) as c:
        r = await c.post("/mcp/", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 403
    assert r.json()["error"] == "forbidden"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _parameters(server: Any, name: str) -> list[str]:
    tool = server._tool_manager.get_tool(name)
    return list(tool.parameters.get("properties", {}))


async def test_hostile_arguments_to_every_tool_are_tool_errors_never_failures(
    server, principals
) -> None:
    await sync_to_async(make_task)("Something to find", description="with words")
    failures: list[str] = []

    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=st.data())
    def walk(data: Any) -> None:
        name = data.draw(st.sampled_from(sorted(tools.ACCESS)))
        params = _parameters(server, name)
        keys = st.sampled_from(params) | st.text(max_size=6) if params else st.text(max_size=6)
        arguments = data.draw(st.dictionaries(keys, json_values, max_size=len(params) + 1))
        who = data.draw(st.sampled_from(WHO))
        calls.append((who, name, arguments))

    calls: list[tuple[str, str, dict[str, Any]]] = []
    walk()
    succeeded = 0
    for who, name, arguments in calls:
        bound = bind(principals[who])
        try:
            result = await server.call_tool(name, arguments)
        finally:
            unbind(bound)
        if result.is_error:
            code = result.structured_content["error"]
            if code not in CODES:
                failures.append(f"{who} {name}({json.dumps(arguments)[:200]}) → {code}")
        else:
            succeeded += 1
    assert failures == []
    assert succeeded > 10  # the walk reaches the tools' work, not only their validation
