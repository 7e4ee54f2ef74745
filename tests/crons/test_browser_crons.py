"""The Crons pages in real Chromium against a real server: a viewer watches a direct check's job
report in — running, then ok with its output, then a failure that raises the banner on the page
they have open — with no reload."""

from __future__ import annotations

import urllib.request

import pytest

from crons import actions
from missioncontrol.audit import Actor
from tests.missioncontrol.factories import UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def post(url: str, body: bytes = b"") -> int:
    request = urllib.request.Request(url, data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def test_a_check_in_shows_live_on_the_jobs_page_and_a_failure_raises_the_banner(browser, live):
    UserFactory.create(username="vera", role="viewer")
    job = actions.create_check(
        Actor.system("tests"),
        {
            "name": "nightly export",
            "kind": "cron",
            "expr": "15 2 * * *",
            "tz": "UTC",
            "grace_s": 600,
        },
    )
    checkin = f"{live.url}/api/v1/checkins/{job.token}"
    browser.login("vera")
    page = browser.page
    page.goto(f"/crons/{job.pk}/")
    page.wait_for_selector("#live-status[data-state=live]")
    page.evaluate("window.__marker = 1")
    assert "At 02:15 (UTC)" in page.inner_text(f"#cron-head-{job.pk}")
    # A viewer never sees the check-in URL.
    assert str(job.token) not in page.content()

    assert post(f"{checkin}/start") == 200
    page.wait_for_selector(f"#cron-head-{job.pk}[data-health=running]")
    page.wait_for_selector(f"#cron-runs-{job.pk} tr[data-status=running]")

    assert post(checkin, b"exported 1,204 rows") == 200
    page.wait_for_selector(f"#cron-head-{job.pk}[data-health=ok]")
    page.wait_for_selector(
        f"#cron-runs-{job.pk} tr[data-status=ok]:has-text('exported 1,204 rows')"
    )
    assert page.locator(f"#cron-runs-{job.pk} tr").count() == 1  # the run was completed in place

    page.goto("/crons/")
    page.wait_for_selector("#live-status[data-state=live]")
    page.evaluate("window.__marker = 2")
    assert page.locator(".cron-alert").count() == 0
    assert post(f"{checkin}/fail", b"disk full") == 200
    page.wait_for_selector(f"#cron-{job.pk}[data-health=failing]")
    page.wait_for_selector(".cron-alert:has-text('nightly export')")
    assert page.evaluate("window.__marker") == 2  # no reload
    assert browser.csp_violations() == []
