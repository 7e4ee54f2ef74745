from __future__ import annotations

import json

import httpx
import pytest

from agents.models import Agent, AgentKey
from missioncontrol.audit import Actor
from missioncontrol.live import current_seq
from tasks import actions
from tests.agents.conftest import issue
from tests.tasks.factories import make_task

pytestmark = pytest.mark.django_db(transaction=True)


def read_frames(response, count: int) -> list[dict]:
    frames: list[dict] = []
    buffer = ""
    for chunk in response.iter_text():
        buffer += chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            data = [line[6:] for line in block.splitlines() if line.startswith("data: ")]
            if data:
                frames.append(json.loads(data[0]))
        if len(frames) >= count:
            return frames
    return frames


class TestAgentEvents:
    """Against the real server: the in-process ASGI transport does not stream."""

    def test_replays_changes_to_its_own_tasks_only(self, live):
        ada = Agent.objects.create(name="ada-sse")
        _key, full = issue(AgentKey.Kind.AGENT, ada)
        mine = make_task("Mine", assignee=f"agent:{ada.pk}")
        other = make_task("Not mine")
        since = current_seq()
        actions.move_task(Actor.system("t"), mine.pk, to_status="review")
        actions.move_task(Actor.system("t"), other.pk, to_status="review")
        headers = {"Authorization": f"Bearer {full}", "Last-Event-ID": str(since)}
        with httpx.stream("GET", f"{live.url}/api/v1/events", headers=headers, timeout=5) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            frames = read_frames(r, 2)
        assert frames[0]["type"] == "task.moved"
        assert frames[0]["task"]["id"] == mine.pk
        assert frames[0]["task"]["status"] == "review"
        assert frames[1]["type"] == "ready"

    def test_a_revoked_key_ends_its_open_stream(self, live):
        """The stream ends with the right that opened it (issue #30 §1): revoked elsewhere (the
        admin's page, another process), the key's open stream closes within seconds."""
        from agents import actions as agent_actions

        ada = Agent.objects.create(name="ada-revoked")
        key, full = issue(AgentKey.Kind.AGENT, ada)
        headers = {"Authorization": f"Bearer {full}"}
        seen, revoked = "", False
        # The client's read timeout (10 s) fails the test if the stream is left open.
        with httpx.stream("GET", f"{live.url}/api/v1/events", headers=headers, timeout=10) as r:
            assert r.status_code == 200
            for chunk in r.iter_text():
                seen += chunk
                if '"ready"' in seen and not revoked:
                    revoked = True
                    agent_actions.revoke_key(Actor.system("t"), key.pk)
        assert "event: revoked" in seen

    def test_needs_an_agent_key(self, live):
        _k, enrollment = issue(AgentKey.Kind.ENROLLMENT)
        assert httpx.get(f"{live.url}/api/v1/events", timeout=5).status_code == 401
        assert (
            httpx.get(
                f"{live.url}/api/v1/events", headers={"X-Api-Key": enrollment}, timeout=5
            ).status_code
            == 403
        )


class TestSchemaAndDocs:
    def test_schema_lists_every_endpoint(self, viewer):
        response = viewer.get("/api/v1/schema/?format=json")
        assert response.status_code == 200
        paths = set(json.loads(response.content)["paths"])
        assert paths >= {
            "/api/v1/agents/register",
            "/api/v1/agents/{name}/heartbeat",
            "/api/v1/usage",
            "/api/v1/tasks",
            "/api/v1/tasks/{task_id}",
            "/api/v1/tasks/{task_id}/claim",
            "/api/v1/tasks/{task_id}/comments",
            "/api/v1/events",
        }

    def test_schema_for_an_agent_key(self, client, ada):
        _key, full = issue(AgentKey.Kind.AGENT, Agent.objects.get(pk=ada.pk))
        assert client.get("/api/v1/schema/", HTTP_AUTHORIZATION=f"Bearer {full}").status_code == 200

    def test_anonymous_and_outsiders_are_refused(self, client, outsider):
        assert client.get("/api/v1/schema/").status_code == 401
        assert outsider.get("/api/v1/schema/").status_code == 403
        assert outsider.get("/api/v1/docs/").status_code == 403

    def test_docs_page_uses_local_assets_and_no_inline_script(self, viewer):
        html = viewer.get("/api/v1/docs/").content.decode()
        assert "/static/ninja/swagger-ui-bundle" in html
        assert "/static/js/api-docs" in html
        assert 'data-schema-url="/api/v1/schema/"' in html
        assert "cdn" not in html.lower()
        assert "<script>" not in html
        assert "<style>" not in html
