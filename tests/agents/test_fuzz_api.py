"""The agent API fuzzed with schemathesis from its own OpenAPI schema (drf-spectacular's, the
one /api/v1/schema/ serves): valid and invalid data (positive and negative generation), with a
valid agent key and with bad keys, through the real ASGI application (fast path and DRF alike).
Zero 5xx; every error is the documented JSON shape {"error", "detail"}. Bounded in examples so
it fits in CI. Hand-written hostile bodies (malformed JSON, deep nesting, invalid UTF-8, huge
numbers, oversized bodies) are in test_bad_input.py."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings

from agents.models import Agent, AgentKey
from missioncontrol.asgi import application
from tests.agents.conftest import issue

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EXAMPLES = 10


def _schema() -> Any:
    raw = SchemaGenerator().get_schema(request=None, public=True)
    schema = schemathesis.openapi.from_dict(raw)
    schema.app = application
    schema.config.generation.update(
        modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
        max_examples=EXAMPLES,
    )
    # The agents' event stream never ends for a valid key (its refusals are tested elsewhere).
    return schema.exclude(path="/api/v1/events")


schema = _schema()
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


@pytest.fixture
def agent_key() -> str:
    agent = Agent.objects.create(name="fuzz-agent")
    return issue(AgentKey.Kind.AGENT, agent)[1]


def assert_answered(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) >= {"error", "detail"}, body
        assert isinstance(body["error"], str)


@schema.parametrize()
@FUZZ
def test_with_a_valid_key_no_5xx_and_every_error_in_shape(case: Any, agent_key: str) -> None:
    response = case.call(headers={"Authorization": f"Bearer {agent_key}"})
    assert_answered(response)


@schema.parametrize()
@FUZZ
def test_with_bad_keys_every_answer_is_a_refusal_in_shape(case: Any) -> None:
    for key in ("mc_nope_0000", "not-even-a-key", ""):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response = case.call(headers=headers)
        assert_answered(response)
        assert response.status_code in (400, 401, 403, 404, 405, 413, 415, 429), (
            response.status_code
        )
