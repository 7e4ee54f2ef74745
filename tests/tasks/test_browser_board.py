"""The board in real Chromium against the real server: drag, keyboard, live, roles, CSP."""

from __future__ import annotations

import pytest
from django.db.models import F

from tasks.models import Task
from tests.live import once
from tests.missioncontrol.factories import UserFactory
from tests.tasks.factories import make_task

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def column_ids(page, status: str) -> list[str]:
    return page.eval_on_selector_all(
        f"#col-{status}-list > .task-card", "els => els.map(e => e.id)"
    )


@pytest.fixture
def ops(browser_factory):
    UserFactory.create(username="olga", role="operator")
    session = browser_factory()
    session.login("olga")
    return session


def moved(response) -> bool:
    """The server's answer to a card move (the test waits for it, not for a fixed time)."""
    return response.request.method == "POST" and "/move/" in response.url


def test_drag_a_card_from_todo_to_in_progress_and_it_stays(ops):
    task = make_task("Drag me")
    page = ops.page
    page.goto("/board/")
    page.wait_for_selector("#live-status[data-state=live]")
    with page.expect_response(moved):
        page.drag_and_drop(f"#task-{task.pk}", "#col-in_progress-list")
    page.wait_for_function(
        f"() => document.querySelector('#col-in_progress-list #task-{task.pk}') !== null"
    )
    assert Task.objects.get(pk=task.pk).status == "in_progress"
    page.reload()
    assert column_ids(page, "in_progress") == [f"task-{task.pk}"]
    assert page.inner_text("#count-in_progress") == "1"
    assert ops.csp_violations() == []


@once("sqlite", "keyboard handling")
def test_keyboard_move_and_reorder(ops):
    a, b = make_task("Alpha"), make_task("Beta")
    page = ops.page
    page.goto("/board/")
    page.focus(f"#task-{b.pk}")
    with page.expect_response(moved):
        page.keyboard.press("Alt+ArrowUp")  # Beta above Alpha
    page.wait_for_function(
        f"() => document.querySelector('#col-todo-list').firstElementChild.id === 'task-{b.pk}'"
    )
    assert list(Task.objects.in_column("todo").values_list("title", flat=True)) == ["Beta", "Alpha"]
    # The move menu, from the keyboard: M, then pick Review.
    page.focus(f"#task-{a.pk}")
    page.keyboard.press("m")
    page.wait_for_selector("#move-menu:not([hidden])")
    with page.expect_response(moved):
        page.click("#move-menu [data-move-to=review]")
    page.wait_for_function(
        f"() => document.querySelector('#col-review-list #task-{a.pk}') !== null"
    )
    assert Task.objects.get(pk=a.pk).status == "review"
    page.reload()
    assert column_ids(page, "review") == [f"task-{a.pk}"]
    assert column_ids(page, "todo") == [f"task-{b.pk}"]


def test_a_second_browser_sees_moves_and_new_tasks_live(ops, browser_factory):
    task = make_task("Shared")
    UserFactory.create(username="vera", role="viewer")
    watcher = browser_factory()
    watcher.login("vera")
    watcher.page.goto("/board/")
    watcher.page.wait_for_selector("#live-status[data-state=live]")
    watcher.page.evaluate("window.__sameDocument = true")

    ops.page.goto("/board/")
    ops.page.wait_for_selector("#live-status[data-state=live]")
    ops.page.focus(f"#task-{task.pk}")
    ops.page.keyboard.press("Alt+ArrowRight")  # To do -> In progress
    watcher.page.wait_for_selector(f"#col-in_progress-list #task-{task.pk}", timeout=1000)
    assert watcher.page.inner_text("#count-in_progress") == "1"
    assert watcher.page.inner_text("#count-todo") == "0"

    # A new task created in the dialog appears for the watcher.
    ops.page.click("[data-action=new-task]")
    ops.page.fill("#new-task-form input[name=title]", "Created live")
    ops.page.click("#new-task-form button[type=submit]")
    watcher.page.wait_for_selector(
        "#col-inbox-list .task-card:has-text('Created live')", timeout=1500
    )
    assert watcher.page.evaluate("window.__sameDocument") is True  # no page reload
    assert watcher.csp_violations() == []
    assert ops.csp_violations() == []


@once("sqlite", "the page's rollback")
def test_refused_move_rolls_back_with_a_message(ops):
    task = make_task("Contested")
    page = ops.page
    page.goto("/board/")
    page.wait_for_selector("#live-status[data-state=live]")
    # Someone else changed it and this page missed the event (with channels-redis the test
    # process's events reach the page, so the change is written without one).
    Task.objects.filter(pk=task.pk).update(status="review", version=F("version") + 1)
    page.focus(f"#task-{task.pk}")
    page.keyboard.press("Alt+ArrowRight")
    page.wait_for_selector("#toast:not([hidden])")
    assert "changed this task" in page.inner_text("#toast")
    # The refused card does not stay where it was dropped; the board reloads the real state.
    page.wait_for_selector(f"#col-review-list #task-{task.pk}")
    assert column_ids(page, "in_progress") == []
    assert Task.objects.get(pk=task.pk).status == "review"


@once("sqlite", "markup only")
def test_viewer_sees_no_controls(browser):
    UserFactory.create(username="vic", role="viewer")
    task = make_task("Look only")
    browser.login("vic")
    page = browser.page
    page.goto("/board/")
    assert page.locator("[data-action=new-task]").count() == 0
    assert not page.locator(f"#task-{task.pk} .card-move").is_visible()
    page.focus(f"#task-{task.pk}")
    page.keyboard.press("m")
    assert page.locator("#move-menu").is_hidden()
    assert page.eval_on_selector(f"#task-{task.pk}", "e => e.draggable") is False
    page.goto(f"/tasks/{task.pk}/")
    assert page.locator("#task-fields form").count() == 0
    assert browser.csp_violations() == []


@once("sqlite", "a form's errors")
def test_new_task_form_shows_errors(ops):
    page = ops.page
    page.goto("/board/")
    page.click("[data-action=new-task]")
    page.click("#new-task-form button[type=submit]")
    page.wait_for_selector("#new-task-form .field-error")
    assert "A task needs a title" in page.inner_text("#new-task-form")
    assert page.locator("#new-task-dialog").is_visible()
    assert Task.objects.count() == 0


@once("sqlite", "the page's forms")
def test_edit_inline_comment_and_block_on_the_detail_page(ops):
    task = make_task("Old title")
    page = ops.page
    page.goto(f"/tasks/{task.pk}/")
    page.fill("#task-fields input[name=title]", "New title")
    page.select_option("#task-fields select[name=priority]", "0")
    page.click("#task-fields button[type=submit]")
    page.wait_for_selector("h1.page-title:has-text('New title')")
    page.fill("#comment-form textarea[name=body]", "Looks **good**")
    page.click("#comment-form button[type=submit]")
    page.wait_for_selector(f"#comments-{task.pk} .comment strong:has-text('good')")
    page.fill("input[name=reason]", "Waiting for CI")
    page.click("text=Mark blocked")
    page.wait_for_selector(".blocked-banner:has-text('Waiting for CI')")
    task.refresh_from_db()
    assert (task.title, task.priority, task.blocked, task.comment_count) == (
        "New title",
        0,
        True,
        1,
    )
    assert "moved" not in page.inner_text(".history")  # only what happened is listed
    assert "blocked task" in page.inner_text(".history")
    assert ops.csp_violations() == []
