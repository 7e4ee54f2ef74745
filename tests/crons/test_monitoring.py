"""Cron monitoring in the core: a gateway's jobs mirrored from what a real gateway said, runs
stored once, and health transitions — late, failing, recovered — each published once, on a
frozen clock. Direct checks are monitored the same way."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from crons import actions
from crons.models import Job, Run
from gateways import frames
from gateways.models import Gateway
from missioncontrol.audit import Actor
from missioncontrol.models import AuditEvent, LiveEvent
from tests.crons.test_schedules import recorded
from tests.gateways.factories import make_gateway
from webhooks import actions as webhook_actions
from webhooks.models import Delivery, Endpoint

pytestmark = pytest.mark.django_db
ADMIN = Actor.system("tests")
T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
NOW = T0  # where the `clock` fixture starts


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def events(*types: str) -> list[LiveEvent]:
    return list(LiveEvent.objects.filter(type__in=types).order_by("seq"))


@pytest.fixture
def gateway(clock) -> Gateway:
    found = make_gateway(name="prod")
    Gateway.objects.filter(pk=found.pk).update(state="connected")
    return Gateway.objects.get(pk=found.pk)


def job_item(next_run: datetime, **state: Any) -> dict[str, Any]:
    return {
        "id": "job-1",
        "name": "nightly-backup",
        "agentId": "main",
        "enabled": True,
        "schedule": {"kind": "cron", "expr": "0 3 * * *", "tz": "UTC"},
        "payload": {"kind": "command", "argv": ["backup"]},
        "state": {"nextRunAtMs": ms(next_run), **state},
    }


class TestMirroring:
    def test_a_real_gateways_list_becomes_its_jobs_with_health(self, gateway):
        jobs = actions.sync_gateway_jobs(
            gateway.pk, frames.cron_jobs(recorded("cron.list")), complete=True
        )
        assert sorted(j.name for j in jobs) == [
            "Heartbeat (main)",
            "Memory Dreaming Promotion",
            "Skill collection review (main)",
        ]
        heartbeat = Job.objects.get(external_id="9f977edb-222a-4781-8c9c-52ee70b5815d")
        assert heartbeat.gateway_id == gateway.pk
        assert heartbeat.schedule_raw == "every 30m"
        assert heartbeat.last_status == "skipped"  # skipped is not a failure
        assert heartbeat.health == "late"  # its recorded next run is long past (frozen clock)
        assert len(events("cron.job_changed")) == 3
        # The same list again changes nothing and publishes nothing.
        actions.sync_gateway_jobs(
            gateway.pk, frames.cron_jobs(recorded("cron.list")), complete=True
        )
        assert len(events("cron.job_changed")) == 3

    def test_a_job_the_gateway_no_longer_lists_is_removed_with_its_history_kept(self, gateway):
        actions.sync_gateway_jobs(
            gateway.pk, frames.cron_jobs([job_item(T0 + timedelta(hours=1))]), complete=True
        )
        job = Job.objects.get()
        Run.objects.create(job=job, run_key="1", status="ok", started_at=T0)
        actions.sync_gateway_jobs(gateway.pk, frames.cron_jobs([]), complete=True)
        job.refresh_from_db()
        assert job.removed_at is not None
        assert not Job.objects.listed().exists()
        assert job.runs.count() == 1
        assert [e.type for e in events("cron.job_removed")] == ["cron.job_removed"]
        assert not events("cron.late", "cron.failed")

    def test_a_command_job_run_now_from_the_real_gateways_events(self, gateway):
        for payload in recorded("cron events"):
            if payload["action"] == "removed":
                continue
            actions.gateway_cron_event(gateway.pk, frames.cron_event(payload))
        job = Job.objects.get(name="probe-echo")
        run = job.runs.get()
        assert (run.status, run.duration_ms, run.trigger) == ("ok", 24, "manual")  # run now
        assert run.summary.startswith("hello-from-cron")
        assert (job.last_status, job.running_since, job.consecutive_failures) == ("ok", None, 0)
        types = [e.type for e in events("cron.run_started", "cron.run_finished")]
        assert types == ["cron.run_started", "cron.run_finished"]
        # Then the re-sync's cron.runs finds the same run: stored once, nothing published.
        entries = copy.deepcopy(recorded("cron.runs"))
        for entry in entries:
            if entry["jobId"] == job.external_id:
                entry["runId"] = "manual:x"
        assert actions.record_gateway_runs(gateway.pk, frames.cron_runs(entries)) == 0
        assert job.runs.count() == 1
        # Removed on the gateway: gone from the list.
        actions.gateway_cron_event(gateway.pk, frames.cron_event(recorded("cron events")[-1]))
        assert not Job.objects.listed().filter(name="probe-echo").exists()

    def test_runs_that_finished_while_away_are_stored_once(self, gateway):
        actions.sync_gateway_jobs(
            gateway.pk, frames.cron_jobs(recorded("cron.list")), complete=False
        )
        entries = recorded("cron.runs")
        actions.record_gateway_runs(gateway.pk, frames.cron_runs(entries))
        actions.record_gateway_runs(gateway.pk, frames.cron_runs(entries))
        # Two of the three runs belong to jobs this gateway lists no more (the probes).
        assert Run.objects.count() == 1
        run = Run.objects.get()
        assert (run.status, run.error) == ("skipped", "heartbeat skipped: no-route")


def test_runs_past_retention_are_pruned(clock):
    job = actions.create_check(ADMIN, {"name": "old", "kind": "every", "every_s": 3600})
    for days in (100, 95, 1):
        Run.objects.create(
            job=job, run_key=str(days), status="ok", started_at=T0 - timedelta(days=days)
        )
    assert actions.prune_runs(T0 - timedelta(days=90)) == 2
    assert list(job.runs.values_list("run_key", flat=True)) == ["1"]


class TestHealth:
    def test_late_once_after_the_grace_period_then_recovered_by_a_run(self, gateway, clock):
        due = T0 + timedelta(minutes=10)
        actions.sync_gateway_jobs(gateway.pk, frames.cron_jobs([job_item(due)]), complete=True)
        job = Job.objects.get()
        assert (job.health, job.deadline) == ("ok", due + timedelta(seconds=300))
        clock.move_to(due + timedelta(seconds=299))
        assert actions.check_health() == 0
        clock.move_to(due + timedelta(seconds=301))
        assert actions.check_health() == 1
        assert actions.check_health() == 0  # once per transition
        job.refresh_from_db()
        assert job.health == "late"
        assert "has not run since" in job.health_reason
        late = events("cron.late")
        assert len(late) == 1
        assert late[0].topic == "alerts"
        assert late[0].payload["job"]["name"] == "nightly-backup"
        assert late[0].gateway_id == gateway.pk
        assert AuditEvent.objects.filter(verb="cron.late").count() == 1
        # The run comes: its finish moves the next run on, and the job is back.
        actions.gateway_cron_event(
            gateway.pk,
            frames.cron_event(
                {
                    "jobId": "job-1",
                    "action": "finished",
                    "job": job_item(
                        due + timedelta(days=1), lastRunStatus="ok", consecutiveErrors=0
                    ),
                    "status": "ok",
                    "runAtMs": ms(due + timedelta(seconds=400)),
                    "durationMs": 1200,
                }
            ),
        )
        job.refresh_from_db()
        assert job.health == "ok"
        recovered = events("cron.recovered")
        assert len(recovered) == 1
        assert recovered[0].payload["before"] == "late"

    def test_failing_after_n_failed_runs_in_a_row(self, gateway):
        actions.sync_gateway_jobs(
            gateway.pk, frames.cron_jobs([job_item(T0 + timedelta(hours=1))]), complete=True
        )
        job = Job.objects.get()
        actions.update_job(ADMIN, job.pk, {"grace_s": 300, "failure_threshold": 2})

        def finish(n: int, status: str, errors: int) -> None:
            actions.gateway_cron_event(
                gateway.pk,
                frames.cron_event(
                    {
                        "jobId": "job-1",
                        "action": "finished",
                        "job": job_item(
                            T0 + timedelta(hours=1 + n),
                            lastRunStatus=status,
                            consecutiveErrors=errors,
                        ),
                        "status": status,
                        "error": "exit 1" if status == "error" else None,
                        "runAtMs": ms(T0 + timedelta(minutes=n)),
                        "durationMs": 10,
                    }
                ),
            )

        finish(1, "error", 1)
        assert Job.objects.get().health == "ok"  # one failure: under the threshold of 2
        finish(2, "error", 2)
        job.refresh_from_db()
        assert (job.health, job.health_reason) == ("failing", "last 2 runs failed")
        finish(3, "error", 3)
        assert len(events("cron.failed")) == 1
        finish(4, "ok", 0)
        assert Job.objects.get().health == "ok"
        assert [e.payload["before"] for e in events("cron.recovered")] == ["failing"]
        assert Run.objects.filter(status="failed").count() == 3

    def test_a_disconnected_gateways_jobs_are_not_called_late(self, gateway, clock):
        actions.sync_gateway_jobs(gateway.pk, frames.cron_jobs([job_item(T0)]), complete=True)
        Gateway.objects.filter(pk=gateway.pk).update(state="unreachable")
        clock.move_to(T0 + timedelta(hours=2))
        assert actions.check_health() == 0
        Gateway.objects.filter(pk=gateway.pk).update(state="connected")
        assert actions.check_health() == 1

    def test_a_disabled_job_is_paused_and_raises_nothing(self, gateway, clock):
        actions.sync_gateway_jobs(
            gateway.pk, frames.cron_jobs([{**job_item(T0), "enabled": False}]), complete=True
        )
        clock.move_to(T0 + timedelta(hours=2))
        assert actions.check_health() == 0
        assert Job.objects.get().health == "paused"
        assert not events("cron.late", "cron.failed", "cron.recovered")

    def test_alerts_are_webhook_events(self, gateway, clock, settings):
        settings.MC_WEBHOOK_ALLOW_PRIVATE = True
        webhook_actions.save_endpoint(
            ADMIN,
            Endpoint(url="http://127.0.0.1:9/hook", event_types=["cron.late", "cron.recovered"]),
        )
        actions.sync_gateway_jobs(gateway.pk, frames.cron_jobs([job_item(T0)]), complete=True)
        clock.move_to(T0 + timedelta(hours=1))
        actions.check_health()
        actions.sync_gateway_jobs(
            gateway.pk, frames.cron_jobs([job_item(T0 + timedelta(days=1))]), complete=True
        )
        assert list(Delivery.objects.order_by("pk").values_list("event_type", flat=True)) == [
            "cron.late",
            "cron.recovered",
        ]


class TestDirectChecks:
    def check(self, **fields: Any) -> Job:
        settings = {
            "name": "db dump",
            "kind": "every",
            "every_s": 3600,
            "grace_s": 300,
            "failure_threshold": 1,
            **fields,
        }
        return actions.create_check(ADMIN, cast(actions.CheckSettings, settings))

    def test_silence_past_period_and_grace_is_late_and_a_check_in_recovers(self, clock):
        job = self.check()
        assert job.source == "direct"
        assert job.token
        assert job.gateway_id is None
        clock.move_to(T0 + timedelta(minutes=64))
        assert actions.check_health() == 0
        clock.move_to(T0 + timedelta(minutes=65, seconds=1))
        assert actions.check_health() == 1
        assert Job.objects.get().health == "late"
        actions.checkin(job.token, "success", "dumped 3 tables")
        job.refresh_from_db()
        assert (job.health, job.last_status, job.last_summary) == ("ok", "ok", "dumped 3 tables")
        assert job.deadline == T0 + timedelta(minutes=65, seconds=1) + timedelta(minutes=65)
        assert [e.type for e in events("cron.late", "cron.recovered")] == [
            "cron.late",
            "cron.recovered",
        ]

    def test_start_then_success_has_a_duration(self, clock):
        job = self.check()
        actions.checkin(job.token, "start")
        assert Job.objects.get().health == "running"
        clock.shift(timedelta(seconds=42))
        run = actions.checkin(job.token, "success")
        assert (run.status, run.duration_ms) == ("ok", 42_000)
        assert job.runs.count() == 1

    def test_a_start_that_never_ends_is_late_after_the_grace_period(self, clock):
        job = self.check(grace_s=120)
        actions.checkin(job.token, "start")
        clock.shift(timedelta(seconds=121))
        assert actions.check_health() == 1
        job.refresh_from_db()
        assert job.health == "late"
        assert "did not report back" in job.health_reason

    def test_fail_is_failing_at_once_with_the_default_threshold(self):
        job = self.check()
        actions.checkin(job.token, "fail", "disk full")
        job.refresh_from_db()
        assert (job.health, job.last_status, job.consecutive_failures) == ("failing", "failed", 1)
        assert len(events("cron.failed")) == 1

    def test_a_cron_schedule_is_expected_by_croniter(self, clock):
        job = self.check(kind="cron", expr="30 10 * * *", tz="UTC")
        assert job.deadline == datetime(2026, 12, 2, 10, 35, tzinfo=UTC)

    @pytest.mark.parametrize(
        ("fields", "field"),
        [
            ({"name": ""}, "name"),
            ({"kind": "cron", "expr": "every day"}, "expr"),
            ({"kind": "cron", "expr": "0 3 * * *", "tz": "Nowhere/Else"}, "expr"),
            ({"kind": "every", "every_s": 5}, "every_s"),
            ({"kind": "sometimes"}, "kind"),
            ({"grace_s": -1}, "grace_s"),
            ({"failure_threshold": "many"}, "failure_threshold"),
        ],
    )
    def test_bad_settings_are_refused_with_the_field(self, fields, field):
        from missioncontrol.errors import Invalid

        with pytest.raises(Invalid) as refused:
            self.check(**fields)
        assert field in refused.value.message_dict
        assert not Job.objects.exists()
