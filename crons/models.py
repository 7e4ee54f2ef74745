"""Scheduled jobs and their runs: every cron job of every gateway (mirrored from `cron.list` and
`cron` events) and direct checks (jobs outside OpenClaw that call a check-in URL), monitored the
same way: late when an expected run has not come within the grace period, failing after N failed
runs in a row."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db import models
from django.db.models import Q

from crons.schedules import Schedule


class JobQuerySet(models.QuerySet["Job"]):
    def listed(self) -> JobQuerySet:
        """Jobs the pages show: not removed from their gateway."""
        return self.filter(removed_at__isnull=True)

    def overdue(self, now: datetime) -> JobQuerySet:
        """Jobs whose deadline passed that are not known late yet; a gateway's only while it is
        connected (what a disconnected gateway runs cannot be seen: the gateway is the alert)."""
        return (
            self.listed()
            .filter(deadline__lte=now, enabled=True)
            .exclude(health__in=[Job.Health.LATE, Job.Health.PAUSED])
            .filter(Q(gateway__isnull=True) | Q(gateway__state="connected"))
        )

    def needing_attention(self) -> JobQuerySet:
        return self.listed().filter(health__in=[Job.Health.LATE, Job.Health.FAILING])

    def of_gateway(self, gateway_id: int) -> JobQuerySet:
        return self.filter(gateway_id=gateway_id, source=Job.Source.GATEWAY)


class Job(models.Model):
    class Source(models.TextChoices):
        GATEWAY = "gateway"
        DIRECT = "direct"

    class Health(models.TextChoices):
        OK = "ok"
        RUNNING = "running"
        LATE = "late"
        FAILING = "failing"
        PAUSED = "paused"

    source = models.CharField(max_length=16, choices=Source.choices, default=Source.GATEWAY)
    gateway = models.ForeignKey(
        "gateways.Gateway",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="cron_jobs",
    )
    external_id = models.CharField(max_length=128, blank=True)
    # A direct check's check-in id: the URL's only credential (like the well-known cron monitors).
    token = models.UUIDField(null=True, blank=True, unique=True)
    name = models.CharField(max_length=200)
    description = models.CharField(max_length=500, blank=True)
    agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="cron_jobs"
    )
    agent_ref = models.CharField(max_length=128, blank=True)
    schedule = models.JSONField(default=dict)  # Schedule.as_dict()
    payload_kind = models.CharField(max_length=32, blank=True)
    enabled = models.BooleanField(default=True)
    # Monitoring settings (ours, not the gateway's).
    grace_s = models.PositiveIntegerField(default=300)
    failure_threshold = models.PositiveSmallIntegerField(default=1)
    # What happened last.
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=16, blank=True)
    last_duration_ms = models.BigIntegerField(null=True, blank=True)
    last_summary = models.TextField(blank=True)
    last_error = models.TextField(blank=True)
    running_since = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    # Health, kept by the actions and the lateness loop; `deadline`: when it becomes late if
    # nothing happens before.
    health = models.CharField(max_length=16, choices=Health.choices, default=Health.OK)
    health_since = models.DateTimeField(null=True, blank=True)
    health_reason = models.CharField(max_length=300, blank=True)
    deadline = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            # A gateway's job is mirrored once, by its id on the gateway (sync and events).
            models.UniqueConstraint(
                fields=["gateway", "external_id"],
                condition=Q(source="gateway"),
                name="crons_job_one_per_gateway_id",
            ),
        ]
        indexes = [
            # The lateness loop: Job.objects.overdue(now), every few seconds.
            models.Index(
                fields=["deadline"],
                condition=Q(removed_at__isnull=True, enabled=True),
                name="crons_job_deadline",
            ),
            # The banner and the list's "needs attention" filter.
            models.Index(
                fields=["health"],
                condition=Q(removed_at__isnull=True),
                name="crons_job_health",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def parsed_schedule(self) -> Schedule | None:
        return Schedule.from_dict(self.schedule)

    @property
    def schedule_raw(self) -> str:
        found = self.parsed_schedule
        return found.raw() if found else "—"

    @property
    def schedule_words(self) -> str:
        found = self.parsed_schedule
        return found.words() if found else "Schedule not understood"

    @property
    def is_direct(self) -> bool:
        return self.source == self.Source.DIRECT

    def expected_next(self, now: datetime) -> datetime | None:
        """When the next run is expected: the gateway's word where it gave one, else from the
        schedule (croniter) after the last run (or creation)."""
        if self.next_run_at is not None:
            return self.next_run_at
        found = self.parsed_schedule
        if found is None:
            return None
        base = self.last_run_at or self.created_at or now
        return found.next_after(base)

    def evaluate(self, now: datetime) -> tuple[str, str, datetime | None]:
        """(health, reason, deadline) from what the row knows, at `now`."""
        H = self.Health
        grace = timedelta(seconds=self.grace_s)
        if self.removed_at is not None or not self.enabled:
            return H.PAUSED, "disabled", None
        if self.running_since is not None:
            if self.is_direct:
                # A check that said /start and never finished: late after its grace period.
                running_deadline = self.running_since + grace
                if now >= running_deadline:
                    return H.LATE, "started and did not report back within its grace period", None
                return H.RUNNING, "", running_deadline
            return H.RUNNING, "", None
        expected = self.expected_next(now)
        deadline = expected + grace if expected is not None else None
        if deadline is not None and now >= deadline:
            return H.LATE, f"expected at {expected:%b %-d %H:%M} UTC and has not run since", None
        if self.consecutive_failures >= max(1, self.failure_threshold):
            n = self.consecutive_failures
            return H.FAILING, f"last {n} run{'s' if n != 1 else ''} failed", deadline
        if self.is_direct and self.last_run_at is None:
            # Not "ok" yet: nothing has checked in.
            return H.OK, "waiting for its first check-in", deadline
        return H.OK, "", deadline


class Run(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running"
        OK = "ok"
        FAILED = "failed"
        SKIPPED = "skipped"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule"
        MANUAL = "manual"
        CHECKIN = "checkin"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="runs")
    # The run's natural key: a gateway run's start (runAtMs), a check-in's own id.
    run_key = models.CharField(max_length=128)
    status = models.CharField(max_length=16, choices=Status.choices)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.SCHEDULE)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.BigIntegerField(null=True, blank=True)
    summary = models.TextField(blank=True)
    error = models.TextField(blank=True)
    model = models.CharField(max_length=128, blank=True)
    provider = models.CharField(max_length=64, blank=True)
    input_tokens = models.BigIntegerField(null=True, blank=True)
    output_tokens = models.BigIntegerField(null=True, blank=True)
    session_key = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]
        constraints = [
            # A run reported twice (its event, then a re-sync's cron.runs) is stored once.
            models.UniqueConstraint(fields=["job", "run_key"], name="crons_run_once"),
        ]
        indexes = [
            # A job's history, newest first; retention by age.
            models.Index(fields=["job", "-started_at"], name="crons_run_history"),
            models.Index(fields=["started_at"], name="crons_run_started"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}:{self.run_key}"


def new_token() -> uuid.UUID:
    return uuid.uuid4()
