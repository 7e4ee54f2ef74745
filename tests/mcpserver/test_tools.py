"""The MCP server's tools through the official SDK's client: who sees which tools, an agent's
claim → progress → finish moving its task, refusals as tool errors in the API's shape, and the
audit of every call."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async

from missioncontrol import tokens
from missioncontrol.audit import Actor
from missioncontrol.models import AuditEvent
from runs.models import Run
from tasks import actions as tasks_actions
from tasks.models import Comment, Task
from tests.tasks.factories import make_task

pytestmark = pytest.mark.django_db(transaction=True)


def token_for(user: Any) -> str:
    return tokens.issue(Actor.system("test"), user)[1]


async def until_agent(agent_id: int, state: tuple[Any, ...], within: float = 5.0) -> None:
    import asyncio

    from agents.models import Agent

    seen: tuple[Any, ...] = ()
    for _ in range(int(within / 0.05)):
        agent = await Agent.objects.aget(pk=agent_id)
        seen = (agent.status, agent.current_task_id, agent.last_message)
        if seen == state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the agent is {seen}, not {state}")


def names(listed: Any) -> set[str]:
    return {t.name for t in listed.tools}


async def test_an_agent_lists_claims_reports_and_finishes_a_task(mcp_client, ada, ada_key):
    task = await sync_to_async(make_task)("Write the changelog", description="For 1.4.")
    async with mcp_client(ada_key) as client:
        listed = await client.list_tools()
        assert {"whoami", "my_tasks", "claim_task", "report_progress", "finish_run"} <= names(
            listed
        )
        assert "needs_attention" not in names(listed)
        me = await client.call_tool("whoami", {})
        assert not me.is_error, me
        assert me.structured_content["name"] == "ada"
        open_ = await client.call_tool("my_tasks", {"include_unassigned": True})
        assert [t["id"] for t in open_.structured_content["tasks"]] == [task.pk]
        claimed = await client.call_tool("claim_task", {"task_id": task.pk})
        assert not claimed.is_error, claimed
        assert claimed.structured_content["run"]["state"] == "running"
        assert "Write the changelog" in claimed.structured_content["prompt"]
        progress = await client.call_tool("report_progress", {"text": "Reading the commits"})
        assert not progress.is_error, progress
        # An agent's calls are its heartbeats: busy on the task, saying what it does.
        await until_agent(ada.pk, ("busy", task.pk, "Reading the commits"))
        done = await client.call_tool(
            "finish_run", {"outcome": "succeeded", "reply": "Done: 12 entries."}
        )
        assert done.structured_content["run"]["state"] == "succeeded"
        await until_agent(ada.pk, ("idle", task.pk, "Reading the commits"))
    task = await Task.objects.aget(pk=task.pk)
    assert (task.status, task.assignee_agent_id) == ("review", ada.pk)
    assert await Comment.objects.filter(task=task, body="Done: 12 entries.").aexists()
    assert await AuditEvent.objects.filter(verb="mcp.tool_called", object_id="claim_task").aexists()


async def test_a_second_agents_claim_is_a_tool_error(mcp_client, ada_key, bob_key):
    task = await sync_to_async(make_task)("One at a time")
    async with mcp_client(ada_key) as ada_client:
        assert not (await ada_client.call_tool("claim_task", {"task_id": task.pk})).is_error
    async with mcp_client(bob_key) as bob_client:
        refused = await bob_client.call_tool("claim_task", {"task_id": task.pk})
    assert refused.is_error
    assert refused.structured_content["error"] == "conflict"
    assert await Run.objects.filter(task=task).acount() == 1


async def test_bad_arguments_name_the_field(mcp_client, ada_key):
    async with mcp_client(ada_key) as client:
        refused = await client.call_tool("claim_task", {"task_id": "twelve"})
        assert refused.is_error
        assert refused.structured_content["error"] == "validation_error"
        assert "task_id" in refused.structured_content["detail"]
        missing = await client.call_tool("claim_task", {"task_id": 999999})
        assert missing.structured_content["error"] == "not_found"


async def test_operator_and_viewer_tokens_see_their_tools(mcp_client, bob_operator, alice_viewer):
    operator = await sync_to_async(token_for)(bob_operator)
    viewer = await sync_to_async(token_for)(alice_viewer)
    async with mcp_client(operator) as client:
        tools = names(await client.list_tools())
        assert {"needs_attention", "create_task", "dispatch_task"} <= tools
        assert "claim_task" not in tools
        made = await client.call_tool("create_task", {"title": "From MCP", "priority": "high"})
        assert not made.is_error, made
        attention = await client.call_tool("needs_attention", {})
        assert not attention.is_error, attention
    async with mcp_client(viewer) as client:
        tools = names(await client.list_tools())
        assert "needs_attention" in tools
        assert "create_task" not in tools
        refused = await client.call_tool("create_task", {"title": "Nope"})
        assert refused.structured_content["error"] == "forbidden"
    assert await Task.objects.filter(title="From MCP").acount() == 1


async def test_no_key_is_a_401_in_the_api_shape(api):
    async with api() as c:
        r = await c.post("/mcp/", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 401
    assert r.json()["error"] == "unauthenticated"


async def test_the_current_protocol_revision_works_too(mcp_client, ada_key):
    """`auto`: the client discovers the server's newest revision (per-request envelope)."""
    async with mcp_client(ada_key, mode="auto") as client:
        assert "whoami" in names(await client.list_tools())
        me = await client.call_tool("whoami", {})
        assert me.structured_content["name"] == "ada"


async def test_a_task_is_a_resource_with_its_thread(mcp_client, ada, ada_key, bob_operator):
    mine = await sync_to_async(make_task)("Mine", assignee=f"agent:{ada.pk}")
    theirs = await sync_to_async(make_task)("Theirs", assignee=f"user:{bob_operator.pk}")
    await sync_to_async(tasks_actions.add_comment)(Actor.system("test"), mine.pk, "Use **v2**.")
    async with mcp_client(ada_key) as client:
        templates = await client.list_resource_templates()
        assert [t.uri_template for t in templates.resource_templates] == ["task://{task_id}"]
        # Its own open tasks are listed as resources, to attach one to the client's context.
        listed = await client.list_resources()
        assert [(r.uri, r.title) for r in listed.resources] == [
            (f"task://{mine.pk}", f"#{mine.pk} Mine")
        ]
        read = await client.read_resource(f"task://{mine.pk}")
        text = read.contents[0].text
        assert text.startswith(f"# Task #{mine.pk}: Mine")
        assert "Use **v2**." in text
        with pytest.raises(Exception, match="you may read your own tasks"):
            await client.read_resource(f"task://{theirs.pk}")
        with pytest.raises(Exception, match="A task's number"):
            await client.read_resource("task://twelve")
    operator = await sync_to_async(token_for)(bob_operator)
    async with mcp_client(operator) as client:
        read = await client.read_resource(f"task://{theirs.pk}")
        assert "# Task" in read.contents[0].text
        listed = await client.list_resources()  # a person's: the tasks assigned to them
        assert [r.uri for r in listed.resources] == [f"task://{theirs.pk}"]


async def test_an_agent_asks_and_waits_while_an_operator_answers(
    mcp_client, ada, ada_key, bob_operator, monkeypatch
):
    import asyncio

    from mcpserver import tools

    monkeypatch.setattr(tools, "POLL_S", 0.1)
    operator = await sync_to_async(token_for)(bob_operator)
    async with mcp_client(ada_key) as agent, mcp_client(operator) as person:

        async def answer_when_asked() -> Any:
            while True:
                listed = await person.call_tool("pending_approvals", {})
                asks = [a for a in listed.structured_content["approvals"] if a["kind"] == "agent"]
                if asks:
                    return await person.call_tool(
                        "answer_approval",
                        {
                            "approval_id": asks[0]["id"],
                            "kind": "agent",
                            "outcome": "rejected",
                            "comment": "Not on a Friday.",
                        },
                    )
                await asyncio.sleep(0.05)

        asked, answered = await asyncio.gather(
            agent.call_tool(
                "request_approval", {"question": "May I deploy to prod?", "wait_s": 30}
            ),
            answer_when_asked(),
        )
        assert not answered.is_error, answered
        assert (asked.structured_content["outcome"], asked.structured_content["comment"]) == (
            "rejected",
            "Not on a Friday.",
        )
        # Asked without waiting: pending, then check_approval finds the answer.
        later = await agent.call_tool(
            "request_approval", {"question": "And tomorrow?", "wait_s": 0}
        )
        assert later.structured_content["outcome"] == "pending"
        ask_id = later.structured_content["approval_id"]
        await person.call_tool(
            "answer_approval", {"approval_id": ask_id, "kind": "agent", "outcome": "approved"}
        )
        checked = await agent.call_tool("check_approval", {"approval_id": ask_id, "wait_s": 0})
        assert (
            checked.structured_content["outcome"],
            checked.structured_content["answered_by"],
        ) == ("approved", "bob")


async def test_the_door_refuses_a_foreign_host_and_a_foreign_origin(api, ada_key):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with api(ada_key, Host="evil.example") as c:
        assert (await c.post("/mcp/", json=body)).status_code == 400
    async with api(ada_key, Origin="https://evil.example") as c:
        r = await c.post("/mcp/", json=body)
    assert (r.status_code, r.json()["error"]) == (403, "forbidden")
