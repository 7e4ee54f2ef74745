"""Every page fits a phone (390 px): no sideways page scroll, a usable menu, and the shortcuts."""

from __future__ import annotations

import pytest
from django.db import connection
from django.utils import timezone

from agents.models import Agent
from billing.models import UsageRecord
from gateways import frames
from tasks.models import Task
from tests.missioncontrol.factories import UserFactory

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    # Layout at 390 px, shortcuts and rendered markdown do not depend on the database; every
    # page's queries run on PostgreSQL in its own tests: one profile only (~20 s of CI time).
    pytest.mark.skipif(connection.vendor != "sqlite", reason="layout only: the SQLite profile"),
]


def _wide_content() -> tuple[Agent, Task]:
    agent = Agent.objects.create(
        name="a-rather-long-agent-name-for-phones",
        framework="claude-code",
        model="claude-sonnet-4-5-20250929",
        last_message="x" * 300,
    )
    for i in range(3):
        UsageRecord.objects.create(
            agent=agent,
            model="claude-sonnet-4-5-20250929",
            input_tokens=123456789,
            output_tokens=98765432,
            cache_read_tokens=1234567,
            client_id=f"u{i}",
            occurred_at=timezone.now(),
        )
    task = Task.objects.create(
        title="A long title " * 10,
        description="- [ ] first step\n- [x] done step\n\n"
        + "averyveryverylongwordwithoutspaces" * 5,
        status="todo",
        assignee_agent=agent,
        labels=",backend,frontend,ops,",
    )
    return agent, task


def test_every_page_in_the_navigation_fits_390px(browser, live):
    UserFactory.create(username="phoebe", role="admin")
    agent, task = _wide_content()
    # A gateway session whose key has no place to break (as gateways name cron and sub-agent
    # sessions): its page was 1,004 px wide before titles could break anywhere.
    from agents import actions as agent_actions
    from agents.models import AgentSession
    from tests.gateways.factories import make_gateway
    from tests.gateways.test_sessions import session_row

    gateway = make_gateway(name="prod", token="t")
    agent_actions.sync_gateway_sessions(
        gateway.pk,
        frames.sessions([session_row("agent:main:cron:" + ":".join(["nightlyreport"] * 6))]),
    )
    session = AgentSession.objects.get()
    browser.context.close()
    browser.context = browser.page.context.browser.new_context(
        base_url=live.url, viewport={"width": 390, "height": 844}
    )
    browser.page = browser.context.new_page()
    browser.login("phoebe")
    page = browser.page
    links = page.eval_on_selector_all(
        "#nav-sections a", "els => els.map(e => e.getAttribute('href'))"
    )
    assert len(links) >= 5
    # The user menu's pages too (Webhooks, API keys, Audit log; not Django's own admin).
    links += [
        href
        for href in page.eval_on_selector_all(
            ".menu a[role=menuitem]", "els => els.map(e => e.getAttribute('href'))"
        )
        if not href.startswith("/admin/")
    ]
    assert "/audit/" in links
    assert "/webhooks/" in links
    pages = [
        *links,
        "/crons/checks/new/",
        f"/agents/{agent.name}/",
        f"/tasks/{task.pk}/",
        f"/sessions/{session.pk}/",
        "/api/v1/docs/",
    ]
    for path in pages:
        page.goto(path)
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width}px wide at 390px"

    # The sections menu: hidden behind a button, opens, navigates, closes with Escape.
    page.goto("/board/")
    assert not page.is_visible("#nav-sections a[href='/agents/']")
    page.click("#nav-toggle")
    assert page.get_attribute("#nav-toggle", "aria-expanded") == "true"
    page.click("#nav-sections a[href='/agents/']")
    page.wait_for_url("**/agents/")
    page.click("#nav-toggle")
    page.keyboard.press("Escape")
    assert not page.is_visible("#nav-sections a[href='/board/']")


def test_shortcut_help_and_search_focus(browser, live):
    UserFactory.create(username="kim", role="operator")
    browser.login("kim")
    page = browser.page
    page.goto("/board/")
    page.wait_for_selector("#live-status[data-state=live]")
    page.keyboard.press("?")
    assert page.is_visible("#shortcuts-dialog")
    assert "Add a task" in page.inner_text("#shortcuts-dialog")
    page.keyboard.press("Escape")
    assert not page.is_visible("#shortcuts-dialog")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.getAttribute('type')") == "search"
    page.keyboard.press("Escape")
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("n")
    assert page.is_visible("#new-task-dialog")
    assert browser.csp_violations() == []


def test_markdown_task_lists_render_as_checkboxes(browser, live):
    UserFactory.create(username="vic", role="viewer")
    _agent, task = _wide_content()
    browser.login("vic")
    page = browser.page
    page.goto(f"/tasks/{task.pk}/")
    boxes = page.query_selector_all(".markdown input[type=checkbox]")
    assert len(boxes) == 2
    assert [b.is_checked() for b in boxes] == [False, True]
    assert all(b.is_disabled() for b in boxes)
