"""The Costs page in real Chromium against the real server: a heartbeat carrying usage moves
the numbers on screen, live, without a reload."""

from __future__ import annotations

import time

import httpx
import pytest

from agents.models import Agent, AgentKey
from tests.agents.conftest import issue
from tests.live import once
from tests.missioncontrol.factories import UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def spend_gpt4o(url: str, agent: str, key: str, usage_id: str) -> None:
    """A heartbeat carrying one gpt-4o call at OpenAI: 1,000 input + 500 output = $0.0075."""
    r = httpx.post(
        f"{url}/api/v1/agents/{agent}/heartbeat",
        json={
            "status": "busy",
            "usage": [
                {
                    "id": usage_id,
                    "model": "gpt-4o",
                    "provider": "openai",
                    "input_tokens": 1000,
                    "output_tokens": 500,
                }
            ],
        },
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 200, r.text


@once("sqlite", "the cost page's updates")
def test_a_heartbeat_with_usage_moves_the_cost_page_live(browser, live):
    UserFactory.create(username="watcher", role="viewer")
    agent = Agent.objects.create(name="spender", framework="claude-code")
    _key, full = issue(AgentKey.Kind.AGENT, agent)
    browser.login("watcher")
    page = browser.page
    page.goto("/costs/")
    page.wait_for_selector("#live-status[data-state=live]")
    assert page.inner_text("#cost-range-total") == "$0.00"
    page.evaluate("window.__marker = 1")  # gone if the page reloaded

    spend_gpt4o(live.url, "spender", full, "u1")
    page.wait_for_function(
        "() => document.querySelector('#cost-range-total').textContent.trim() === '$0.0075'",
        timeout=5000,
    )
    assert page.inner_text("#cost-range-records") == "1 record"
    assert page.evaluate("window.__marker") == 1
    assert page.locator(".cost-table tbody th", has_text="gpt-4o").count() == 1
    assert browser.csp_violations() == []


def test_a_budget_alert_appears_live_and_goes_when_acknowledged(browser, live):
    from decimal import Decimal

    from billing import actions, budgets
    from billing.models import Budget
    from missioncontrol.audit import Actor

    UserFactory.create(username="op", role="operator")
    agent = Agent.objects.create(name="big-spender", framework="codex")
    _key, full = issue(AgentKey.Kind.AGENT, agent)
    actions.save_budget(
        Actor.system("test"),
        Budget(name="Monthly cap", amount_usd=Decimal("0.01"), thresholds=[50]),
    )
    browser.login("op")
    page = browser.page
    page.goto("/board/")
    page.wait_for_selector("#live-status[data-state=live]")
    assert page.locator(".budget-alert").count() == 0
    # The server process learns of a budget made elsewhere within budgets.RULES_TTL_S: usage it
    # records before then does not count against the budget yet. Spend until the alert shows
    # (waiting for the server's answer, not sleeping for the cache).
    deadline = time.monotonic() + 10 * budgets.RULES_TTL_S
    for n in range(1, 100):
        spend_gpt4o(live.url, "big-spender", full, f"b{n}")
        try:
            page.wait_for_selector(".budget-alert:has-text('Monthly cap')", timeout=500)
            break
        except Exception:
            assert time.monotonic() < deadline, "the budget never alerted"
    assert "crossed 50%" in page.inner_text(".budget-alert")
    page.click(".budget-alert button[type=submit]")
    page.wait_for_url("**/board/")
    assert page.locator(".budget-alert").count() == 0
    assert browser.csp_violations() == []


def test_a_heartbeat_with_usage_on_a_task_moves_its_card_live(browser, live):
    """The card's cost appears on the board without a reload, and a move keeps it."""
    from tests.tasks.factories import make_task

    UserFactory.create(username="lead", role="operator")
    agent = Agent.objects.create(name="worker", framework="claude-code")
    _key, full = issue(AgentKey.Kind.AGENT, agent)
    task = make_task("Port the parser", status="in_progress", assignee=f"agent:{agent.pk}")
    browser.login("lead")
    page = browser.page
    page.goto("/board/")
    page.wait_for_selector("#live-status[data-state=live]")
    cost = f"#cost-task-{task.pk}"
    assert page.inner_text(cost) == ""
    assert not page.is_visible(cost)  # no cost yet: nothing shown
    page.evaluate("window.__marker = 1")
    r = httpx.post(
        f"{live.url}/api/v1/agents/worker/heartbeat",
        json={
            "status": "busy",
            "task_id": task.pk,
            "usage": [
                {
                    "id": "t1",
                    "model": "gpt-4o",
                    "provider": "openai",
                    "input_tokens": 1000,
                    "output_tokens": 500,
                    "task_id": task.pk,
                    "session": "run-1",
                }
            ],
        },
        headers={"Authorization": f"Bearer {full}"},
    )
    assert r.status_code == 200, r.text
    page.wait_for_function(
        f"() => document.querySelector('{cost}').textContent.trim() === '$0.0075'", timeout=5000
    )
    assert page.is_visible(cost)
    # Moved to Review from this page: the card the move pushes carries the cost too.
    page.focus(f"#task-{task.pk}")
    page.keyboard.press("m")
    page.wait_for_selector("#move-menu:not([hidden])")
    page.click("#move-menu [data-move-to=review]")
    page.wait_for_selector(f"#col-review-list #task-{task.pk}")
    page.wait_for_function(  # the server's card for the move has replaced the moved one
        f"() => document.querySelector('#task-{task.pk}').dataset.status === 'review'"
    )
    page.wait_for_timeout(300)
    assert page.inner_text(cost) == "$0.0075"
    assert page.evaluate("window.__marker") == 1
    assert browser.csp_violations() == []


@once("sqlite", "a form's fields")
def test_forms_show_only_the_fields_the_choice_needs(browser, live):
    """(#31.16) A budget's gateway/agent/model field shows only for that scope; a key's agent
    only for an agent key, its registrations only for an enrollment key; a check's cron
    expression only for a cron schedule — and a checkbox sits beside its label."""
    UserFactory.create(username="boss", role="admin")
    browser.login("boss")
    page = browser.page
    page.goto("/costs/budgets/")
    field = lambda name: page.locator(f"label.field:has([name={name}])")  # noqa: E731
    assert [field(n).is_visible() for n in ("gateway", "agent", "model")] == [False] * 3
    page.select_option("select[name=scope]", "agent")
    assert [field(n).is_visible() for n in ("gateway", "agent", "model")] == [False, True, False]
    page.select_option("select[name=scope]", "model")
    assert [field(n).is_visible() for n in ("gateway", "agent", "model")] == [False, False, True]
    page.goto("/settings/keys/")
    assert field("agent").is_visible()
    assert not field("max_uses").is_visible()
    page.select_option("select[name=kind]", "enrollment")
    assert not field("agent").is_visible()
    assert field("max_uses").is_visible()
    page.goto("/crons/checks/new/")
    page.select_option("select[name=kind]", "every")
    assert field("every_min").is_visible()
    assert not field("expr").is_visible()
    page.select_option("select[name=kind]", "cron")
    assert field("expr").is_visible()
    assert not field("every_min").is_visible()
    # A checkbox and its words on one line.
    page.goto("/costs/prices/")
    box = page.locator("input[name=reprice]").bounding_box()
    words = page.locator("label.check:has(input[name=reprice])").bounding_box()
    assert box is not None
    assert words is not None
    assert abs((box["y"] + box["height"] / 2) - (words["y"] + words["height"] / 2)) < 12


@once("sqlite", "the top bar's markup")
def test_the_spend_chip_follows_usage_live_on_any_page(browser, live):
    """(#31.9) The shell's "spent today" chip moves when usage arrives, on the board too — its
    own small fetch on the event, not a page reload."""
    UserFactory.create(username="lead", role="operator")
    agent = Agent.objects.create(name="chip-spender", framework="codex")
    _key, full = issue(AgentKey.Kind.AGENT, agent)
    browser.login("lead")
    page = browser.page
    page.goto("/board/")
    page.wait_for_selector("#live-status[data-state=live]")
    assert "$0.00" in page.inner_text("#spend-chip")
    page.evaluate("window.__marker = 1")
    spend_gpt4o(live.url, "chip-spender", full, "c1")
    page.wait_for_function(
        "() => document.querySelector('#spend-chip').textContent.includes('$0.0075')", timeout=8000
    )
    assert page.evaluate("window.__marker") == 1
    assert browser.csp_violations() == []
