"""The agent API end to end through the real ASGI app: fast-path heartbeat/usage and DRF routes."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from agents.models import Agent, AgentKey, AgentStatusChange
from billing.models import UsageRecord
from missioncontrol.models import AuditEvent
from tasks.models import Task
from tests.tasks.factories import make_task

pytestmark = pytest.mark.django_db(transaction=True)

USAGE = {"model": "claude-sonnet-4-5", "input_tokens": 1200, "output_tokens": 300}


async def post(client, path, body):
    return await client.post(
        path, content=json.dumps(body), headers={"Content-Type": "application/json"}
    )


class TestHeartbeatAuth:
    async def test_no_key_is_401(self, api, ada):
        async with api() as c:
            r = await post(c, "/api/v1/agents/ada/heartbeat", {})
        assert r.status_code == 401
        assert r.json()["error"] == "unauthenticated"

    async def test_revoked_key_is_401(self, api, revoked_key):
        async with api(revoked_key) as c:
            r = await post(c, "/api/v1/agents/ada/heartbeat", {})
        assert r.status_code == 401

    async def test_another_agents_key_is_403(self, api, ada, bob_key):
        async with api(bob_key) as c:
            r = await post(c, "/api/v1/agents/ada/heartbeat", {})
        assert r.status_code == 403
        assert r.json()["error"] == "forbidden"

    async def test_enrollment_key_is_403(self, api, ada, enrollment_key):
        async with api(enrollment_key) as c:
            r = await post(c, "/api/v1/agents/ada/heartbeat", {})
        assert r.status_code == 403

    async def test_x_api_key_header_works(self, api, ada_key):
        async with api(None, **{"X-Api-Key": ada_key}) as c:
            r = await post(c, "/api/v1/agents/ada/heartbeat", {"status": "idle"})
        assert r.status_code == 200

    async def test_revoking_takes_effect_at_once(self, api, ada, ada_key):
        async with api(ada_key) as c:
            assert (await post(c, "/api/v1/agents/ada/heartbeat", {})).status_code == 200
            key = await AgentKey.objects.aget(agent=ada)
            from agents import actions
            from missioncontrol.audit import Actor

            await sync_to_async(actions.revoke_key)(Actor.system("t"), key.pk)
            assert (await post(c, "/api/v1/agents/ada/heartbeat", {})).status_code == 401


class TestHeartbeat:
    async def test_records_status_usage_and_returns_work(self, api, ada, ada_key):
        task = await sync_to_async(make_task)("Fix the build", assignee=f"agent:{ada.pk}")
        async with api(ada_key) as c:
            r = await post(
                c,
                "/api/v1/agents/ada/heartbeat",
                {
                    "status": "busy",
                    "task_id": task.pk,
                    "message": "running tests",
                    "usage": [{**USAGE, "id": "m1"}],
                },
            )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["ok"] is True
        assert body["agent"]["name"] == "ada"
        assert body["agent"]["status"] == "busy"
        assert body["next_heartbeat_s"] == 30
        assert (body["usage_recorded"], body["usage_duplicates"]) == (1, 0)
        assert body["work"]["tasks"] == [
            {
                "id": task.pk,
                "title": "Fix the build",
                "status": "todo",
                "priority": "normal",
                "url": f"/tasks/{task.pk}/",
            }
        ]
        agent = await Agent.objects.aget(pk=ada.pk)
        assert (agent.status, agent.current_task_id, agent.last_message, agent.model) == (
            "busy",
            task.pk,
            "running tests",
            "claude-sonnet-4-5",
        )
        record = await UsageRecord.objects.aget(agent=ada)
        assert (record.input_tokens, record.output_tokens, record.client_id) == (1200, 300, "m1")
        assert await AgentStatusChange.objects.filter(agent=ada, new="busy").aexists()
        assert await AuditEvent.objects.filter(verb="agent.status_changed").aexists()

    async def test_same_usage_ids_sent_three_times_are_stored_once(self, api, ada, ada_key):
        body = {"usage": [{**USAGE, "id": "a"}, {**USAGE, "id": "b"}]}
        async with api(ada_key) as c:
            results = [
                (await post(c, "/api/v1/agents/ada/heartbeat", body)).json() for _ in range(3)
            ]
        assert [(r["usage_recorded"], r["usage_duplicates"]) for r in results] == [
            (2, 0),
            (0, 2),
            (0, 2),
        ]
        assert await UsageRecord.objects.filter(agent=ada).acount() == 2

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"status": "sleeping"}, "status"),
            ({"message": "x" * 501}, "message"),
            ({"task_id": "seven"}, "task_id"),
            (
                {"usage": [{"model": "m", "input_tokens": -1, "output_tokens": 1}]},
                "usage[0].input_tokens",
            ),
            ({"usage": [{"input_tokens": 1, "output_tokens": 1}]}, "usage[0].model"),
            ({"usage": [{**USAGE, "occurred_at": "yesterday"}]}, "usage[0].occurred_at"),
            ({"usage": [USAGE] * 101}, "usage"),
            ([1, 2], "body"),
        ],
    )
    async def test_bad_input_is_400_per_field_and_writes_nothing(
        self, api, ada, ada_key, body, field
    ):
        async with api(ada_key) as c:
            r = await post(c, "/api/v1/agents/ada/heartbeat", body)
        assert r.status_code == 400
        assert r.json()["error"] == "validation_error"
        assert field in r.json()["detail"]
        assert await UsageRecord.objects.acount() == 0
        assert (await Agent.objects.aget(pk=ada.pk)).last_seen_at is None

    async def test_invalid_json_is_400(self, api, ada_key):
        async with api(ada_key) as c:
            r = await c.post("/api/v1/agents/ada/heartbeat", content=b"{nope")
        assert r.status_code == 400

    async def test_oversized_body_is_413(self, api, ada_key, settings):
        settings.MC_API_MAX_BODY = 2048
        async with api(ada_key) as c:
            r = await post(c, "/api/v1/agents/ada/heartbeat", {"message": "x" * 4000})
        assert r.status_code == 413
        assert r.json()["error"] == "payload_too_large"

    async def test_unknown_host_is_400(self, api, ada_key):
        async with api(ada_key, Host="evil.example") as c:
            r = await post(c, "/api/v1/agents/ada/heartbeat", {})
        assert r.status_code == 400

    async def test_too_many_requests_is_429_with_retry_after(self, api, ada_key, monkeypatch):
        monkeypatch.setattr("agents.keys._bucket.burst", 3.0)
        monkeypatch.setattr("agents.keys._bucket.rate", 0.1)
        async with api(ada_key) as c:
            codes = [
                (await post(c, "/api/v1/agents/ada/heartbeat", {})).status_code for _ in range(4)
            ]
            last = await post(c, "/api/v1/agents/ada/heartbeat", {})
            # The same key's budget covers every agent-key route, not only the fast ones.
            tasks = await c.get("/api/v1/tasks")
            events = await c.get("/api/v1/events")
            mcp = await c.post("/mcp/", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert codes[:3] == [200, 200, 200]
        assert (mcp.status_code, mcp.json()["error"]) == (429, "rate_limited")
        assert last.status_code == 429
        assert int(last.headers["Retry-After"]) >= 1
        assert (tasks.status_code, tasks.json()["error"]) == (429, "rate_limited")
        assert int(tasks.headers["Retry-After"]) >= 1
        assert (events.status_code, events.json()["error"]) == (429, "rate_limited")

    async def test_compatibility_route_and_shape(self, api, ada, ada_key):
        async with api(None, **{"x-api-key": ada_key}) as c:
            r = await post(
                c,
                "/api/agents/ada/heartbeat",
                {
                    "status": "busy",
                    "token_usage": {"model": "gpt-5", "inputTokens": 10, "outputTokens": 5},
                },
            )
        assert r.status_code == 200
        record = await UsageRecord.objects.aget(agent=ada)
        assert (record.model, record.input_tokens, record.output_tokens) == ("gpt-5", 10, 5)


class TestUsage:
    async def test_bulk_usage_is_idempotent(self, api, ada, ada_key):
        records = [{**USAGE, "id": f"r{i}"} for i in range(5)]
        async with api(ada_key) as c:
            first = await post(c, "/api/v1/usage", {"records": records})
            again = await post(c, "/api/v1/usage", {"records": [*records, {**USAGE, "id": "r5"}]})
        assert first.json() == {"recorded": 5, "duplicates": 0}
        assert again.json() == {"recorded": 1, "duplicates": 5}
        assert await UsageRecord.objects.filter(agent=ada).acount() == 6

    async def test_usage_needs_an_agent_key(self, api, ada, enrollment_key, revoked_key):
        async with api() as c:
            assert (await post(c, "/api/v1/usage", {"records": []})).status_code == 401
        async with api(revoked_key) as c:
            assert (await post(c, "/api/v1/usage", {"records": []})).status_code == 401
        async with api(enrollment_key) as c:
            assert (await post(c, "/api/v1/usage", {"records": []})).status_code == 403

    async def test_records_missing_is_400(self, api, ada_key):
        async with api(ada_key) as c:
            r = await post(c, "/api/v1/usage", {"items": []})
        assert r.status_code == 400
        assert "records" in r.json()["detail"]


class TestRegister:
    async def test_enrollment_key_registers_and_returns_a_key_once(self, api, enrollment_key):
        async with api(enrollment_key) as c:
            r = await post(
                c,
                "/api/v1/agents/register",
                {"name": "codex-1", "framework": "codex", "capabilities": ["review"]},
            )
        assert r.status_code == 201, r.text
        new_key = r.json()["api_key"]
        assert new_key.startswith("mc_")
        agent = await Agent.objects.aget(name="codex-1")
        assert agent.framework == "codex"
        stored = await AgentKey.objects.aget(agent=agent)
        # Only the hash is kept (the secret itself may contain "_": split the prefix off only).
        assert new_key.split("_", 2)[2] not in stored.secret_hash
        # Repeating it with the agent's own key: 200, unchanged.
        async with api(new_key) as c:
            again = await post(c, "/api/v1/agents/register", {"name": "codex-1"})
            hb = await post(c, "/api/v1/agents/codex-1/heartbeat", {"status": "idle"})
        assert again.status_code == 200
        assert "api_key" not in again.json()
        assert hb.status_code == 200

    async def test_enrollment_key_is_limited_in_count(self, api, enrollment_key):
        async with api(enrollment_key) as c:
            responses = [
                await post(c, "/api/v1/agents/register", {"name": f"a{i}"}) for i in range(3)
            ]
            codes = [r.status_code for r in responses]
        assert codes == [201, 201, 403]

    async def test_existing_name_is_409(self, api, ada, enrollment_key):
        async with api(enrollment_key) as c:
            r = await post(c, "/api/v1/agents/register", {"name": "ada"})
        assert r.status_code == 409
        assert r.json()["error"] == "conflict"

    @pytest.mark.parametrize("name", ["", "-bad", "has space", "x" * 65, "ünïcode"])
    async def test_bad_names_are_400(self, api, enrollment_key, name):
        async with api(enrollment_key) as c:
            r = await post(c, "/api/v1/agents/register", {"name": name})
        assert r.status_code == 400
        assert r.json()["error"] == "validation_error"

    async def test_other_agents_key_is_403_and_no_key_401(self, api, ada, bob_key, revoked_key):
        async with api(bob_key) as c:
            assert (await post(c, "/api/v1/agents/register", {"name": "ada"})).status_code == 403
        async with api() as c:
            assert (await post(c, "/api/v1/agents/register", {"name": "ada"})).status_code == 401
        async with api(revoked_key) as c:
            assert (await post(c, "/api/v1/agents/register", {"name": "ada"})).status_code == 401


class TestAgentTasks:
    async def test_list_claim_patch_comment(self, api, ada, ada_key, bob_key):
        free = await sync_to_async(make_task)("Free task")
        async with api(ada_key) as c:
            claim = await c.post(f"/api/v1/tasks/{free.pk}/claim")
            assert claim.status_code == 200, claim.text
            listed = (await c.get("/api/v1/tasks?assignee=me")).json()["tasks"]
            assert [t["id"] for t in listed] == [free.pk]
            patched = await c.patch(
                f"/api/v1/tasks/{free.pk}",
                content=json.dumps({"status": "review"}),
                headers={"Content-Type": "application/json"},
            )
            assert patched.json()["task"]["status"] == "review"
            commented = await post(
                c, f"/api/v1/tasks/{free.pk}/comments", {"body": "Ready for review"}
            )
            assert commented.status_code == 201
        async with api(bob_key) as c:
            taken = await c.post(f"/api/v1/tasks/{free.pk}/claim")
            assert taken.status_code == 409
            not_mine = await c.patch(
                f"/api/v1/tasks/{free.pk}",
                content=json.dumps({"status": "done"}),
                headers={"Content-Type": "application/json"},
            )
            assert not_mine.status_code == 403
        task = await Task.objects.aget(pk=free.pk)
        assert (task.status, task.assignee_agent_id, task.comment_count) == ("review", ada.pk, 1)
        assert await AuditEvent.objects.filter(verb="task.claimed", actor_label="ada").aexists()

    async def test_a_move_and_a_refused_block_together_change_nothing(self, api, ada, ada_key):
        """The move and the block are one change: a refused block (no reason) leaves the task in
        its column, with no audit row or event of a move (they were two transactions once)."""
        task = await sync_to_async(make_task)("Mine", assignee=f"agent:{ada.pk}", status="todo")
        async with api(ada_key) as c:
            refused = await c.patch(
                f"/api/v1/tasks/{task.pk}",
                content=json.dumps({"status": "review", "blocked": True, "blocked_reason": ""}),
                headers={"Content-Type": "application/json"},
            )
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "validation_error"
        after = await Task.objects.aget(pk=task.pk)
        assert (after.status, after.blocked, after.version) == ("todo", False, task.version)
        assert not await AuditEvent.objects.filter(verb="task.moved").aexists()

    async def test_a_move_and_a_block_land_together(self, api, ada, ada_key):
        task = await sync_to_async(make_task)("Mine", assignee=f"agent:{ada.pk}", status="todo")
        async with api(ada_key) as c:
            done = await c.patch(
                f"/api/v1/tasks/{task.pk}",
                content=json.dumps(
                    {"status": "in_progress", "blocked": True, "blocked_reason": "needs a key"}
                ),
                headers={"Content-Type": "application/json"},
            )
        assert done.status_code == 200, done.text
        after = await Task.objects.aget(pk=task.pk)
        assert (after.status, after.blocked, after.blocked_reason) == (
            "in_progress",
            True,
            "needs a key",
        )

    async def test_enrollment_key_cannot_touch_tasks(self, api, enrollment_key):
        async with api(enrollment_key) as c:
            assert (await c.get("/api/v1/tasks")).status_code == 403

    async def test_unknown_task_is_404_json(self, api, ada_key):
        async with api(ada_key) as c:
            r = await c.post("/api/v1/tasks/999999/claim")
        assert r.status_code == 404
        assert r.json()["error"] == "not_found"


class TestRegisterInterval:
    async def test_default_and_chosen_heartbeat_interval(self, api, enrollment_key, settings):
        settings.MC_AGENT_DEFAULT_INTERVAL_S = 45
        async with api(enrollment_key) as c:
            default = await post(c, "/api/v1/agents/register", {"name": "dflt"})
            chosen = await post(
                c, "/api/v1/agents/register", {"name": "fast", "heartbeat_interval_s": 10}
            )
        assert default.json()["agent"]["heartbeat_interval_s"] == 45
        assert chosen.json()["agent"]["heartbeat_interval_s"] == 10


class TestBodyLimitOnDrfRoutes:
    async def test_oversized_register_is_413_json(self, api, enrollment_key, settings):
        settings.MC_API_MAX_BODY = 4096
        async with api(enrollment_key) as c:
            r = await post(
                c, "/api/v1/agents/register", {"name": "big", "metadata": {"a": "x" * 10000}}
            )
        assert r.status_code == 413
        assert r.json()["error"] == "payload_too_large"
        assert not await Agent.objects.filter(name="big").aexists()
