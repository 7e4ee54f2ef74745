"""The overview in real Chromium against a real server: an operator watching it sees a task
another person blocks appear in Needs attention within a second, with no reload; dismissing it
takes it off their overview."""

from __future__ import annotations

import pytest

from tests.missioncontrol.factories import UserFactory
from tests.tasks.factories import make_task

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_a_task_blocked_elsewhere_appears_within_a_second(browser_factory, live):
    UserFactory.create(username="olga", role="operator")
    UserFactory.create(username="pete", role="operator")
    task = make_task("Rotate the TLS certificates")
    watcher, other = browser_factory(), browser_factory()
    watcher.login("olga")
    page = watcher.page
    page.goto("/")
    page.wait_for_selector("#live-status[data-state=live]")
    page.evaluate("window.__marker = 1")
    assert page.locator("#overview-attention", has_text="Rotate the TLS").count() == 0

    other.login("pete")
    other.page.goto(f"/tasks/{task.pk}/")
    other.page.fill("input[name=reason]", "waiting on the CA")
    other.page.click("text=Mark blocked")
    # Arrives live (the panel refetches at most once a second); how fast: bench/overview.py.
    page.wait_for_selector(
        "#overview-attention .attention-item:has-text('Rotate the TLS certificates')",
        timeout=15000,
    )
    assert "waiting on the CA" in page.inner_text("#overview-attention")
    assert page.evaluate("window.__marker") == 1  # no reload

    page.locator(".attention-item", has_text="Rotate the TLS").locator("text=Dismiss").click()
    page.wait_for_load_state("load")
    assert page.locator("#overview-attention", has_text="Rotate the TLS").count() == 0
    assert watcher.csp_violations() == []
