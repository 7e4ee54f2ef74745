"""The Agents page in real Chromium: an agent appearing and changing status shows up live."""

from __future__ import annotations

import httpx
import pytest

from agents.models import Agent, AgentKey
from tests.agents.conftest import issue
from tests.live import once
from tests.missioncontrol.factories import UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_agent_status_changes_appear_live(browser, live):
    UserFactory.create(username="watcher", role="viewer")
    agent = Agent.objects.create(name="zeta", framework="codex")
    _key, full = issue(AgentKey.Kind.AGENT, agent)
    _key, enrollment = issue(AgentKey.Kind.ENROLLMENT)
    browser.login("watcher")
    page = browser.page
    page.goto("/agents/")
    page.wait_for_selector("#live-status[data-state=live]")
    assert page.inner_text(f"#agent-{agent.pk} .status-pill").strip() == "Offline"

    headers = {"Authorization": f"Bearer {full}"}
    r = httpx.post(
        f"{live.url}/api/v1/agents/zeta/heartbeat",
        json={"status": "busy", "message": "compiling"},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    page.wait_for_function(
        f"() => document.querySelector('#agent-{agent.pk} .status-pill').textContent.trim() === 'Busy'",
        timeout=3000,
    )
    assert page.inner_text("#agent-count-busy") == "1"
    assert page.inner_text("#agent-count-offline") == "0"

    # A new agent registering appears in the table in the page's order: what needs attention
    # first (busy zeta), then idle ones (alpha).
    r = httpx.post(
        f"{live.url}/api/v1/agents/register",
        json={"name": "alpha"},
        headers={"Authorization": f"Bearer {enrollment}"},
    )
    assert r.status_code == 201, r.text
    page.wait_for_selector(
        "#agent-rows tr:nth-child(2) .agent-name:has-text('alpha')", timeout=3000
    )
    # "last seen" keeps counting without any server traffic.
    page.wait_for_function(
        f"() => /s ago/.test(document.querySelector('#agent-{agent.pk} .seen-ago').textContent)"
    )
    assert browser.csp_violations() == []


@once("sqlite", "fragment ids in markup")
def test_an_agents_own_page_keeps_its_head_through_live_changes(browser, live):
    """The page's head (name, status) follows a status change and stays (it shared the list
    row's id once: the row's live upsert removed it until a reload)."""
    UserFactory.create(username="watcher", role="viewer")
    agent = Agent.objects.create(name="zeta", framework="codex")
    _key, full = issue(AgentKey.Kind.AGENT, agent)
    browser.login("watcher")
    page = browser.page
    page.goto("/agents/zeta/")
    page.wait_for_selector("#live-status[data-state=live]")
    r = httpx.post(
        f"{live.url}/api/v1/agents/zeta/heartbeat",
        json={"status": "busy", "message": "compiling"},
        headers={"Authorization": f"Bearer {full}"},
    )
    assert r.status_code == 200, r.text
    page.wait_for_function(
        f"() => document.getElementById('agent-status-{agent.pk}')?.textContent.trim() === 'Busy'",
        timeout=3000,
    )
    head = page.locator(f"#agent-head-{agent.pk}")
    assert head.is_visible()
    assert "zeta" in head.inner_text()
    assert browser.csp_violations() == []


@once("sqlite", "markup only")
def test_api_docs_render_without_csp_violations(browser):
    UserFactory.create(username="dev", role="viewer")
    browser.login("dev")
    page = browser.page
    page.goto("/api/v1/docs/")
    page.wait_for_selector(".swagger-ui .opblock", timeout=8000)
    assert "/api/v1/agents/{name}/heartbeat" in page.inner_text(".swagger-ui")
    assert browser.csp_violations() == []


@once("sqlite", "the browser's clipboard")
def test_a_new_keys_copy_button_copies_it(browser, live):
    UserFactory.create(username="root", role="admin")
    Agent.objects.create(name="ada", framework="codex")
    browser.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)
    browser.login("root")
    page = browser.page
    page.goto("/settings/keys/")
    page.select_option("select[name=kind]", "enrollment")
    page.click("form.stack button[type=submit]")
    page.wait_for_selector("#new-key")
    page.click("[data-copy=new-key]")
    page.wait_for_selector("[data-copy=new-key]:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == page.inner_text("#new-key").strip()
    assert browser.csp_violations() == []
