"""Browser notifications in real Chromium: the account page's service worker, given permission,
shows a failed run's notification — the payload made by the sender, encrypted for a browser
subscription, decrypted with that subscription's keys, and delivered to the service worker as a
push service would (DevTools' ServiceWorker.deliverPushMessage: no push service is reachable
from the test machine)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from missioncontrol.audit import Actor
from notifications import sender
from tests.missioncontrol.factories import UserFactory
from tests.notifications.helpers import step
from tests.notifications.pushing import Browser
from tests.notifications.test_push import fail_a_run, subscribe
from tests.webhooks.receiver import Receiver
from webhooks import dispatcher

pytestmark = pytest.mark.slow


@pytest.fixture
def push_service() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def send_everything() -> None:
    """The sender, once, on its own loop (Playwright's sync API holds this thread's)."""

    async def run() -> None:
        d: dispatcher.Dispatcher[Any] = dispatcher.Dispatcher(sender.Messages())
        while await d.run_once() or d.tasks:
            await d.drain()
        await d.close()

    worker = threading.Thread(target=lambda: asyncio.run(run()))
    worker.start()
    worker.join(30)


def test_chromium_shows_a_failed_run_pushed_to_it(browser_factory, live, push_service, settings):
    settings.MC_WEBHOOK_ALLOW_PRIVATE = True  # the push service is on loopback
    person = UserFactory.create(username="pia", role="operator")
    keys = Browser(push_service.url)
    subscribe(person, keys)
    session = browser_factory()
    session.context.grant_permissions(["notifications"], origin=live.url)
    session.login("pia")
    page = session.page
    page.goto("/account/notifications/")
    # The button, in a browser with no push service it can reach (this machine): said in words.
    page.click("#push-on")
    page.wait_for_selector("#push-status:not(:empty)")
    said = page.text_content("#push-status") or ""
    assert said.startswith(("Could not turn them on: ", "Browser notifications are on")), said
    scope = page.evaluate(
        "navigator.serviceWorker.register('/sw.js').then(() => navigator.serviceWorker.ready)"
        ".then((r) => r.scope)"
    )
    assert scope == live.url + "/"
    cdp = session.context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda event: registrations.extend(event["registrations"]),
    )
    cdp.send("ServiceWorker.enable")
    deadline = time.monotonic() + 5
    while not registrations and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    (registration,) = [r for r in registrations if r["scopeURL"] == live.url + "/"][:1]

    task = fail_a_run(person)
    assert len(step()) == 1
    send_everything()
    (got,) = push_service.got
    payload = keys.decrypt(got.body)  # what the browser's push service would hand over

    import json

    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {
            "origin": live.url,
            "registrationId": registration["registrationId"],
            "data": json.dumps(payload),
        },
    )
    shown: list[dict[str, Any]] = []
    deadline = time.monotonic() + 8
    while not shown and time.monotonic() < deadline:
        shown = page.evaluate(
            "navigator.serviceWorker.ready.then((r) => r.getNotifications()).then((ns) =>"
            " ns.map((n) => ({title: n.title, body: n.body, url: n.data && n.data.url})))"
        )
        page.wait_for_timeout(50)
    assert shown, "no notification was shown"
    (note,) = shown
    assert note["title"] == f"Blocked: #{task} Write the changelog"
    assert "The repository is read-only." in note["body"]
    assert note["url"].endswith(f"/tasks/{task}/")
    assert session.csp_violations() == []


def test_a_persons_message_history_follows_the_sender_live(
    chromium, transactional_db, test_db_path, static_built
):
    """Send test queues a message; the page then shows it go from Pending to Sent as the
    server's sender works (the receiver answers after 3 s), without a reload."""
    from notifications import actions
    from notifications.models import Message
    from tests.conftest import LIVE_SERVER_ENV, BrowserSession
    from tests.live import ServerProcess

    slow = Receiver(answers=[200] * 5, delay_s=3.0).start()
    person = UserFactory.create(username="tess", role="viewer")
    actions.save_channel(
        Actor.system("tests"),
        actions.ChannelInput(kind="ntfy", name="Phone", target=slow.url),
        owner_id=person.pk,
    )
    env = {**LIVE_SERVER_ENV, "MC_NOTIFICATIONS": "1", "MC_WEBHOOK_ALLOW_PRIVATE": "1"}
    server = ServerProcess(test_db_path, extra_env=env).start()
    session = BrowserSession(chromium, server.url)
    try:
        session.login("tess")
        page = session.page
        page.goto("/account/notifications/")
        page.click("text=Send test")
        page.wait_for_url("**/account/notifications/")
        page.wait_for_selector("#live-status[data-state=live]")
        message = Message.objects.get()
        row = f"#message-{message.pk}"
        assert "Pending" in (page.text_content(row) or "")
        page.evaluate("window.__notReloaded = true")
        page.wait_for_selector(f"{row} .delivery-delivered", timeout=15_000)
        assert len(slow.got) == 1
        assert page.evaluate("window.__notReloaded") is True  # reloaded in place, not the page
        assert session.csp_violations() == []
    finally:
        session.close()
        server.stop()
        slow.stop()
