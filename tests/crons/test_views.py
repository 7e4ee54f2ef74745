"""The Crons pages and the check-in endpoint: who may see and do what, forms that refuse bad
settings, run now through the gateway (its refusal shown), and check-ins with their limits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crons import actions, views
from crons.models import Job, Run
from gateways import actions as gateway_actions
from gateways import commands, frames
from gateways.models import Gateway
from gateways.protocol import GatewayError
from missioncontrol.audit import Actor
from missioncontrol.models import AuditEvent
from tests.gateways import fake
from tests.gateways.factories import make_gateway

pytestmark = pytest.mark.django_db
ADMIN = Actor.system("tests")


def gateway_job(gateway: Gateway, external: str = "job-1", **extra: Any) -> Job:
    next_run = int((datetime.now(UTC) + timedelta(hours=1)).timestamp() * 1000)
    item = {
        "id": external,
        "name": f"backup {external}",
        "agentId": "main",
        "schedule": {"kind": "cron", "expr": "0 3 * * *"},
        "state": {"nextRunAtMs": next_run},
        **extra,
    }
    actions.sync_gateway_jobs(gateway.pk, frames.cron_jobs([item]), complete=False)
    return Job.objects.get(gateway=gateway, external_id=external)


@pytest.fixture
def gateway() -> Gateway:
    return make_gateway(name="prod")


@pytest.fixture
def job(gateway: Gateway) -> Job:
    return gateway_job(gateway)


@pytest.fixture
def check() -> Job:
    return actions.create_check(
        ADMIN, {"name": "db dump", "kind": "every", "every_s": 3600, "grace_s": 300}
    )


@pytest.fixture
def gateway_says(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    calls: list[tuple[str, dict[str, Any]]] = []

    def call(gateway_id: int, method: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        calls.append((method, params or {}))
        return {"ok": True, "enqueued": True, "runId": "manual:job-1:1:1"}

    monkeypatch.setattr(commands, "call", fake.checked(call))
    return calls


def routes(job: Job, check: Job) -> list[tuple[str, str, str]]:
    """(method, path, least role)."""
    return [
        ("get", "/crons/", "viewer"),
        ("get", f"/crons/{job.pk}/", "viewer"),
        ("get", f"/crons/{check.pk}/", "viewer"),
        ("post", f"/crons/{job.pk}/run/", "operator"),
        ("post", f"/crons/{job.pk}/enabled/", "admin"),
        ("post", f"/crons/{job.pk}/settings/", "admin"),
        ("get", "/crons/checks/new/", "admin"),
        ("post", "/crons/checks/new/", "admin"),
        ("post", f"/crons/{check.pk}/rotate/", "admin"),
        ("post", f"/crons/{check.pk}/delete/", "admin"),
    ]


RANK = {"viewer": 0, "operator": 1, "admin": 2}


class TestRoles:
    @pytest.mark.parametrize("who", ["viewer", "operator", "admin"])
    def test_each_role_reaches_what_it_may_and_no_more(
        self, request, who, job, check, gateway_says
    ):
        client = request.getfixturevalue(who)
        for method, path, least in routes(job, check):
            if path.endswith("/delete/"):
                continue  # run last: it removes the check
            status = getattr(client, method)(path).status_code
            if RANK[who] >= RANK[least]:
                assert status in (200, 302, 400), (path, status)
            else:
                assert status == 403, (path, status)
        # Only an admin sees a direct check's check-in URL.
        page = client.get(f"/crons/{check.pk}/").content.decode()
        token = str(Job.objects.get(pk=check.pk).token)
        assert (token in page) is (who == "admin")

    @pytest.mark.parametrize("who", ["outsider", "client"])
    def test_no_role_and_anonymous_are_refused(self, request, who, job, check):
        client = request.getfixturevalue(who)
        for method, path, _least in routes(job, check):
            response = getattr(client, method)(path)
            if who == "client":
                assert response.status_code == 302
                assert response["Location"].startswith("/login/")
            else:
                assert response.status_code == 403, path
        assert Job.objects.filter(pk=check.pk).exists()

    def test_wrong_methods(self, admin, job):
        assert admin.get(f"/crons/{job.pk}/run/").status_code == 405
        assert admin.post("/crons/").status_code == 405
        assert admin.post(f"/crons/{job.pk}/").status_code == 405

    def test_a_grant_narrows_what_a_viewer_sees(self, viewer, alice_viewer, gateway, job, check):
        other = make_gateway(name="other")
        hidden = gateway_job(other, "job-2")
        gateway_actions.set_grant(ADMIN, gateway, alice_viewer, "view")
        page = viewer.get("/crons/").content.decode()
        assert job.name in page
        assert check.name in page
        assert hidden.name not in page
        assert viewer.get(f"/crons/{hidden.pk}/").status_code == 404


class TestPages:
    def test_the_list_shows_schedule_words_gateway_and_health_in_urgency_order(
        self, viewer, gateway, check, caches_hold
    ):
        for n in range(5):
            gateway_job(gateway, f"job-{n}")
        actions.checkin(Job.objects.get(pk=check.pk).token, "fail", "disk full")
        viewer.get("/crons/")  # warm: the session and the per-process caches
        with CaptureQueriesContext(connection) as queries:
            response = viewer.get("/crons/")
        page = response.content.decode()
        assert response.status_code == 200
        assert page.index("db dump") < page.index("backup job-0")  # failing first
        assert "At 03:00 (UTC)" in page
        assert "0 3 * * *" in page
        assert 'class="gw-badge gw-' in page
        assert ">prod<" in page
        # The same number of queries however many jobs (pinned: 5 jobs here, 6 in the next).
        gateway_job(gateway, "job-9")
        viewer.get("/crons/")  # warm again: a job changed, so the banner's cache was forgotten
        with CaptureQueriesContext(connection) as more:
            viewer.get("/crons/")
        assert len(more) == len(queries)

    def test_words_a_person_reads(self, viewer, check):
        """(#31.14) A new check is waiting, not "ok"; a next run in the past is overdue, not
        "7 minutes ago" (as if it had run)."""
        from datetime import timedelta

        from django.utils import timezone

        job = Job.objects.get(pk=check.pk)
        assert (job.health, job.health_reason) == ("ok", "waiting for its first check-in")
        row = viewer.get("/crons/").content.decode()
        assert ">waiting</span>" in row
        assert "waiting for its first check-in" in row
        actions.checkin(job.token, "success", "")
        job.refresh_from_db()
        assert job.health_reason == ""
        assert ">ok</span>" in viewer.get("/crons/").content.decode()
        Job.objects.filter(pk=job.pk).update(next_run_at=timezone.now() - timedelta(minutes=7))
        assert "overdue by 7 minutes" in viewer.get(f"/crons/{job.pk}/").content.decode()

    def test_the_banner_names_a_late_job_on_every_page(self, viewer, check):
        Job.objects.filter(pk=check.pk).update(health="late", health_reason="expected at 10:00")
        page = viewer.get("/board/").content.decode()
        assert "Scheduled job <strong>db dump</strong> is late" in page

    def test_a_jobs_page_shows_its_runs_chart_and_streaks(self, viewer, check):
        token = Job.objects.get(pk=check.pk).token
        for signal in ("fail", "fail", "success", "fail"):
            actions.checkin(token, signal)
        page = viewer.get(f"/crons/{check.pk}/").content.decode()
        assert page.count('id="cron-run-') == 4
        assert "2 failed runs" in page
        assert "1 failed run<" in page

    def test_filters(self, viewer, gateway, check):
        gateway_job(gateway)
        page = viewer.get("/crons/?source=direct").content.decode()
        assert "db dump" in page
        assert "backup job-1" not in page
        assert "backup job-1" not in viewer.get("/crons/?health=attention").content.decode()
        assert viewer.get("/crons/?health=nonsense&source=x").status_code == 200


class TestActions:
    def test_run_now_asks_the_gateway_and_is_audited(self, operator, job, gateway_says):
        response = operator.post(f"/crons/{job.pk}/run/")
        assert response.status_code == 302
        assert gateway_says == [("cron.run", {"id": "job-1", "mode": "force"})]
        assert AuditEvent.objects.filter(verb="cron.run_requested").count() == 1

    def test_a_gateway_refusal_is_shown(self, operator, job, monkeypatch):
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise GatewayError({"code": "FORBIDDEN", "message": "missing scope: operator.admin"})

        monkeypatch.setattr(commands, "call", refuse)
        page = operator.post(f"/crons/{job.pk}/run/", follow=True).content.decode()
        assert "The gateway refused: missing scope: operator.admin" in page
        assert not AuditEvent.objects.filter(verb="cron.run_requested").exists()

    def test_an_unreachable_gateway_is_shown(self, operator, job, monkeypatch):
        def unavailable(*args: Any, **kwargs: Any) -> Any:
            raise commands.Unavailable("The gateway is not connected now (unreachable).")

        monkeypatch.setattr(commands, "call", unavailable)
        page = operator.post(f"/crons/{job.pk}/run/", follow=True).content.decode()
        assert "Not run: The gateway is not connected now (unreachable)." in page

    def test_disable_on_the_gateway_then_here(self, admin, job, gateway_says):
        admin.post(f"/crons/{job.pk}/enabled/", {"enabled": "0"})
        assert gateway_says == [("cron.update", {"id": "job-1", "patch": {"enabled": False}})]
        job.refresh_from_db()
        assert (job.enabled, job.health) == (False, "paused")
        assert AuditEvent.objects.filter(verb="cron.disabled").count() == 1

    def test_a_disable_the_gateway_cannot_take_changes_nothing_here(self, admin, job, monkeypatch):
        def unavailable(*args: Any, **kwargs: Any) -> Any:
            raise commands.Unavailable("The gateway is not connected now (unreachable).")

        monkeypatch.setattr(commands, "call", unavailable)
        page = admin.post(f"/crons/{job.pk}/enabled/", {"enabled": "0"}, follow=True)
        assert "Not changed: The gateway is not connected now" in page.content.decode()
        assert Job.objects.get(pk=job.pk).enabled

    def test_an_admin_makes_a_direct_check_and_gets_its_url(self, admin):
        response = admin.post(
            "/crons/checks/new/",
            {
                "name": "nightly export",
                "kind": "cron",
                "expr": "15 2 * * *",
                "tz": "Europe/Paris",
                "grace_min": "10",
                "failure_threshold": "2",
            },
        )
        job = Job.objects.get(name="nightly export")
        assert response.status_code == 302
        assert response["Location"] == f"/crons/{job.pk}/"
        assert (job.grace_s, job.failure_threshold, job.schedule_raw) == (
            600,
            2,
            "15 2 * * * (Europe/Paris)",
        )
        page = admin.get(f"/crons/{job.pk}/").content.decode()
        assert f"/api/v1/checkins/{job.token}" in page

    @pytest.mark.parametrize(
        ("data", "error"),
        [
            ({"kind": "cron", "expr": "61 * * * *"}, "is not a cron expression"),
            ({"kind": "cron", "expr": "0 3 * * *", "tz": "Atlantis"}, "Unknown time zone"),
            ({"kind": "every", "every_min": "0"}, "greater than or equal to 1"),
            ({"kind": "every"}, "Enter a whole number"),
            (
                {"kind": "cron", "expr": "0 3 * * *", "grace_min": "-5"},
                "greater than or equal to 0",
            ),
        ],
    )
    def test_bad_checks_are_form_errors(self, admin, data, error):
        response = admin.post(
            "/crons/checks/new/", {"name": "x", "grace_min": "5", "failure_threshold": "1", **data}
        )
        assert response.status_code == 400
        assert error in response.content.decode()
        assert not Job.objects.exists()

    def test_monitoring_settings_of_a_gateway_job(self, admin, job):
        admin.post(f"/crons/{job.pk}/settings/", {"grace_min": "30", "failure_threshold": "3"})
        job.refresh_from_db()
        assert (job.grace_s, job.failure_threshold, job.name) == (1800, 3, "backup job-1")
        bad = admin.post(f"/crons/{job.pk}/settings/", {"grace_min": "x", "failure_threshold": "3"})
        assert bad.status_code == 400
        assert Job.objects.get(pk=job.pk).grace_s == 1800

    def test_rotating_the_url_stops_the_old_one(self, admin, client, check):
        old = Job.objects.get(pk=check.pk).token
        admin.post(f"/crons/{check.pk}/rotate/")
        assert client.post(f"/api/v1/checkins/{old}").status_code == 404
        new = Job.objects.get(pk=check.pk).token
        assert client.post(f"/api/v1/checkins/{new}").status_code == 200

    def test_a_gateway_job_cannot_be_deleted_here(self, admin, job):
        admin.post(f"/crons/{job.pk}/delete/")
        assert Job.objects.filter(pk=job.pk).exists()

    def test_deleting_a_check_takes_its_history(self, admin, check):
        actions.checkin(Job.objects.get(pk=check.pk).token, "success")
        admin.post(f"/crons/{check.pk}/delete/")
        assert not Job.objects.exists()
        assert not Run.objects.exists()


class TestCheckins:
    @pytest.fixture(autouse=True)
    def fresh_limits(self) -> None:
        views._per_check.reset()
        views._misses.reset()

    def url(self, check: Job, suffix: str = "") -> str:
        return f"/api/v1/checkins/{Job.objects.get(pk=check.pk).token}{suffix}"

    def test_success(self, client, check):
        response = client.post(self.url(check), b"all good", content_type="text/plain")
        assert response.status_code == 200
        assert response.json()["status"] == "ok"
        run = Run.objects.get()
        assert (run.status, run.summary, run.trigger) == ("ok", "all good", "checkin")

    def test_start_then_success_with_its_duration(self, client, check):
        client.post(self.url(check, "/start"))
        assert Job.objects.get(pk=check.pk).health == "running"
        client.post(self.url(check))
        run = Run.objects.get()
        assert run.status == "ok"
        assert run.duration_ms is not None

    def test_fail(self, client, check):
        client.post(self.url(check, "/fail"), b"exit 3", content_type="text/plain")
        job = Job.objects.get(pk=check.pk)
        assert (job.health, job.last_summary) == ("failing", "exit 3")

    def test_unknown_id_is_a_json_404(self, client, check):
        response = client.post(f"/api/v1/checkins/{uuid.uuid4()}")
        assert response.status_code == 404
        assert response.json() == {"error": "not_found", "detail": "No check has that id."}
        assert client.post("/api/v1/checkins/not-a-uuid").status_code == 404

    def test_an_oversized_body_is_413_and_stores_nothing(self, client, check):
        response = client.post(self.url(check), b"x" * 10_001, content_type="text/plain")
        assert response.status_code == 413
        assert response.json()["error"] == "payload_too_large"
        assert not Run.objects.exists()

    def test_get_is_405(self, client, check):
        response = client.get(self.url(check))
        assert response.status_code == 405
        assert response["Allow"] == "POST"

    def test_rate_limited_per_check(self, client, check):
        statuses = [client.post(self.url(check)).status_code for _ in range(12)]
        assert statuses[:10] == [200] * 10
        assert statuses[-1] == 429
        assert Run.objects.count() == 10

    def test_guessing_ids_is_rate_limited(self, client, check):
        statuses = [client.post(f"/api/v1/checkins/{uuid.uuid4()}").status_code for _ in range(12)]
        assert statuses[:10] == [404] * 10
        assert statuses[-1] == 429

    def test_no_csrf_or_session_needed_and_bad_utf8_is_kept_readable(self, check):
        from django.test import Client

        strict = Client(enforce_csrf_checks=True)
        response = strict.post(self.url(check), b"\xff\xfeok", content_type="text/plain")
        assert response.status_code == 200
        assert Run.objects.get().summary.endswith("ok")
