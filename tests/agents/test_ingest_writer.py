"""The group-commit writer behind heartbeats and usage: batches, multi-row statements, failures."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from agents import ingest
from agents.models import Agent, AgentKey
from billing import actions as billing
from billing.models import UsageRecord
from tests.agents.conftest import issue
from tests.tasks.factories import make_task

pytestmark = pytest.mark.django_db(transaction=True)


async def post(client, path, body):
    return await client.post(
        path, content=json.dumps(body), headers={"Content-Type": "application/json"}
    )


async def test_usage_is_charged_only_to_the_agents_own_tasks(api, ada, ada_key, bob_key):
    """A record for another agent's task, a person's, or no task at all is refused with its
    reason; the rest of the batch is stored (issue #30 §5)."""
    mine = await sync_to_async(make_task)(title="Mine", assignee=f"agent:{ada.pk}")
    free = await sync_to_async(make_task)(title="Nobody's")

    def record(i: int, task_id: int | None) -> dict[str, object]:
        return {
            "id": f"u{i}",
            "model": "claude-sonnet-4-5",
            "input_tokens": 10,
            "output_tokens": 5,
            "task_id": task_id,
            "occurred_at": "2026-11-20T10:15:30+00:00",
        }

    async with api(ada_key) as c:
        answer = await post(
            c,
            "/api/v1/usage",
            {
                "records": [
                    record(0, mine.pk),
                    record(1, free.pk),
                    record(2, 999999),
                    record(3, None),
                ]
            },
        )
        beat = await post(
            c,
            "/api/v1/agents/ada/heartbeat",
            {"status": "busy", "usage": [record(4, free.pk), record(5, mine.pk)]},
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["recorded"], body["duplicates"]) == (2, 0)
    assert [(r["index"], r["id"]) for r in body["refused"]] == [(1, "u1"), (2, "u2")]
    assert "not one of your tasks" in body["refused"][0]["reason"]
    assert "does not exist" in body["refused"][1]["reason"]
    assert beat.status_code == 200, beat.text
    assert beat.json()["usage_recorded"] == 1
    assert [r["id"] for r in beat.json()["usage_refused"]] == ["u4"]
    stored = UsageRecord.objects.filter(agent=ada).order_by("client_id")
    assert [(r.client_id, r.task_id) async for r in stored] == [
        ("u0", mine.pk),
        ("u3", None),
        ("u5", mine.pk),
    ]


async def test_a_thousand_records_in_one_request_are_stored_exactly_once(api, ada, ada_key):
    """1,000 records × 16 columns is far past SQLite's parameter limit: several statements."""
    task = await sync_to_async(make_task)(title="Write the report", assignee=f"agent:{ada.pk}")
    records = [
        {
            "id": f"r{i}",
            "model": "claude-sonnet-4-5",
            "provider": "anthropic",
            "input_tokens": i,
            "output_tokens": 2 * i,
            "cache_read_tokens": 3,
            "cache_write_tokens": 4,
            "reasoning_tokens": 5,
            "cost_usd": "0.012345",
            "session": "s-1",
            "task_id": task.pk,
            "occurred_at": "2026-11-20T10:15:30+01:00",
        }
        for i in range(995)
    ]
    # Five repeats of ids earlier in the same request.
    records += [{**records[i], "input_tokens": 999_999} for i in range(5)]
    async with api(ada_key) as c:
        first = await post(c, "/api/v1/usage", {"records": records})
        # A retry of the whole request stores nothing more.
        again = await post(c, "/api/v1/usage", {"records": records})
    assert first.status_code == 200, first.text
    assert first.json() == {"recorded": 995, "duplicates": 5}
    assert again.json() == {"recorded": 0, "duplicates": 1000}
    assert await UsageRecord.objects.filter(agent=ada).acount() == 995
    row = await UsageRecord.objects.aget(agent=ada, client_id="r7")
    assert (row.input_tokens, row.output_tokens) == (7, 14)  # the first of the repeats won
    assert (row.cache_read_tokens, row.cache_write_tokens, row.reasoning_tokens) == (3, 4, 5)
    assert row.reported_cost_usd == Decimal("0.012345")
    # Priced by the table (claude-sonnet-4-5 at Anthropic: $3 / $15 / $0.30 / $3.75 per M).
    assert (
        row.cost_usd
        == (7 * Decimal(3) + 14 * Decimal(15) + 3 * Decimal("0.3") + 4 * Decimal("3.75"))
        / 1_000_000
    )
    assert row.price_version.startswith("genai-prices ")
    assert (row.provider, row.session, row.task_id) == ("anthropic", "s-1", task.pk)
    assert row.occurred_at == datetime(2026, 11, 20, 9, 15, 30, tzinfo=UTC)


async def test_many_agents_at_once_each_get_their_own_answer(api, transactional_db):
    """300 agents heartbeating together: batched (multi-row UPDATE in chunks), each answer its own."""

    def make_agents() -> list[tuple[Agent, str]]:
        out = []
        for i in range(300):
            agent = Agent.objects.create(name=f"swarm-{i:03d}", heartbeat_interval_s=10 + i % 7)
            out.append((agent, issue(AgentKey.Kind.AGENT, agent)[1]))
        make_task(title="For swarm-007", assignee=f"agent:{out[7][0].pk}")
        return out

    agents = await sync_to_async(make_agents)()

    async def beat(agent: Agent, key: str, i: int):
        async with api(key) as c:
            body = {
                "status": "busy" if i % 2 else "idle",
                "message": f"step {i}",
                "usage": [
                    {"id": "u1", "model": f"model-{i}", "input_tokens": i, "output_tokens": 1}
                ],
            }
            return await post(c, f"/api/v1/agents/{agent.name}/heartbeat", body)

    answers = await asyncio.gather(*(beat(a, k, i) for i, (a, k) in enumerate(agents)))
    for i, ((agent, _key), r) in enumerate(zip(agents, answers, strict=True)):
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["agent"]["name"] == agent.name
        assert body["agent"]["status"] == ("busy" if i % 2 else "idle")
        assert body["next_heartbeat_s"] == 10 + i % 7
        assert body["usage_recorded"] == 1
        assert [t["title"] for t in body["work"]["tasks"]] == (["For swarm-007"] if i == 7 else [])
    stored = {a.name: a async for a in Agent.objects.filter(name__startswith="swarm-")}
    for i, (agent, _key) in enumerate(agents):
        row = stored[agent.name]
        assert row.status == ("busy" if i % 2 else "idle")
        assert row.last_message == f"step {i}"
        assert row.model == f"model-{i}"
        assert row.last_seen_at is not None
        assert row.stale_at is not None
    assert await UsageRecord.objects.filter(agent__name__startswith="swarm-").acount() == 300


async def test_a_failing_job_gets_503_and_the_rest_of_its_batch_is_stored(
    api, ada, ada_key, bob_key, monkeypatch
):
    """A batch that fails is retried job by job: only the job that fails again is refused,
    and nothing of it is written."""
    real = billing.record_usage

    def record_usage(items):
        if any(i.model == "poison" for i in items):
            raise RuntimeError("boom")
        return real(items)

    monkeypatch.setattr(ingest.billing, "record_usage", record_usage)

    async def beat(key: str, name: str, model: str):
        async with api(key) as c:
            usage = [{"id": model, "model": model, "input_tokens": 1, "output_tokens": 1}]
            return await post(c, f"/api/v1/agents/{name}/heartbeat", {"usage": usage})

    good, bad = await asyncio.gather(beat(ada_key, "ada", "fine"), beat(bob_key, "bob", "poison"))
    assert good.status_code == 200
    assert bad.status_code == 503
    assert bad.json()["error"] == "unavailable"
    assert bad.headers["retry-after"] == "1"
    assert await UsageRecord.objects.filter(model="fine").acount() == 1
    assert await UsageRecord.objects.filter(model="poison").acount() == 0
    bob = await Agent.objects.aget(name="bob")
    assert bob.last_seen_at is None  # its heartbeat rolled back with its usage
