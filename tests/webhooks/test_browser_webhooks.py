"""The Webhooks pages in real Chromium: an admin finds a delivery from the endpoint's history,
reads its attempts' responses, and reveals the secret on demand."""

from __future__ import annotations

import pytest
from django.utils import timezone

from missioncontrol.audit import Actor
from tests.live import once
from tests.missioncontrol.factories import UserFactory
from tests.tasks.factories import make_task
from webhooks import actions
from webhooks.models import Delivery, Endpoint

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@once("sqlite", "markup only")
def test_an_admin_reads_an_attempts_response_and_the_secret(browser, live):
    UserFactory.create(username="root", role="admin")
    hook = actions.save_endpoint(
        Actor.system("tests"),
        Endpoint(
            url="https://hooks.example.com/mc", description="Team chat", event_types=["task.*"]
        ),
    )
    make_task("Ship it")
    delivery = Delivery.objects.get()
    now = timezone.now()
    actions.record_attempt(
        delivery.pk,
        actions.Outcome(
            at=now,
            duration_ms=87,
            status_code=503,
            headers={"retry-after": "30", "content-type": "application/json"},
            body='{"error": "maintenance window"}',
        ),
    )
    browser.login("root")
    page = browser.page
    page.goto("/webhooks/")
    page.click(f"#endpoint-{hook.pk} a")
    page.wait_for_url(f"**/webhooks/{hook.pk}/")
    assert page.locator(f"#delivery-{delivery.pk}").inner_text().count("Retrying") == 1
    page.click(f"#delivery-{delivery.pk} a")
    page.wait_for_url(f"**/webhooks/deliveries/{delivery.pk}/")
    attempt = page.locator(".attempt").first
    assert "HTTP 503" in attempt.inner_text()
    assert "maintenance window" in attempt.inner_text()
    attempt.locator("summary").click()
    assert attempt.locator("dd", has_text="30").is_visible()
    # The secret: not on the page until asked for.
    page.goto(f"/webhooks/{hook.pk}/")
    assert page.locator("#endpoint-secret").count() == 0
    page.click("text=Show secret")
    assert page.inner_text("#endpoint-secret") == hook.secret
    assert browser.csp_violations() == []


@once("sqlite", "the page's updates")
def test_an_endpoint_disabled_for_failing_shows_live_to_an_admin(
    chromium, transactional_db, test_db_path
):
    """A server's own dispatcher fails an endpoint 20 times in a row and disables it: the
    banner appears on an admin's open page without a reload."""
    from tests.conftest import LIVE_SERVER_ENV, BrowserSession
    from tests.live import ServerProcess
    from tests.webhooks.receiver import Receiver

    UserFactory.create(username="root", role="admin")
    down = Receiver(answers=[500] * 100).start()
    env = {**LIVE_SERVER_ENV, "MC_WEBHOOK_DISPATCHER": "1", "MC_WEBHOOK_ALLOW_PRIVATE": "1"}
    server = ServerProcess(test_db_path, extra_env=env).start()
    browser = BrowserSession(chromium, server.url)
    try:
        browser.login("root")
        page = browser.page
        page.goto("/board/")
        page.wait_for_selector("#live-status[data-state=live]")
        assert page.locator(".webhook-disabled").count() == 0
        page.evaluate("window.__marker = 1")
        hook = actions.save_endpoint(
            Actor.system("tests"), Endpoint(url=down.url, description="Old CI", event_types=["*"])
        )
        for i in range(actions.DISABLE_AFTER_FAILURES):
            make_task(f"Owed {i}")
        page.wait_for_selector(".webhook-disabled", timeout=15_000)
        assert "Old CI" in page.inner_text(".webhook-disabled")
        assert page.evaluate("window.__marker") == 1
        assert not Endpoint.objects.get(pk=hook.pk).enabled
        assert browser.csp_violations() == []
    finally:
        browser.close()
        server.stop()
        down.stop()


def test_a_test_event_shows_queued_then_delivered_without_a_reload(
    chromium, transactional_db, test_db_path
):
    """(#31.9) A test event's page follows it live: queued, then delivered, its attempt shown."""
    from tests.conftest import LIVE_SERVER_ENV, BrowserSession
    from tests.live import ServerProcess
    from tests.webhooks.receiver import Receiver

    UserFactory.create(username="root", role="admin")
    # It answers after 3 s: the page is open (and pending) before the attempt ends.
    up = Receiver(answers=[200] * 10, delay_s=3.0).start()
    env = {**LIVE_SERVER_ENV, "MC_WEBHOOK_DISPATCHER": "1", "MC_WEBHOOK_ALLOW_PRIVATE": "1"}
    server = ServerProcess(test_db_path, extra_env=env).start()
    browser = BrowserSession(chromium, server.url)
    try:
        hook = actions.save_endpoint(
            Actor.system("tests"), Endpoint(url=up.url, description="CI", event_types=["task.*"])
        )
        browser.login("root")
        page = browser.page
        page.goto(f"/webhooks/{hook.pk}/")
        page.wait_for_selector("#live-status[data-state=live]")
        page.evaluate("window.__marker = 1")
        page.click("button:has-text('Send a test event')")
        page.wait_for_url("**/webhooks/deliveries/*/")
        page.wait_for_selector("#live-status[data-state=live]")
        page.evaluate("window.__marker = 2")
        assert "Delivered" not in page.inner_text("#delivery-status")
        page.wait_for_selector("#delivery-status:has-text('Delivered')", timeout=15_000)
        assert page.locator(".attempt:has-text('HTTP 200')").count() == 1
        assert page.evaluate("window.__marker") == 2  # followed, not reloaded
        # And the endpoint's list of deliveries shows it.
        page.goto(f"/webhooks/{hook.pk}/")
        assert page.locator("#deliveries-panel tr:has-text('webhook.test')").count() == 1
        assert browser.csp_violations() == []
    finally:
        browser.close()
        server.stop()
        up.stop()
