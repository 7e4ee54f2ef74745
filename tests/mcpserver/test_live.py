"""The MCP server end to end, with the official SDK's client: over Streamable HTTP against a
real `serve` while the board is open in real Chromium (an agent finds an unassigned task,
claims it, reports progress and finishes it: the card follows live, no polling), over stdio
through `mc-agent mcp` (the bridge for clients that only launch commands) for an agent's key and
a person's token, in both protocol eras, and a revoked key refused within 2 s."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents import actions as agent_actions
from agents import keys
from agents.models import Agent, AgentKey
from missioncontrol import tokens
from missioncontrol.audit import Actor
from tasks.models import Task
from tests.agents.conftest import issue
from tests.live import ROOT, once
from tests.missioncontrol.factories import UserFactory
from tests.tasks.factories import make_task

pytestmark = [pytest.mark.slow]


class Session:
    """An SDK `Client` kept open by one task on a loop of its own thread (anyio's scopes must be
    left by the task that entered them), called from a synchronous test (the browser's API is
    synchronous)."""

    def __init__(self, server: Any, **options: Any) -> None:
        from mcp import Client

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = Client(server, **options)
        self.calls: asyncio.Queue[Any] = asyncio.Queue()
        opened: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.done = asyncio.run_coroutine_threadsafe(self._hold(opened), self.loop)
        opened.result(30)

    async def _hold(self, opened: concurrent.futures.Future[None]) -> None:
        try:
            async with self.client:
                opened.set_result(None)
                while (item := await self.calls.get()) is not None:
                    make, answer = item
                    try:
                        answer.set_result(await make())
                    except Exception as failed:
                        answer.set_exception(failed)
        except Exception as failed:
            if not opened.done():
                opened.set_exception(failed)
            raise

    def run(self, make: Callable[[], Coroutine[Any, Any, Any]], timeout: float = 30) -> Any:
        answer: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.loop.call_soon_threadsafe(self.calls.put_nowait, (make, answer))
        return answer.result(timeout)

    def tools(self) -> set[str]:
        return {t.name for t in self.run(self.client.list_tools).tools}

    def call(self, name: str, **arguments: Any) -> Any:
        return self.run(lambda: self.client.call_tool(name, arguments))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.calls.put_nowait, None)
        try:
            self.done.result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def over_http(url: str, credential: str, mode: str = "legacy") -> Session:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {credential}"}, timeout=30)
    return Session(streamable_http_client(f"{url}/mcp/", http_client=http), mode=mode)


def over_stdio(url: str, credential: str, home: Path, mode: str = "legacy") -> Session:
    from mcp.client.stdio import StdioServerParameters

    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "MC_URL": url,
        "MC_API_KEY": credential,
        "XDG_CONFIG_HOME": str(home),
    }
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "mcagent", "mcp", "--name", "claude-1"], env=env
    )
    return Session(params, mode=mode)


@pytest.mark.browser
def test_an_agent_works_a_task_over_mcp_and_the_board_follows_live(browser_factory, live):
    UserFactory.create(username="olga", role="operator")
    agent = Agent.objects.create(name="claude-1", framework="claude-code")
    _key, key = issue(AgentKey.Kind.AGENT, agent)
    task = make_task("Fix the flaky test", description="tests/test_sync.py fails 1 in 20.")
    session = browser_factory()
    session.login("olga")
    board = session.page
    board.goto("/board/")
    board.wait_for_selector("#live-status[data-state=live]")
    card = f"#task-{task.pk}"

    mcp = over_http(live.url, key)
    try:
        assert {"my_tasks", "claim_task", "report_progress", "finish_run"} <= mcp.tools()
        found = mcp.call("my_tasks", include_unassigned=True).structured_content["tasks"]
        assert [t["id"] for t in found] == [task.pk]
        claimed = mcp.call("claim_task", task_id=task.pk)
        assert not claimed.is_error, claimed
        board.wait_for_selector(f"#col-in_progress-list {card} .run-chip.run-running")
        assert not mcp.call("report_progress", text="Bisecting the seed").is_error
        board.wait_for_function(
            f"() => document.querySelector('#run-progress-{task.pk}')?.textContent"
            " === 'Bisecting the seed'"
        )
        done = mcp.call("finish_run", outcome="succeeded", reply="A shared temp dir; fixed.")
        assert done.structured_content["run"]["state"] == "succeeded"
        board.wait_for_selector(f"#col-review-list {card}")
    finally:
        mcp.close()
    task = Task.objects.get(pk=task.pk)
    assert (task.status, task.assignee_agent_id) == ("review", agent.pk)
    assert session.csp_violations() == []


@once("postgres", "the stdio bridge's transport")
@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_the_stdio_bridge_serves_an_agent_and_a_person(live, tmp_path, mode):
    agent = Agent.objects.create(name="claude-1")
    _key, key = issue(AgentKey.Kind.AGENT, agent)
    task = make_task("Over stdio")
    person = UserFactory.create(username="olga", role="operator")
    token = tokens.issue(Actor.system("test"), person)[1]

    mcp = over_stdio(live.url, key, tmp_path, mode)
    try:
        assert "claim_task" in mcp.tools()
        assert mcp.call("whoami").structured_content["name"] == "claude-1"
        assert not mcp.call("claim_task", task_id=task.pk).is_error
        refused = mcp.call("claim_task", task_id=10**9)
        assert refused.structured_content["error"] == "not_found"
        assert not mcp.call("finish_run", outcome="succeeded", reply="Done.").is_error
    finally:
        mcp.close()
    mcp = over_stdio(live.url, token, tmp_path, mode)
    try:
        assert "needs_attention" in mcp.tools()
        assert "claim_task" not in mcp.tools()
        found = mcp.call("search_tasks", text="stdio").structured_content["tasks"]
        assert [(t["id"], t["status"]) for t in found] == [(task.pk, "review")]
    finally:
        mcp.close()


def test_a_revoked_key_is_refused_within_2_s(live):
    agent = Agent.objects.create(name="claude-1")
    row, key = issue(AgentKey.Kind.AGENT, agent)
    mcp = over_http(live.url, key)
    try:
        assert mcp.call("whoami").structured_content["name"] == "claude-1"  # cached now
        agent_actions.revoke_key(Actor.system("test"), row.pk)
        revoked = time.monotonic()
        while True:
            try:
                mcp.call("whoami")
            except Exception:
                break
            assert time.monotonic() - revoked < 2.5, "still served 2.5 s after the revocation"
            time.sleep(0.1)
    finally:
        with contextlib.suppress(Exception):
            mcp.close()
    # What it was: a 401 in the API's shape, naming the key.
    r = httpx.post(
        f"{live.url}/mcp/",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream"},
    )
    assert r.status_code == 401
    assert r.json() == {"error": "unauthenticated", "detail": keys.UNKNOWN}
