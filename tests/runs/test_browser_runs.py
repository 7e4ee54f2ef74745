"""A run in real Chromium against the real server (#27): an operator dispatches a task from its
page, and the board — open in another tab — follows the run live as a CLI agent claims it,
says what it is doing and finishes: the card shows Running and the agent's words, then goes to
Review with the reply as a comment. No polling: the live spine."""

from __future__ import annotations

import httpx
import pytest

from agents.models import Agent, AgentKey
from missioncontrol.audit import Actor
from runs import actions
from runs.models import Run
from tasks.models import Task
from tests.agents.conftest import issue
from tests.live import once
from tests.missioncontrol.factories import UserFactory
from tests.tasks.factories import make_task

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_dispatch_from_the_page_and_watch_the_run_on_the_board(browser_factory, live):
    UserFactory.create(username="olga", role="operator")
    agent = Agent.objects.create(name="codex-1", framework="codex")
    _key, key = issue(AgentKey.Kind.AGENT, agent)
    task = make_task("Rename the flag", assignee=f"agent:{agent.pk}")
    session = browser_factory()
    session.login("olga")
    page = session.page
    page.goto(f"/tasks/{task.pk}/")
    page.fill("textarea[name=instructions]", "Keep the old name as an alias.")
    page.click("form.dispatch-form button[type=submit]")
    page.wait_for_selector(f"#runs-{task.pk} .run-entry.is-queued")
    run = Run.objects.get(task=task)
    assert "Keep the old name as an alias." in run.prompt

    board = session.context.new_page()
    board.goto("/board/")
    board.wait_for_selector("#live-status[data-state=live]")
    card = f"#task-{task.pk}"
    assert board.inner_text(f"{card} .run-chip").strip() == "Queued"

    agent_api = httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}"})
    offered = agent_api.post("/api/v1/agents/codex-1/heartbeat", json={"status": "idle"}).json()
    assert [r["id"] for r in offered["work"]["runs"]] == [run.pk]
    assert agent_api.post(f"/api/v1/runs/{run.pk}/claim").status_code == 200
    board.wait_for_selector(f"#col-in_progress-list {card} .run-chip.run-running")
    said = agent_api.post(f"/api/v1/runs/{run.pk}/progress", json={"text": "Editing cli.py"})
    assert said.status_code == 200
    board.wait_for_function(
        f"() => document.querySelector('#run-progress-{task.pk}')?.textContent === 'Editing cli.py'"
    )
    # The task page, still open, follows too; an attempt opened there stays open while the
    # agent's words stream in, and shows the brief it was given.
    page.wait_for_selector(f"#run-{run.pk}.is-running")
    page.click(f"#run-more-{run.pk} summary")
    page.wait_for_selector(f"#run-more-{run.pk} .run-prompt >> text=Keep the old name as an alias.")
    said = agent_api.post(f"/api/v1/runs/{run.pk}/progress", json={"text": "Running the tests"})
    assert said.status_code == 200
    page.wait_for_selector(f"#run-{run.pk} .run-now >> text=Running the tests")
    assert page.is_visible(f"#run-more-{run.pk} .run-prompt")
    finished = agent_api.post(
        f"/api/v1/runs/{run.pk}/finish",
        json={"outcome": "succeeded", "reply": "Renamed; alias kept."},
    )
    assert finished.status_code == 200
    board.wait_for_selector(f"#col-review-list {card}")
    assert board.query_selector(f"{card} .run-chip") is None
    page.wait_for_selector(f"#comments-{task.pk} >> text=Renamed; alias kept.")
    page.wait_for_selector(f"#run-{run.pk}.is-succeeded")
    # Still open, loaded again now that it ended: the reply is there.
    page.wait_for_selector(f"#run-more-{run.pk}[open] .run-reply >> text=Renamed; alias kept.")
    assert Task.objects.get(pk=task.pk).status == "review"
    assert session.csp_violations() == []


@once("sqlite", "keyboard and menu handling")
def test_the_d_key_and_the_card_menu_dispatch_from_the_board(browser_factory, live):
    UserFactory.create(username="olga", role="operator")
    agent = Agent.objects.create(name="claude-2")
    keyed = make_task("By key", assignee=f"agent:{agent.pk}")
    menued = make_task("By menu", assignee=f"agent:{agent.pk}")
    nobody = make_task("Nobody's")
    session = browser_factory()
    session.login("olga")
    page = session.page
    page.goto("/board/")
    page.wait_for_selector("#live-status[data-state=live]")
    page.focus(f"#task-{keyed.pk}")
    page.keyboard.press("d")
    page.wait_for_selector(f"#task-{keyed.pk} .run-chip.run-queued")
    page.click(f"#task-{menued.pk} [data-action=move-menu]")
    page.click("#move-menu [data-action=dispatch]")
    page.wait_for_selector(f"#task-{menued.pk} .run-chip.run-queued")
    # Twice is refused, saying why; a task with no agent cannot be dispatched from its menu.
    page.focus(f"#task-{keyed.pk}")
    page.keyboard.press("d")
    page.wait_for_selector("#toast:not([hidden]) >> text=already has a run")
    page.click(f"#task-{nobody.pk} [data-action=move-menu]")
    assert page.is_disabled("#move-menu [data-action=dispatch]")
    assert Run.objects.filter(task__in=[keyed, menued]).count() == 2
    # Aborted, then retried from its page: attempt 2 comes in on top, live; only the newest
    # attempt offers Retry; a retry of a superseded attempt says why not in the toast.
    first = Run.objects.get(task=keyed)
    actions.abort(Actor.system("test"), first.pk)
    page.goto(f"/tasks/{keyed.pk}/")
    page.click(f"#run-{first.pk} .run-retry button")
    page.wait_for_selector(f"#runs-{keyed.pk} > .run-entry.is-queued:first-child")
    second = Run.objects.get(task=keyed, attempt=2)
    assert page.is_hidden(f"#run-{first.pk} .run-retry")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click(f"#run-{second.pk} .run-actions button >> text=Abort")
    page.wait_for_selector(f"#run-{second.pk}.is-aborted .run-retry button")
    page.evaluate(f"document.querySelector('#run-{first.pk} .run-retry').style.display = 'flex'")
    Run.objects.filter(pk=second.pk).update(idempotency_key="")
    page.click(f"#run-{first.pk} .run-retry button")
    page.wait_for_selector("#toast:not([hidden]) >> text=not the latest")
    assert session.csp_violations() == []
