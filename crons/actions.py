"""Every write about scheduled jobs: mirroring a gateway's jobs and runs (the connector calls
these with what the gateway said), direct checks (admins) and their check-ins (the jobs
themselves), the monitoring settings, and the lateness check. Each is one transaction; each
health transition publishes its alert event (`cron.late`, `cron.failed`, `cron.recovered`) once,
with the row change that caused it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, TypedDict

from django.db import transaction
from django.utils import timezone

from agents.models import Agent
from crons import events
from crons.models import Job, Run, new_token
from crons.schedules import EVERY_MAX_S, EVERY_MIN_S, BadSchedule, Schedule
from gateways import frames
from gateways.models import Gateway
from missioncontrol import audit, live
from missioncontrol.audit import Actor
from missioncontrol.errors import Invalid, NotFound
from missioncontrol.retention import delete_in_batches

H = Job.Health
SUMMARY_MAX = 4000
ERROR_MAX = 2000
SHORT = events.SHORT
CHECKIN_BODY_MAX = 10_000  # bytes a check-in may send as its run's output (more: 413)
GRACE_MAX_S = 7 * 24 * 3600
CHECK_BATCH = 100

# --- Health ---------------------------------------------------------------------------------------

_ALERTS = {H.LATE: "cron.late", H.FAILING: "cron.failed"}


class Change:
    """What a job's update changed: the fields to save, and the alert its health raised."""

    def __init__(self, fields: list[str] | None = None) -> None:
        self.fields: list[str] = list(fields or [])
        self.alert: tuple[str, str, str] | None = None  # (kind, before, reason)

    def add(self, *names: str) -> None:
        self.fields.extend(names)


def _apply_health(job: Job, now: datetime, change: Change) -> None:
    """Set the job's health, reason and deadline from what it knows; a transition to late or
    failing, or back from either, is noted as the change's alert (published once, by _save)."""
    health, reason, deadline = job.evaluate(now)
    if job.deadline != deadline:
        job.deadline = deadline
        change.add("deadline")
    if job.health_reason != reason[:SHORT]:
        job.health_reason = reason[:SHORT]
        change.add("health_reason")
    if job.health == health:
        return
    before = job.health
    job.health, job.health_since = health, now
    change.add("health", "health_since")
    kind = _ALERTS.get(health)  # type: ignore[call-overload]
    if kind is None and before in _ALERTS and health in (H.OK, H.RUNNING):
        kind = "cron.recovered"
    if kind is not None:
        change.alert = (kind, before, reason)


def _save(job: Job, change: Change, *, publish: bool = True) -> None:
    """Save the changed fields, publish the job's change, then the alert its health raised."""
    if not change.fields:
        return
    job.save(update_fields=sorted({*change.fields, "updated_at"}))
    if publish:
        events.publish_job(job)
    _alert(job, change)


def _alert(job: Job, change: Change) -> None:
    if change.alert is None:
        return
    kind, before, reason = change.alert
    alert: events.HealthChanged = {
        "type": kind,  # type: ignore[typeddict-item]
        "job": events.job_data(job),
        "before": before,
        "reason": reason,
    }
    gateway = job.gateway if job.gateway_id else None
    audit.record(
        Actor.gateway(gateway.name) if gateway else Actor.system("cron monitor"),
        kind,
        job,
        before={"health": before},
        after={"health": job.health, "reason": reason} if reason else {"health": job.health},
        gateway_id=job.gateway_id,
    )
    # The banner and data consumers (webhooks) hear it on `alerts`; the job's row already
    # changed through its own event.
    live.publish("alerts", alert, gateway_id=job.gateway_id)


def check_health(now: datetime | None = None) -> int:
    """The lateness loop's pass: every job whose deadline passed becomes late (once). Returns
    how many changed."""
    now = now or timezone.now()
    changed = 0
    # In batches, each its own short transaction: a thousand jobs late at once (a gateway's
    # scheduler stalled) must not hold SQLite's write lock for seconds. Every job handled
    # leaves the overdue set (late, or a later deadline), so the batches end.
    for _batch in range(1000):
        with transaction.atomic():
            jobs = list(
                Job.objects.overdue(now)
                .order_by("deadline", "pk")
                .select_related("gateway", "agent")
                .select_for_update(of=("self",), no_key=True)[:CHECK_BATCH]
            )
            for job in jobs:
                change = Change()
                _apply_health(job, now, change)
                if "health" in change.fields:
                    changed += 1
                elif not change.fields:
                    # Nothing to change, yet overdue: should not happen; never loop on it.
                    job.deadline = None
                    change.add("deadline")
                _save(job, change)
        if len(jobs) < CHECK_BATCH:
            break
    return changed


# --- Gateway jobs (the connector) ----------------------------------------------------------------


def _gateway_fields(job: frames.CronJobSnapshot, agents: dict[str, Agent]) -> dict[str, Any]:
    """What a gateway's job says, as Job fields."""
    schedule = Schedule.from_gateway(job.schedule)
    return {
        "name": job.name,
        "description": job.description,
        "agent_ref": job.agent_ref,
        "agent": agents.get(job.agent_ref),
        "schedule": schedule.as_dict() if schedule else {},
        "payload_kind": job.payload_kind,
        "enabled": job.enabled,
        "next_run_at": job.next_run_at,
        "last_run_at": job.last_run_at,
        "last_status": job.last_status,
        "last_duration_ms": job.last_duration_ms,
        "last_summary": job.last_summary,
        "last_error": job.last_error,
        "running_since": job.running_since,
        "consecutive_failures": job.consecutive_failures,
    }


def _agents(gateway_id: int) -> dict[str, Agent]:
    return {a.external_id: a for a in Agent.objects.filter(gateway_id=gateway_id)}


def _upsert(
    gateway: Gateway,
    item: frames.CronJobSnapshot,
    known: dict[str, Job],
    agents: dict[str, Agent],
    now: datetime,
) -> Job:
    external = item.external_id
    fields = _gateway_fields(item, agents)
    job = known.get(external)
    if job is None:
        job = Job(source=Job.Source.GATEWAY, gateway=gateway, external_id=external, **fields)
        job.health_since = now
        health, reason, deadline = job.evaluate(now)
        job.health, job.health_reason, job.deadline = health, reason[:SHORT], deadline
        job.save()
        known[external] = job
        events.publish_job(job, created=True)
        return job
    change = Change([name for name, value in fields.items() if getattr(job, name) != value])
    for name in change.fields:
        setattr(job, name, fields[name])
    if job.removed_at is not None:
        job.removed_at = None
        change.add("removed_at")
    _apply_health(job, now, change)
    _save(job, change)
    return job


def sync_gateway_jobs(
    gateway_id: int,
    listed: Sequence[frames.CronJobSnapshot],
    *,
    complete: bool,
    skipped: frames.Skipped | None = None,
) -> list[Job]:
    """A gateway's jobs as `cron.list` gave them (complete: jobs it no longer lists are marked
    removed, their history kept). Idempotent; publishes only what changed. A job the database
    refuses is skipped (counted in `skipped`), the others stored."""
    now = timezone.now()
    with transaction.atomic():
        gateway = Gateway.objects.filter(pk=gateway_id).first()
        if gateway is None:
            return []
        known = {
            j.external_id: j
            for j in Job.objects.of_gateway(gateway_id).select_for_update(no_key=True)
        }
        agents = _agents(gateway_id)
        seen: list[Job] = []
        for item in listed:
            # Each in a savepoint: a job whose values no reader foresaw is rolled back alone.
            with frames.skipping("cron jobs", skipped), transaction.atomic():
                seen.append(_upsert(gateway, item, known, agents, now))
        if complete:
            present = {job.pk for job in seen}
            for job in known.values():
                if job.pk not in present and job.removed_at is None:
                    _remove(job, now)
    return seen


def _remove(job: Job, now: datetime) -> None:
    job.removed_at = now
    change = Change(["removed_at"])
    _apply_health(job, now, change)  # paused: a removed job raises no alert
    job.save(update_fields=[*change.fields, "updated_at"])
    events.publish_job(job, "cron.job_removed")


def _run_fields(entry: frames.CronRunEntry) -> dict[str, Any]:
    return {
        "status": entry.status,
        "trigger": Run.Trigger.MANUAL if entry.manual else Run.Trigger.SCHEDULE,
        "started_at": entry.started_at or timezone.now(),
        "finished_at": entry.finished_at,
        "duration_ms": entry.duration_ms,
        "summary": entry.summary,
        "error": entry.error,
        "model": entry.model,
        "provider": entry.provider,
        "input_tokens": entry.input_tokens,
        "output_tokens": entry.output_tokens,
        "session_key": entry.session_key,
    }


def record_gateway_runs(
    gateway_id: int, entries: Sequence[frames.CronRunEntry], skipped: frames.Skipped | None = None
) -> int:
    """Finished runs from `cron.runs` (a re-sync): each stored once by (job, start); a run the
    dashboard saw start is completed. Returns how many were new or completed. An entry the
    database refuses is skipped (counted in `skipped`)."""
    stored = 0
    with transaction.atomic():
        jobs = {
            j.external_id: j
            for j in Job.objects.of_gateway(gateway_id).select_related("gateway", "agent")
        }
        for entry in entries:
            with frames.skipping("cron runs", skipped), transaction.atomic():
                stored += _record_run(jobs.get(entry.job_id), entry)
    return stored


def _record_run(job: Job | None, entry: frames.CronRunEntry) -> int:
    """One `cron.runs` entry stored (1) or completed (1), else 0."""
    key = entry.run_key
    if job is None or not key or not entry.finished:
        return 0
    fields = _run_fields(entry)
    run = Run.objects.filter(job=job, run_key=key).first()
    if run is None:
        run = Run.objects.create(job=job, run_key=key, **fields)
        events.publish_run(job, run, "cron.run_finished", created=True)
        return 1
    if run.status == Run.Status.RUNNING:
        for name, value in fields.items():
            setattr(run, name, value)
        run.save()
        events.publish_run(job, run, "cron.run_finished", created=False)
        return 1
    return 0


def gateway_cron_event(gateway_id: int, event: frames.CronEvent) -> Job | None:
    """A `cron` event: a job added, updated, removed, or a run started or finished."""
    external = event.job_id
    now = timezone.now()
    with transaction.atomic():
        gateway = Gateway.objects.filter(pk=gateway_id).first()
        if gateway is None:
            return None
        known = {
            j.external_id: j
            for j in Job.objects.of_gateway(gateway_id)
            .filter(external_id=external)
            .select_for_update(no_key=True)
        }
        if event.action == "removed":
            job = known.get(external)
            if job is not None and job.removed_at is None:
                _remove(job, now)
            return job
        if event.job is None:
            return known.get(external)
        job = _upsert(gateway, event.job, known, _agents(gateway_id), now)
        run = event.run
        if run is None or not run.run_key:
            return job
        if event.action == "started":
            started, created = Run.objects.get_or_create(
                job=job,
                run_key=run.run_key,
                defaults={"status": Run.Status.RUNNING, "started_at": run.started_at or now},
            )
            if created:
                events.publish_run(job, started, "cron.run_started", created=True)
        elif event.action == "finished":
            fields = _run_fields(run)
            finished, created = Run.objects.get_or_create(
                job=job, run_key=run.run_key, defaults=fields
            )
            if not created:
                for name, value in fields.items():
                    setattr(finished, name, value)
                finished.save()
            events.publish_run(job, finished, "cron.run_finished", created=created)
    return job


def record_run_requested(actor: Actor, job: Job, run_id: str) -> None:
    """An operator asked the gateway to run the job now (it answered `enqueued`): audited."""
    with transaction.atomic():
        audit.record(
            actor,
            "cron.run_requested",
            job,
            after={"run_id": run_id},
            gateway_id=job.gateway_id,
        )


def record_enabled(actor: Actor, job_id: int, enabled: bool) -> Job:
    """An admin enabled or disabled a job (for a gateway's job: after the gateway accepted it;
    its `cron` event follows and changes nothing more)."""
    now = timezone.now()
    with transaction.atomic():
        job = _lock(job_id)
        if job.enabled == enabled:
            return job
        job.enabled = enabled
        audit.record(
            actor,
            "cron.enabled" if enabled else "cron.disabled",
            job,
            before={"enabled": not enabled},
            after={"enabled": enabled},
            gateway_id=job.gateway_id,
        )
        change = Change(["enabled"])
        _apply_health(job, now, change)
        _save(job, change)
    return job


def _lock(job_id: int) -> Job:
    try:
        return (
            Job.objects.listed()
            .select_related("gateway", "agent")
            .select_for_update(of=("self",), no_key=True)
            .get(pk=job_id)
        )
    except Job.DoesNotExist:
        raise NotFound("That job does not exist (any more).") from None


# --- Monitoring settings and direct checks (admins) ----------------------------------------------

_NAME_RE = re.compile(r"^\S.{0,199}$", re.S)


def _int(value: Any, field: str, low: int, high: int, errors: dict[str, list[str]]) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        errors[field] = [f"Enter a whole number from {low} to {high}."]
        return low
    if not low <= number <= high:
        errors[field] = [f"Enter a whole number from {low} to {high}."]
    return number


class CheckSettings(TypedDict, total=False):
    """A job's monitoring settings (any job) and a direct check's name and schedule; each
    value checked by `clean_check` (a form's text or a number)."""

    name: str
    description: str
    kind: str  # "cron" | "every"
    expr: str
    tz: str
    every_s: int | str | None
    grace_s: int | str | None
    failure_threshold: int | str | None


def clean_check(fields: CheckSettings, *, direct: bool) -> dict[str, Any]:
    """Validated settings: grace and failure threshold for any job; for a direct check also its
    name and schedule (`kind` cron with `expr` and `tz`, or every `every_s` seconds)."""
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    if "grace_s" in fields:
        clean["grace_s"] = _int(fields["grace_s"], "grace_s", 0, GRACE_MAX_S, errors)
    if "failure_threshold" in fields:
        clean["failure_threshold"] = _int(
            fields["failure_threshold"], "failure_threshold", 1, 100, errors
        )
    if direct:
        name = str(fields.get("name") or "").strip()
        if not _NAME_RE.match(name) or len(name) > 200:
            errors["name"] = ["Give the check a name (200 characters at most)."]
        clean["name"] = name
        clean["description"] = str(fields.get("description") or "").strip()[:500]
        kind = fields.get("kind")
        try:
            if kind == "cron":
                schedule = Schedule.cron(
                    str(fields.get("expr") or ""), str(fields.get("tz") or "UTC").strip()
                )
            elif kind == "every":
                every = _int(fields.get("every_s"), "every_s", EVERY_MIN_S, EVERY_MAX_S, errors)
                schedule = Schedule.every(every)
            else:
                raise BadSchedule("Choose a cron expression or a period.")
            clean["schedule"] = schedule.as_dict()
        except BadSchedule as bad:
            errors["expr" if kind == "cron" else "kind"] = [str(bad)]
    if errors:
        raise Invalid(errors)
    return clean


def create_check(actor: Actor, fields: CheckSettings) -> Job:
    """A direct check (admins): monitored like a gateway job, fed by its check-in URL."""
    clean = clean_check(fields, direct=True)
    now = timezone.now()
    with transaction.atomic():
        job = Job(source=Job.Source.DIRECT, token=new_token(), health_since=now, **clean)
        job.created_at = now
        health, reason, deadline = job.evaluate(now)
        job.health, job.health_reason, job.deadline = health, reason[:SHORT], deadline
        job.save()
        audit.record(actor, "cron.check_created", job, after=_shown(job))
        events.publish_job(job, created=True)
    return job


def _shown(job: Job) -> dict[str, Any]:
    return {
        "name": job.name,
        "schedule": job.schedule_raw,
        "grace_s": job.grace_s,
        "failure_threshold": job.failure_threshold,
    }


def update_job(actor: Actor, job_id: int, fields: CheckSettings) -> Job:
    """An admin's change to a job's monitoring (any job) or a direct check's name and schedule."""
    now = timezone.now()
    with transaction.atomic():
        job = _lock(job_id)
        clean = clean_check(fields, direct=job.is_direct)
        before = _shown(job)
        changed = [name for name, value in clean.items() if getattr(job, name) != value]
        for name in changed:
            setattr(job, name, clean[name])
        if not changed:
            return job
        audit.record(
            actor,
            "cron.settings_changed",
            job,
            before=before,
            after=_shown(job),
            gateway_id=job.gateway_id,
        )
        change = Change(changed)
        _apply_health(job, now, change)
        _save(job, change)
    return job


def delete_check(actor: Actor, job_id: int) -> None:
    """Delete a direct check and its history (a gateway's jobs are removed on the gateway)."""
    with transaction.atomic():
        job = _lock(job_id)
        if not job.is_direct:
            raise Invalid("A gateway's job is removed on its gateway, not here.")
        audit.record(actor, "cron.check_deleted", job, before=_shown(job))
        events.publish_job(job, "cron.job_removed")
        job.delete()


def rotate_token(actor: Actor, job_id: int) -> Job:
    """A new check-in URL for a direct check (the old one stops working at once)."""
    with transaction.atomic():
        job = _lock(job_id)
        if not job.is_direct:
            raise Invalid("Only a direct check has a check-in URL.")
        job.token = new_token()
        job.save(update_fields=["token", "updated_at"])
        audit.record(actor, "cron.check_url_rotated", job)
    return job


Signal = Literal["success", "start", "fail"]


def checkin(
    token: uuid.UUID | None, signal: Signal, body: str = "", *, now: datetime | None = None
) -> Run:
    """A direct check's job reporting in: `start`, then `success` or `fail` (a success or fail
    without a start is a run of unknown duration). NotFound for an unknown id."""
    now = now or timezone.now()
    body = body[:CHECKIN_BODY_MAX]
    if token is None:
        raise NotFound("No check has that id.")
    with transaction.atomic():
        job = (
            Job.objects.filter(token=token, source=Job.Source.DIRECT)
            .select_for_update(no_key=True)
            .first()
        )
        if job is None:
            raise NotFound("No check has that id.")
        open_run = (
            Run.objects.filter(job=job, status=Run.Status.RUNNING).order_by("-started_at").first()
        )
        if signal == "start":
            if open_run is not None:  # a start without its end: that run never reported back
                open_run.status, open_run.finished_at = Run.Status.FAILED, now
                open_run.error = "started again before reporting an end"
                open_run.save(update_fields=["status", "finished_at", "error"])
            run = Run.objects.create(
                job=job,
                run_key=str(uuid.uuid4()),
                status=Run.Status.RUNNING,
                trigger=Run.Trigger.CHECKIN,
                started_at=now,
                summary=body,
            )
            job.running_since = now
            change = Change(["running_since"])
            kind = "cron.run_started"
        else:
            ok = signal == "success"
            status = Run.Status.OK if ok else Run.Status.FAILED
            if open_run is not None:
                run = open_run
                run.status, run.finished_at = status, now
                run.duration_ms = int((now - run.started_at).total_seconds() * 1000)
                run.summary = (body or run.summary)[:SUMMARY_MAX]
                if not ok:
                    run.error = "reported failure"
                run.save()
            else:
                run = Run.objects.create(
                    job=job,
                    run_key=str(uuid.uuid4()),
                    status=status,
                    trigger=Run.Trigger.CHECKIN,
                    started_at=now,
                    finished_at=now,
                    summary=body[:SUMMARY_MAX],
                    error="" if ok else "reported failure",
                )
            job.running_since = None
            job.last_run_at = now
            job.last_status = status
            job.last_duration_ms = run.duration_ms
            job.last_summary = run.summary[:SUMMARY_MAX]
            job.last_error = run.error
            job.consecutive_failures = 0 if ok else job.consecutive_failures + 1
            change = Change(
                [
                    "running_since",
                    "last_run_at",
                    "last_status",
                    "last_duration_ms",
                    "last_summary",
                    "last_error",
                    "consecutive_failures",
                ]
            )
            kind = "cron.run_finished"
        _apply_health(job, now, change)
        job.save(update_fields=[*change.fields, "updated_at"])
        events.publish_run(job, run, kind, created=kind == "cron.run_started" or open_run is None)
        _alert(job, change)
    return run


def prune_runs(older_than: datetime) -> int:
    """Delete runs started before `older_than` (retention by age), in short batches."""
    return delete_in_batches(Run.objects.filter(started_at__lt=older_than))
