"""Bad input on every agent API route: a 4xx JSON answer, never a 500 or a "try again" 503,
and nothing stored. Table-driven: every route × every kind of bad input that applies to it."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from agents.models import AgentMessage
from billing.models import UsageRecord
from tasks.models import Comment, Task
from tests.tasks.factories import make_task

pytestmark = pytest.mark.django_db(transaction=True)

DEEP = ("[" * 10000 + "]" * 10000).encode()
USAGE = {"model": "m", "input_tokens": 1, "output_tokens": 1}

# Routes that take a JSON body, with a body that is fine except for the field under test.
HEARTBEAT = "/api/v1/agents/ada/heartbeat"
COMPAT = "/api/agents/ada/heartbeat"
USAGE_ROUTE = "/api/v1/usage"
REGISTER = "/api/v1/agents/register"


def usage_with(**fields):
    return {**USAGE, **fields}


# (name, method, path, raw JSON text) — raw text, so lone surrogates go out as JSON escapes.
CASES = [
    # Nested 10,000 deep: every JSON route.
    *[
        ("deep", m, p, DEEP)
        for m, p in [
            ("POST", HEARTBEAT),
            ("POST", COMPAT),
            ("POST", USAGE_ROUTE),
            ("POST", REGISTER),
            ("PATCH", "/api/v1/tasks/{task}"),
            ("POST", "/api/v1/tasks/{task}/comments"),
        ]
    ],
    ("not utf-8", "POST", HEARTBEAT, b'{"message": "\xff\xfe"}'),
    # Impossible dates.
    *[
        (f"date {d}", "POST", route, json.dumps(body(d)).encode())
        for d in (
            "2026-02-30T10:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-01T25:00:00Z",
            "9999-12-31T23:59:59-05:00",
            "1970-01-01T00:00:00Z",
        )
        for route, body in [
            (HEARTBEAT, lambda d: {"usage": [usage_with(occurred_at=d)]}),
            (USAGE_ROUTE, lambda d: {"records": [usage_with(occurred_at=d)]}),
        ]
    ],
    # Lone surrogates.
    ("surrogate message", "POST", HEARTBEAT, b'{"message": "\\ud800"}'),
    (
        "surrogate model",
        "POST",
        USAGE_ROUTE,
        b'{"records": [{"model": "\\udfff", "input_tokens": 1, "output_tokens": 1}]}',
    ),
    (
        "surrogate session",
        "POST",
        USAGE_ROUTE,
        b'{"records": [{"model": "m", "input_tokens": 1, "output_tokens": 1, "session": "\\ud800"}]}',
    ),
    ("surrogate register", "POST", REGISTER, b'{"name": "ada", "role": "\\ud800"}'),
    ("surrogate comment", "POST", "/api/v1/tasks/{task}/comments", b'{"body": "\\ud800"}'),
    (
        "surrogate reason",
        "PATCH",
        "/api/v1/tasks/{task}",
        b'{"blocked": true, "blocked_reason": "\\ud800"}',
    ),
    # NUL characters.
    ("nul message", "POST", HEARTBEAT, b'{"message": "a\\u0000b"}'),
    (
        "nul model",
        "POST",
        HEARTBEAT,
        b'{"usage": [{"model": "gpt\\u0000", "input_tokens": 1, "output_tokens": 1}]}',
    ),
    (
        "nul id",
        "POST",
        USAGE_ROUTE,
        b'{"records": [{"id": "a\\u0000", "model": "m", "input_tokens": 1, "output_tokens": 1}]}',
    ),
    ("nul metadata", "POST", REGISTER, b'{"name": "ada", "metadata": {"k": "\\u0000"}}'),
    ("nul comment", "POST", "/api/v1/tasks/{task}/comments", b'{"body": "x\\u0000"}'),
    # Huge numbers.
    ("huge task id", "POST", HEARTBEAT, b'{"task_id": 9223372036854775808}'),
    (
        "huge tokens",
        "POST",
        USAGE_ROUTE,
        b'{"records": [{"model": "m", "input_tokens": 1000000000000000000000000000000, "output_tokens": 1}]}',
    ),
    (
        "huge usage task",
        "POST",
        USAGE_ROUTE,
        b'{"records": [{"model": "m", "input_tokens": 1, "output_tokens": 1, "task_id": 99999999999999999999}]}',
    ),
    (
        "huge metadata number",
        "POST",
        REGISTER,
        b'{"name": "ada", "metadata": {"n": 99999999999999999999}}',
    ),
    # Costs the column cannot hold (14 digits, 6 of them decimals).
    (
        "cost too big",
        "POST",
        USAGE_ROUTE,
        json.dumps({"records": [usage_with(cost_usd=100000000)]}).encode(),
    ),
    (
        "cost rounds too big",
        "POST",
        USAGE_ROUTE,
        json.dumps({"records": [usage_with(cost_usd="99999999.9999999")]}).encode(),
    ),
    ("cost nan", "POST", HEARTBEAT, json.dumps({"usage": [usage_with(cost_usd="NaN")]}).encode()),
]


async def _stored() -> tuple[int, int, int]:
    return (
        await UsageRecord.objects.acount(),
        await AgentMessage.objects.acount(),
        await Comment.objects.acount(),
    )


@pytest.mark.parametrize(
    ("name", "method", "path", "body"), CASES, ids=[c[0] + " " + c[2] for c in CASES]
)
async def test_bad_input_is_a_4xx_json_answer_and_stores_nothing(
    api, ada, ada_key, name, method, path, body
):
    task = await sync_to_async(make_task)("Mine", assignee=f"agent:{ada.pk}")
    before = await _stored()
    async with api(ada_key) as c:
        r = await c.request(
            method,
            path.format(task=task.pk),
            content=body,
            headers={"Content-Type": "application/json"},
        )
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    assert set(r.json()) >= {"error", "detail"}
    assert await _stored() == before
    # The task was not changed either.
    assert (await Task.objects.aget(pk=task.pk)).version == task.version


async def test_a_cost_within_the_column_is_stored_and_reads_back(api, ada, ada_key, viewer):
    async with api(ada_key) as c:
        r = await c.post(USAGE_ROUTE, json={"records": [usage_with(cost_usd="99999999.999999")]})
    assert r.status_code == 200, r.text
    record = await UsageRecord.objects.aget()
    assert str(record.reported_cost_usd) == "99999999.999999"
    page = await sync_to_async(viewer.get)("/agents/ada/")
    assert page.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", HEARTBEAT, "POST"),
        ("PUT", USAGE_ROUTE, "POST"),
        ("DELETE", "/api/v1/tasks", "GET"),
        ("GET", REGISTER, "POST"),
        ("POST", "/api/v1/events", "GET"),
    ],
)
async def test_wrong_method_is_json_405_with_allow(api, ada_key, method, path, allow):
    async with api(ada_key) as c:
        r = await c.request(method, path)
    assert r.status_code == 405
    assert r.json()["error"] == "method_not_allowed"
    assert allow in r.headers["allow"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/tasks/99999999999999999999/claim",
        "/api/v1/tasks/²/claim",
        "/api/v1/agents/a%2Fb/heartbeat",
        "/api/v1/nothing",
    ],
)
async def test_unknown_paths_and_ids_too_big_are_json_404(api, ada_key, path):
    async with api(ada_key) as c:
        r = await c.post(path, json={})
    assert r.status_code == 404
    assert r.json()["error"] == "not_found"


async def test_chunked_bodies_are_read_on_drf_routes_too(api, ada, ada_key):
    async def chunks():
        yield b'{"name": '
        yield b'"ada"}'

    async with api(ada_key) as c:
        r = await c.post(REGISTER, content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["agent"]["name"] == "ada"


async def test_a_task_of_another_agent_is_not_reported_as_current(api, ada, ada_key):
    other = await sync_to_async(make_task)("Someone else's")
    async with api(ada_key) as c:
        r = await c.post(HEARTBEAT, json={"task_id": other.pk, "status": "busy"})
    assert r.status_code == 200
    assert "task_id" in r.json()["warnings"]
    await ada.arefresh_from_db()
    assert ada.current_task_id is None


async def test_an_agent_comments_only_on_its_own_or_unassigned_tasks(api, ada, ada_key, bob_key):
    theirs = await sync_to_async(make_task)("Bob's", assignee="")
    async with api(bob_key) as c:
        await c.post(f"/api/v1/tasks/{theirs.pk}/claim")
    free = await sync_to_async(make_task)("Free")
    async with api(ada_key) as c:
        refused = await c.post(f"/api/v1/tasks/{theirs.pk}/comments", json={"body": "hi"})
        allowed = await c.post(f"/api/v1/tasks/{free.pk}/comments", json={"body": "hi"})
    assert refused.status_code == 403
    assert allowed.status_code == 201


async def test_an_agent_key_may_read_the_api_docs(api, ada_key):
    async with api(ada_key) as c:
        docs = await c.get("/api/v1/docs/")
        schema = await c.get("/api/v1/schema/")
    assert docs.status_code == 200
    assert schema.status_code == 200


@pytest.mark.skipif(
    "sqlite" not in __import__("django.db").db.connection.vendor,
    reason="only SQLite ever stored such a cost (PostgreSQL refuses it: numeric field overflow)",
)
def test_costs_stored_before_the_fix_are_cleared_so_pages_read_again(db, viewer):
    from importlib import import_module

    from django.db import connection

    from tests.agents.factories import UsageRecordFactory

    record = UsageRecordFactory.create()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE billing_usagerecord SET reported_cost_usd = 100000000 WHERE id = %s",
            [record.pk],
        )
        cursor.execute(import_module("billing.migrations.0003_clear_unreadable_costs").SQL)
    record.refresh_from_db()
    assert record.reported_cost_usd is None
    assert viewer.get(f"/agents/{record.agent.name}/").status_code == 200
