"""The real-time spine in real Chromium: pause when hidden, exact catch-up, reconnect."""

from __future__ import annotations

import pytest

from tests.conftest import LIVE_SERVER_ENV, BrowserSession
from tests.live import ServerProcess, free_port, once
from tests.missioncontrol.factories import UserFactory
from tests.tasks.factories import make_task

pytestmark = [pytest.mark.slow, pytest.mark.browser]

HIDE = """() => {
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
  document.dispatchEvent(new Event('visibilitychange'));
}"""
SHOW = """() => {
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'visible'});
  document.dispatchEvent(new Event('visibilitychange'));
}"""


def open_board(browser, username: str):
    """Sign in as a new viewer, open the board, wait until live; returns the page."""
    UserFactory.create(username=username, role="viewer")
    browser.login(username)
    page = browser.page
    page.goto("/board/")
    page.wait_for_selector("#live-status[data-state=live]")
    page.evaluate("window.__sameDocument = true")
    return page


def todo_titles(page) -> list[str]:
    return page.eval_on_selector_all(
        "#col-todo-list .card-title", "els => els.map(e => e.textContent.trim())"
    )


def test_hidden_tab_pauses_then_catches_up_exactly_in_order(browser):
    page = open_board(browser, "hana")
    page.evaluate(HIDE)
    page.wait_for_selector("#live-status[data-state=paused]", timeout=3000)
    titles = [f"Missed {i:02d}" for i in range(20)]
    for title in titles:
        make_task(title)  # written while the tab is away
    page.wait_for_timeout(300)
    assert todo_titles(page) == []  # nothing processed while hidden

    page.evaluate(SHOW)
    page.wait_for_function(
        "() => document.querySelectorAll('#col-todo-list .task-card').length === 20", timeout=3000
    )
    assert todo_titles(page) == titles
    assert page.inner_text("#count-todo") == "20"
    assert page.evaluate("window.__sameDocument") is True  # no full page reload
    page.wait_for_selector("#live-status[data-state=live]")
    assert browser.csp_violations() == []


@once("sqlite", "the page's reload")
def test_too_much_missed_reloads_the_panels_in_place(browser, settings):
    page = open_board(browser, "ivo")
    page.evaluate(HIDE)
    page.wait_for_selector("#live-status[data-state=paused]", timeout=3000)
    make_task("Before the gap")
    from missioncontrol.models import LiveEvent

    LiveEvent.objects.all().delete()  # as if retention pruned what the tab missed
    make_task("After the gap")
    page.evaluate(SHOW)
    page.wait_for_function(
        "() => document.querySelectorAll('#col-todo-list .task-card').length === 2", timeout=3000
    )
    assert todo_titles(page) == ["Before the gap", "After the gap"]
    assert page.evaluate("window.__sameDocument") is True


def test_server_restart_shows_reconnecting_then_catches_up(
    chromium, transactional_db, test_db_path
):
    UserFactory.create(username="kai", role="viewer")
    port = free_port()
    server = ServerProcess(test_db_path, port=port, extra_env=LIVE_SERVER_ENV).start()
    session = BrowserSession(chromium, server.url)
    try:
        session.login("kai")
        page = session.page
        page.goto("/board/")
        page.wait_for_selector("#live-status[data-state=live]")
        page.evaluate("window.__sameDocument = true")
        server.stop()
        page.wait_for_selector("#live-status[data-state=reconnecting]", timeout=5000)
        make_task("While the server was down")
        server = ServerProcess(test_db_path, port=port, extra_env=LIVE_SERVER_ENV).start()
        page.wait_for_selector("#col-todo-list .task-card", timeout=20000)
        assert todo_titles(page) == ["While the server was down"]
        page.wait_for_selector("#live-status[data-state=live]")
        assert page.evaluate("window.__sameDocument") is True
    finally:
        session.close()
        server.stop()


@once("sqlite", "the browser's transport")
def test_falls_back_to_sse_when_websockets_are_blocked(browser):
    UserFactory.create(username="sam", role="viewer")
    # A browser (or proxy) without WebSocket: the page must still be live over SSE.
    browser.context.add_init_script(
        "window.WebSocket = function () { throw new Error('blocked'); };"
    )
    browser.login("sam")
    page = browser.page
    page.goto("/board/")
    page.wait_for_selector("#live-status[data-state=live]")
    assert page.evaluate("window.mcLive.state.mode") == "sse"
    make_task("Over SSE")
    # Written by another process: no fan-out reaches the server, so force a reconnect and
    # let the stream's replay (Last-Event-ID / since) bring it.
    page.evaluate(HIDE)
    page.wait_for_selector("#live-status[data-state=paused]", timeout=3000)
    page.evaluate(SHOW)
    page.wait_for_selector("#col-todo-list .task-card:has-text('Over SSE')", timeout=5000)
    assert browser.csp_violations() == []


@once("sqlite", "the browser's transport")
def test_upgrades_that_never_arrive_fall_back_once_remembered_and_named(
    chromium, test_db_path, static_built, transactional_db
):
    """A proxy that does not forward the upgrade: each socket closes without opening. After
    three tries the page goes live over SSE and says so ("Live (SSE)"); the next pages of the
    tab go straight to SSE (no socket tried, no "Reconnecting"), and the admins' Deployment
    page names the proxy fix. (A server of its own: a finding is noted once a minute per
    process, and the shared server may have noted this one for an earlier test.)"""
    UserFactory.create(username="ulla", role="viewer")
    server = ServerProcess(test_db_path, extra_env=LIVE_SERVER_ENV).start()
    browser = BrowserSession(chromium, server.url)
    try:
        _upgrades_never_arrive(browser)
    finally:
        browser.close()
        server.stop()


def _upgrades_never_arrive(browser: BrowserSession) -> None:
    browser.context.add_init_script(
        """
        window.__sockets = 0;
        window.WebSocket = class {
          constructor(url) {
            window.__sockets += 1;
            setTimeout(() => this.onclose && this.onclose({ code: 1006 }), 20);
          }
          close() {}
        };
        """
    )
    browser.login("ulla")
    page = browser.page
    page.goto("/board/")
    page.wait_for_selector("#live-status[data-state=live]", timeout=10000)
    assert page.evaluate("window.__sockets") == 3
    assert page.inner_text("#live-status .live-label") == "Live (SSE)"
    assert "Server-Sent Events" in (page.get_attribute("#live-status", "title") or "")

    from missioncontrol.models import DeploymentFinding

    found = DeploymentFinding.objects.get(code="websocket")
    assert "never open" in found.detail
    assert "proxy_set_header Upgrade" in found.remedy

    page.goto("/agents/")
    page.wait_for_selector("#live-status[data-state=live]", timeout=3000)
    assert page.evaluate("window.__sockets") == 0  # a new document: remembered, none tried
    assert page.inner_text("#live-status .live-label") == "Live (SSE)"
    assert DeploymentFinding.objects.get(code="websocket").count == 1  # reported once
    assert browser.csp_violations() == []


def test_sse_page_sees_another_users_move_live(browser_factory):
    UserFactory.create(username="sid", role="viewer")
    UserFactory.create(username="opal", role="operator")
    task = make_task("Pushed over SSE")
    watcher = browser_factory()
    watcher.context.add_init_script(
        "window.WebSocket = function () { throw new Error('blocked'); };"
    )
    watcher.login("sid")
    watcher.page.goto("/board/")
    watcher.page.wait_for_selector("#live-status[data-state=live]")
    mover = browser_factory()
    mover.login("opal")
    mover.page.goto("/board/")
    mover.page.focus(f"#task-{task.pk}")
    mover.page.keyboard.press("Alt+ArrowRight")
    watcher.page.wait_for_selector(f"#col-in_progress-list #task-{task.pk}", timeout=2000)
    assert watcher.page.evaluate("window.mcLive.state.mode") == "sse"
