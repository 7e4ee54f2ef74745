"""End to end: a real `serve`, a real OpenClaw gateway on the fake model, real Chromium. An
operator messages a gateway's agent from its page and watches the reply stream into the
transcript, live, with no reload."""

from __future__ import annotations

import uuid

import pytest

from agents.models import Agent, AgentSession
from billing.models import UsageRecord
from gateways.models import Gateway
from tests.conftest import BrowserSession
from tests.gateways.factories import make_gateway
from tests.gateways.waiting import wait_for
from tests.live import ServerProcess, once
from tests.missioncontrol.factories import UserFactory

pytestmark = [
    once("sqlite", "the session page with the real gateway"),
    pytest.mark.slow,
    pytest.mark.browser,
]


@pytest.fixture
def connected_server(test_db_path, static_built, transactional_db):
    """A `serve` of its own that holds gateway connections (the shared one holds none)."""
    server = ServerProcess(test_db_path, extra_env={"MC_LIVE_GRACE_MS": "300"}).start()
    yield server
    server.stop()


def test_an_operator_messages_an_agent_and_the_reply_streams_in(
    chromium, connected_server, alpha, fake_model
):
    UserFactory.create(username="olga", role="operator")
    gateway = make_gateway(name="alpha", url=alpha.url, token=alpha.token, colour="teal")
    # The server's supervisor finds the new gateway on its next reconcile (every 5 s).
    wait_for(lambda: Gateway.objects.get(pk=gateway.pk).state == "connected")
    agent = wait_for(lambda: Agent.objects.filter(gateway=gateway, external_id="main").first())

    browser = BrowserSession(chromium, connected_server.url)
    browser.login("olga")
    page = browser.page
    page.goto(f"/agents/{agent.name}/")
    assert page.inner_text(".gw-badge").strip() == "alpha"
    # The shared gateway's main session may hold earlier tests' lines: this test's own words.
    said = f"Say hello, browser {uuid.uuid4().hex[:8]}"
    calls_before = UsageRecord.objects.filter(agent=agent, session="agent:main:main").count()
    page.fill("textarea[name=message]", said)
    page.click("form[action$='/message/'] button[type=submit]")
    page.wait_for_url("**/sessions/*/")
    page.wait_for_selector("#live-status[data-state=live]")
    session = AgentSession.objects.get(gateway=gateway, key="agent:main:main")
    transcript = f"#transcript-{session.pk}"
    page.wait_for_selector(f"{transcript} .line-user:has-text('{said}')", timeout=15000)
    page.wait_for_selector(
        f"{transcript} .line-assistant:not(.streaming):has-text('Hello from the fake model.')",
        timeout=20000,
    )
    # The one user line, once (the page's history and the live event are the same message).
    mine = page.locator(f"{transcript} .line-user", has_text=said)
    assert mine.count() == 1, page.inner_html(transcript)
    assert page.locator(f"{transcript} .streaming").count() == 0
    # The session's tokens and cost reach its header live too.
    page.wait_for_function(
        f"() => !document.querySelector('#session-head-{session.pk}').textContent.includes(' 0 tokens')",
        timeout=15000,
    )
    # (#31.6) The Cost and Details cards follow too (fetched again on the events), and "Nothing
    # said yet" went with the first line.
    page.wait_for_function(
        f"""() => {{
            const facts = document.querySelector('#session-facts-{session.pk}');
            const calls = [...facts.querySelectorAll('dt')].find((dt) => dt.textContent === 'Model calls');
            return calls && Number(calls.nextElementSibling.textContent.replace(/,/g, '')) > {calls_before};
        }}""",
        timeout=15000,
    )
    assert not page.locator(f"{transcript} .empty-transcript").is_visible()
    assert fake_model.server.requests, "the gateway asked the fake model"
    assert browser.csp_violations() == []
    browser.close()
