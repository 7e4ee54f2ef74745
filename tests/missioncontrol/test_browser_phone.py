"""Every page fits a phone (390 px): no sideways page scroll, a usable menu, and the shortcuts."""

from __future__ import annotations

import pytest
from django.utils import timezone

from agents.models import Agent
from billing.models import UsageRecord
from gateways import frames
from tasks.models import Task
from tests.live import once
from tests.missioncontrol.factories import UserFactory

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    # Layout at 390 px, shortcuts and rendered markdown do not depend on the database; every
    # page's queries run on PostgreSQL in its own tests: one profile only (~20 s of CI time).
    once("sqlite", "layout only"),
]


# What a person cannot see: a control (link, button, field) or a table cell's text that ends
# past the viewport's right edge or is cut by a box that clips it. A box that scrolls sideways
# may hold text a swipe brings (and the board's columns), never a primary action (a button):
# a page can be 390 px wide and still hide a Revoke button in a table.
OUT_OF_SIGHT = """() => {
  const vw = document.documentElement.clientWidth;
  const scrolls = (el) => {
    const action = el.matches("button, .btn, input[type=submit]");
    for (let p = el.parentElement; p; p = p.parentElement) {
      const s = getComputedStyle(p);
      if ((s.overflowX === "auto" || s.overflowX === "scroll") && p.scrollWidth > p.clientWidth) {
        return !action || p.closest(".board") !== null;
      }
    }
    return false;
  };
  const clipped = (el, r) => {
    for (let p = el.parentElement; p; p = p.parentElement) {
      const s = getComputedStyle(p);
      if (s.overflowX === "hidden" || s.overflowX === "clip") {
        const b = p.getBoundingClientRect();
        if (r.right > b.right + 1 || r.left < b.left - 1) return true;
      }
    }
    return false;
  };
  const found = [];
  for (const el of document.querySelectorAll("main a, main button, main input, main select, main textarea, main td, main th")) {
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height || getComputedStyle(el).visibility === "hidden") continue;
    if (el.closest("dialog:not([open]), details:not([open]) > :not(summary)")) continue;
    if (scrolls(el)) continue;
    if (r.right > vw + 1 || clipped(el, r)) {
      found.push(`${el.tagName.toLowerCase()} "${(el.innerText || el.value || el.name || "").trim().slice(0, 30)}"`);
    }
  }
  return found.slice(0, 8);
}"""


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
        + "averyveryverylongwordwithoutspaces" * 5
        # A fenced block of a long line: it made the task page 438 px wide (#31.10).
        + "\n\n```\n"
        + "pytest tests/missioncontrol/test_browser_phone.py -k fits --maxfail=1 -q"
        + "\n```\n",
        status="todo",
        assignee_agent=agent,
        labels=",backend,frontend,ops,",
    )
    # It waits for a task with a long title, and has a run that failed with a long reason.
    blocker = Task.objects.create(title="Another long title " * 8, status="in_progress")
    task.blocked_by.add(blocker)
    from runs.models import Run

    Run.objects.create(
        task=task,
        agent=agent,
        agent_name=agent.name,
        attempt=1,
        state="failed",
        prompt="p",
        requested_label="phoebe",
        error="averyveryverylongerrorwithoutspaces" * 6,
    )
    return agent, task


def test_every_page_in_the_navigation_fits_390px(browser, live):
    UserFactory.create(username="phoebe", role="admin")
    agent, task = _wide_content()
    # A gateway session whose key has no place to break (as gateways name cron and sub-agent
    # sessions): its page was 1,004 px wide before titles could break anywhere.
    from agents import sessions as agent_sessions
    from agents.models import AgentSession
    from tests.gateways.factories import make_gateway
    from tests.gateways.test_sessions import session_row

    gateway = make_gateway(name="prod", token="t")
    agent_sessions.sync_gateway_sessions(
        gateway.pk,
        frames.sessions([session_row("agent:main:cron:" + ":".join(["nightlyreport"] * 6))]),
    )
    session = AgentSession.objects.get()
    # A row in every table with actions: a key (Revoke), a budget (its amount, Delete), a
    # price of our own (Delete), a webhook endpoint.
    from decimal import Decimal

    from agents.models import AgentKey
    from billing import actions as billing_actions
    from billing.models import Budget, PriceOverride
    from missioncontrol.audit import Actor
    from tests.agents.conftest import issue

    issue(AgentKey.Kind.AGENT, agent)
    billing_actions.save_budget(
        Actor.system("tests"),
        Budget(name="Team budget for the month", amount_usd=Decimal("1234.56"), enforce=True),
    )
    PriceOverride.objects.create(
        model_pattern="claude-sonnet-4-5-*",
        input_per_mtok=Decimal(3),
        output_per_mtok=Decimal(15),
        effective_from=timezone.now().date(),
    )
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
        "/costs/budgets/",
        "/costs/prices/",
        f"/agents/{agent.name}/",
        f"/tasks/{task.pk}/",
        f"/sessions/{session.pk}/",
        "/api/v1/docs/",
    ]
    problems = []
    for path in pages:
        page.goto(path)
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > 390:
            problems.append(f"{path} is {width}px wide at 390px")
        cut = page.evaluate(OUT_OF_SIGHT)
        if cut:
            problems.append(f"{path}: out of sight at 390px: {cut}")
    assert not problems, "\n".join(problems)

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
    # Typing goes to the title (focus on the dialog's ✕ closed it at the first space).
    page.keyboard.type("Write the notes")
    assert page.is_visible("#new-task-dialog")
    assert page.input_value("#new-task-dialog input[name=title]") == "Write the notes"
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


def test_a_touch_phone_gets_search_finger_sized_targets_and_no_key_hints(browser, live):
    """On a touch phone (#31.12): the palette's button is in the top bar (it was hidden on
    phones: no search at all), keyboard hints ("Alt ↑") are not shown, and the overview's
    actions are at least 44 px tall (they were 29 px)."""
    from tasks import actions as task_actions
    from tests.tasks.factories import make_task

    UserFactory.create(username="tom", role="operator")
    task = make_task("Unblock the deploy")
    from missioncontrol.audit import Actor

    task_actions.set_blocked(Actor.system("tests"), task.pk, blocked=True, reason="DNS")
    browser.context.close()
    browser.context = browser.page.context.browser.new_context(
        base_url=live.url, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    browser.page = browser.context.new_page()
    browser.login("tom")
    page = browser.page
    page.goto("/")
    heights = page.eval_on_selector_all(
        "#overview-attention .attention-side .btn",
        "els => els.map(e => e.getBoundingClientRect().height)",
    )
    assert heights
    assert min(heights) >= 44, heights
    page.goto("/board/")
    assert not page.locator(".keys-hint").first.is_visible()
    assert page.is_visible("[data-action=open-palette]")
    page.tap("[data-action=open-palette]")
    assert page.is_visible("#palette")
    page.keyboard.type("Unblock")
    page.wait_for_selector("#palette .palette-results li")
    assert "Unblock the deploy" in page.inner_text("#palette .palette-results")
    page.evaluate("document.getElementById('palette').close()")
    # The theme switch moved into the user menu on a phone.
    assert not page.is_visible("#theme-toggle")
    page.tap(".user-menu summary")
    before = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.tap(".user-menu [data-action=toggle-theme]")
    page.wait_for_function(
        f"getComputedStyle(document.body).backgroundColor !== {before!r}", timeout=3000
    )
    assert browser.csp_violations() == []
