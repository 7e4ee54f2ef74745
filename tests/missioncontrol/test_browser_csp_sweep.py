"""Every page, as an admin, in real Chromium against a real server: it loads, fits its content,
and the Content-Security-Policy (no unsafe-inline, no unsafe-eval) blocks nothing on it; the
behaviours the shell offers work on it — the gateway switch shows the gateway chosen (it did
nothing on 8 of 12 pages once: its script loaded on three), and every `data-confirm` asks
before it submits (Remove gateway ran on one click). The pages are read from the permission
matrix's route table, so a new page is swept too."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from agents import actions as agent_actions
from agents import sessions as agent_sessions
from agents.models import Agent, AgentKey, AgentSession
from billing import actions as billing_actions
from billing.models import Budget
from crons import actions as cron_actions
from crons.models import Job
from gateways import frames
from missioncontrol.audit import Actor
from pipelines import actions as pipeline_actions
from runs import actions as run_actions
from tests.agents.conftest import issue
from tests.gateways.factories import make_gateway
from tests.gateways.test_sessions import session_row
from tests.live import once
from tests.missioncontrol.factories import UserFactory
from tests.missioncontrol.test_permission_matrix import ROUTES
from tests.tasks.factories import make_task
from webhooks import actions as webhook_actions
from webhooks.models import Delivery, Endpoint

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    # What a page's markup does under the CSP does not depend on the database, and every page's
    # queries run on PostgreSQL in its own tests: on one profile only (15 s of the CI budget).
    once("sqlite", "markup only"),
]
ADMIN = Actor.system("tests")
# The classes whose GET is a page a person reads.
PAGES = {
    "viewer-page",
    "viewer-form",
    "operator-form",
    "admin-page",
    "admin-form",
    "viewer-page-admin-form",
    "signed-in-form",
    "signed-in-page",
}
NOT_HTML = {
    "costs/records.csv",
    "audit/export.csv",
    "healthz",
    "favicon.ico",
    "account/two-factor/qr.svg",  # an image of the set-up page (tests/missioncontrol/test_two_factor.py)
    "pipelines/<id:pk>/export/",  # a file to download (tests/pipelines/test_pages.py)
}


def one_of_everything(settings) -> dict[str, str]:
    """A row behind every id a page takes: {route argument pattern: value}."""
    settings.MC_WEBHOOK_ALLOW_PRIVATE = True
    gateway = make_gateway(name="prod", token="t")
    make_gateway(name="edge", token="t")  # two: the shell's switch is shown
    agent_actions.sync_gateway_agents(gateway.pk, frames.agents([{"id": "main"}]))
    agent_sessions.sync_gateway_sessions(gateway.pk, frames.sessions([session_row()]))
    session = AgentSession.objects.get()
    agent = Agent.objects.create(name="ada", framework="claude-code")
    issue(AgentKey.Kind.AGENT, agent)
    webhook_actions.save_endpoint(ADMIN, Endpoint(url="http://127.0.0.1:9/h", event_types=["*"]))
    task = make_task("Sweep the pages", assignee=f"agent:{agent.pk}")
    run, _ = run_actions.dispatch(ADMIN, run_actions.Dispatch(task_id=task.pk))
    budget = billing_actions.save_budget(ADMIN, Budget(name="All", amount_usd=Decimal("10")))
    check = cron_actions.create_check(ADMIN, {"name": "nightly", "kind": "every", "every_s": 3600})
    cron_actions.checkin(Job.objects.get(pk=check.pk).token, "fail", "exit 3")
    delivery = Delivery.objects.first()
    assert delivery is not None
    pipeline = pipeline_actions.save(
        ADMIN,
        "name: Sweep\ninputs:\n  - {name: what, type: text, default: pages}\nsteps:\n"
        "  - id: first\n    agent: ada\n  - id: gate\n    approval: true\n",
    ).pipeline_id
    pipeline_run, _ = pipeline_actions.start(ADMIN, pipeline_actions.Start(pipeline))
    # An agent's question, pending, and one answered: both on the Approvals page.
    from pipelines import approvals

    approvals.ask_agent(agent.pk, "May I sweep?", "Every **page**.", task.pk)
    answered = approvals.ask_agent(agent.pk, "And the admin?")
    approvals.answer_agent(ADMIN, None, answered.pk, "rejected", "No.")
    # A team channel that is failing, with a message in its history; root's own ntfy channel.
    from notifications import actions as notify_actions
    from notifications.models import Channel

    channel = notify_actions.save_channel(
        ADMIN,
        notify_actions.ChannelInput(kind="slack", name="Ops room", target="http://127.0.0.1:9/h"),
    )
    notify_actions.send_test(ADMIN, channel.pk)
    Channel.objects.filter(pk=channel.pk).update(
        consecutive_failures=2, last_error="HTTP 500: down"
    )
    root = UserFactory._meta.model.objects.get(username="root")
    notify_actions.save_channel(
        ADMIN,
        notify_actions.ChannelInput(kind="ntfy", name="My phone", target="http://127.0.0.1:9/t"),
        owner_id=root.pk,
    )
    return {
        "settings/notifications/<id:pk>": str(channel.pk),
        # First: the pipelines' run pages are `pipelines/runs/<id>`, not a run's `runs/<id>`.
        "pipelines/runs/<id:pk>": str(pipeline_run.pk),
        "pipelines/<id:pk>": str(pipeline),
        "tasks/<id:pk>": str(task.pk),
        "runs/<id:pk>": str(run.pk),
        "sessions/<id:pk>": str(session.pk),
        "gateways/<id:pk>": str(gateway.pk),
        "costs/budgets/<id:pk>": str(budget.pk),
        "webhooks/deliveries/<id:pk>": str(delivery.pk),
        "webhooks/<id:pk>": str(delivery.endpoint_id),
        "crons/<id:pk>": str(check.pk),
        "agents/<name:name>": agent.name,
        "board/column/<str:status>": "todo",
    }


def test_every_page_is_csp_clean_and_fits(browser, live, settings):
    UserFactory.create(username="root", role="admin")
    ids = one_of_everything(settings)
    paths = []
    for route, kind in ROUTES.items():
        if kind not in PAGES or route in NOT_HTML:
            continue
        path = route
        for pattern, value in ids.items():
            path = path.replace(pattern, pattern.split("/<")[0] + "/" + value)
        assert "<" not in path, f"no row for {route}: add one to one_of_everything"
        paths.append("/" + path)
    paths += ["/api/v1/docs/", "/admin/", "/admin/crons/job/"]
    browser.login("root")
    page = browser.page
    problems = []
    asked: list[str] = []

    def dismiss(dialog) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    switched = confirmed = 0
    for n, path in enumerate(paths):
        # "load": every script and style of the page has run (a violation is reported as it
        # happens); networkidle's extra half-second a page would double the sweep's time.
        response = page.goto(path, wait_until="load")
        status = response.status if response else 0
        if status >= 400:
            problems.append(f"{path}: HTTP {status}")
        violations = browser.csp_violations()
        if violations:
            problems.append(f"{path}: CSP blocked {violations}")
        errors = [m for m in browser.console if "Content Security Policy" not in m]
        if errors:
            problems.append(f"{path}: console {errors}")
        browser.console.clear()
        if status < 400:
            problems += shell_behaviours(page, path, n, asked)
            switched += page.locator("#gateway-switch").count()
            confirmed += page.locator("form[data-confirm]").count() > 0
    assert len(paths) >= 30
    assert switched >= 25, switched
    assert confirmed >= 8, confirmed
    assert not problems, "\n".join(problems)


def shell_behaviours(page, path: str, n: int, asked: list[str]) -> list[str]:
    """The page's first `data-confirm` form asks, and (dismissed) does not submit; choosing
    a gateway in the switch reloads the page showing that gateway (every other page: all)."""
    problems = []
    confirm = page.locator("form[data-confirm]").first
    if confirm.count() and confirm.locator("[type=submit]").first.is_visible():
        asked.clear()
        url = page.url
        # Without the shell's handler no dialog is shown and the form submits (a navigation).
        confirm.locator("[type=submit]").first.click(no_wait_after=False)
        if asked != [confirm.get_attribute("data-confirm")] or page.url != url:
            problems.append(f"{path}: data-confirm did not ask ({asked}, {page.url})")
    switch = page.locator("#gateway-switch")
    if switch.count() and switch.is_visible():
        options = switch.locator("option")
        wanted = options.nth(1 + n % 2).get_attribute("value") or ""
        if switch.input_value() == wanted:
            wanted = ""
        try:
            with page.expect_navigation(wait_until="load", timeout=12_000):
                switch.select_option(wanted)
        except PlaywrightTimeout:
            return [*problems, f"{path}: choosing a gateway in the switch sent nothing"]
        if page.locator("#gateway-switch").input_value() != wanted:
            problems.append(f"{path}: the gateway switch did not apply {wanted!r}")
    return problems


def test_the_sweep_covers_every_page_route():
    """Sanity for the sweep itself: each page route's arguments are ones it fills."""
    for route, kind in ROUTES.items():
        if kind in PAGES:
            for argument in re.findall(r"<[^>]+>", route):
                assert argument in {"<id:pk>", "<name:name>", "<str:status>"}, route
