"""Real Chromium against the real server: sign in, the shell, theme, sign out, zero CSP violations."""

from __future__ import annotations

import re

import pytest

from tests.live import once
from tests.missioncontrol.factories import UserFactory

pytestmark = [
    once("sqlite", "the shell's markup and sign-in"),
    pytest.mark.slow,
    pytest.mark.browser,
]


def test_sign_in_see_the_shell_switch_theme_and_sign_out(browser):
    UserFactory.create(username="dana", role="operator")
    page = browser.page
    page.goto("/login/")
    assert browser.csp_violations() == []
    browser.login("dana")

    assert page.locator(".brand").inner_text().strip() == "Mission Control"
    assert page.locator(".user-name").inner_text() == "dana"
    assert page.locator(".role-badge").first.inner_text().lower() == "operator"
    assert page.locator(".nav a.current").inner_text() == "Overview"
    # The sign-in itself shows up in the live activity feed.
    assert "dana" in page.locator("#activity-list").inner_text()
    page.wait_for_selector("#live-status[data-state=live]")

    before = page.evaluate("document.documentElement.dataset.theme || ''")
    page.click("#theme-toggle")
    after = page.evaluate("document.documentElement.dataset.theme")
    assert after in {"light", "dark"}
    assert after != before
    page.reload()
    assert page.evaluate("document.documentElement.dataset.theme") == after  # remembered

    # "g" then a letter jumps to a section the navigation offers this user.
    page.keyboard.press("g")
    page.keyboard.press("j")
    page.wait_for_url("**/crons/")
    page.keyboard.press("g")
    page.keyboard.press("o")
    page.wait_for_url(re.compile(r"^https?://[^/]+/$"))
    assert browser.csp_violations() == []
    page.click(".user-menu summary")
    page.click("text=Sign out")
    page.wait_for_url("**/login/")
    assert page.locator("input[name=username]").is_visible()


def test_wrong_password_shows_an_error_in_the_form(browser):
    UserFactory.create(username="erin", role="viewer")
    page = browser.page
    page.goto("/login/")
    page.fill("input[name=username]", "erin")
    page.fill("input[name=password]", "not it")
    page.click("button[type=submit]")
    assert "correct username and password" in page.locator("[role=alert]").inner_text()


def test_django_admin_runs_without_csp_violations(browser):
    UserFactory.create(username="root", role="admin")
    browser.login("root")
    page = browser.page
    for path in (
        "/admin/",
        "/admin/auth/user/",
        "/admin/auth/user/add/",
        "/admin/auth/group/1/change/",
    ):
        page.goto(path)
        page.wait_for_load_state("networkidle")
        assert browser.csp_violations() == [], path
