"""A pipeline in real Chromium against the real server (#28): an operator starts a run from the
pipeline's page and watches its page advance live as a CLI agent works each step over the API
— the next step starting by itself — then approves the gate on that page; the run ends
succeeded without a reload."""

from __future__ import annotations

import httpx
import pytest

from agents.models import Agent, AgentKey
from missioncontrol.audit import Actor
from pipelines import actions
from pipelines.models import PipelineRun
from tests.agents.conftest import issue
from tests.live import once
from tests.missioncontrol.factories import UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.browser]

TEXT = """name: Two steps
inputs:
  - {name: topic, type: text, required: true}
steps:
  - id: first
    agent: codex-1
    brief: "Research {{ inputs.topic }}"
  - id: second
    agent: codex-1
    needs: [first]
    brief: "Write up: {{ steps.first.output }}"
  - id: sign-off
    needs: [second]
    approval: {by: operator, instructions: Read the write-up}
"""


@once("sqlite", "the run page in the browser (the engine runs on both: tests/pipelines)")
def test_a_run_page_advances_live_and_its_gate_is_approved_there(browser_factory, live):
    UserFactory.create(username="olga", role="operator")
    agent = Agent.objects.create(name="codex-1", framework="codex")
    _key, key = issue(AgentKey.Kind.AGENT, agent)
    pipeline_id = actions.save(Actor.system("test"), TEXT).pipeline_id
    session = browser_factory()
    session.login("olga")
    page = session.page
    page.goto(f"/pipelines/{pipeline_id}/")
    page.fill("textarea[name=topic]", "tides")
    page.click("text=Start a run")
    page.wait_for_url("**/pipelines/runs/*/")
    page.wait_for_selector("#live-status[data-state=live]")
    run = PipelineRun.objects.get()
    step = f"#step-{run.pk}-"
    page.wait_for_selector(f"{step}first.is-running")
    assert page.is_visible(f"{step}second.is-waiting")

    agent_api = httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}"})

    def work(reply: str, watch: str = "") -> str:
        offered = agent_api.post("/api/v1/agents/codex-1/heartbeat", json={"status": "idle"})
        [run_offered] = offered.json()["work"]["runs"]
        assert agent_api.post(f"/api/v1/runs/{run_offered['id']}/claim").status_code == 200
        if watch:  # the step's node follows its run: the agent took it
            page.wait_for_selector(f"{watch} .pstep-run >> text=codex-1 is working on it")
        done = agent_api.post(
            f"/api/v1/runs/{run_offered['id']}/finish",
            json={"outcome": "succeeded", "reply": reply},
        )
        assert done.status_code == 200, done.text
        return str(run_offered["prompt"])

    page.wait_for_selector(f"{step}first .pstep-run >> text=waiting for codex-1 to take it")
    assert "Research tides" in work("The moon pulls the sea.", watch=f"{step}first")
    page.wait_for_selector(f"{step}first.is-succeeded >> text=The moon pulls the sea.")
    page.wait_for_selector(f"{step}second.is-running")
    assert "Write up: The moon pulls the sea." in work("Tides, explained.")
    page.wait_for_selector(f"{step}sign-off.is-awaiting_approval")
    # The gate's form arrives live too (its request carries the page's CSRF token, not one of
    # its own: it was rendered once for everyone), answered on this page, without a reload.
    page.fill(".approval.is-pending textarea[name=comment]", "Good")
    page.click(".approval.is-pending button[value=approved]")
    page.wait_for_selector(f"#pipeline-run-{run.pk}[data-state=succeeded]")
    page.wait_for_selector(f"{step}sign-off.is-succeeded")
    assert page.url.endswith(f"/pipelines/runs/{run.pk}/")  # no navigation: the same page
    page.wait_for_selector(f"#run-answers-{run.pk} .approval.is-approved >> text=Good")
    run.refresh_from_db()
    assert run.state == "succeeded"
    assert session.csp_violations() == []
