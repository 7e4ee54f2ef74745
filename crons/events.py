"""The scheduled jobs' domain events (docs/events.md, "Scheduled jobs"): a job and a run as
events carry them, and their publication. The actions (crons/actions.py) call these."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, TypedDict

from django.utils import timezone

from agents.models import Agent
from crons.models import Job, Run
from gateways.models import Gateway
from missioncontrol import live

SHORT = 300  # characters of a summary or an error an event carries


class GatewayRef(TypedDict):
    id: int
    name: str
    colour: str


class AgentRef(TypedDict):
    id: int
    name: str


class JobData(TypedDict):
    """A job as events carry it (never a direct check's check-in id)."""

    id: int
    source: str
    gateway: GatewayRef | None
    external_id: str
    name: str
    agent: AgentRef | None
    schedule: str
    schedule_words: str
    enabled: bool
    health: str
    health_since: str | None
    health_reason: str
    next_run_at: str | None
    last_run_at: str | None
    last_status: str
    last_duration_ms: int | None
    last_summary: str
    last_error: str
    running_since: str | None
    consecutive_failures: int
    grace_s: int
    failure_threshold: int


class RunData(TypedDict):
    id: int
    status: str
    trigger: str
    started_at: str
    finished_at: str | None
    duration_ms: int | None
    summary: str
    error: str
    model: str
    provider: str
    input_tokens: int | None
    output_tokens: int | None
    session_key: str


class JobChanged(TypedDict):
    type: Literal["cron.job_changed", "cron.job_removed"]
    job: JobData
    created: bool


class RunChanged(TypedDict):
    type: Literal["cron.run_started", "cron.run_finished"]
    job: JobData
    run: RunData
    created: bool


class HealthChanged(TypedDict):
    """An alert: the job became late or failing, or came back from either."""

    type: Literal["cron.late", "cron.failed", "cron.recovered"]
    job: JobData
    before: str
    reason: str


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def job_data(job: Job, gateway: Gateway | None = None, agent: Agent | None = None) -> JobData:
    gateway = gateway or (job.gateway if job.gateway_id else None)
    agent = agent or (job.agent if job.agent_id else None)
    return {
        "id": job.pk,
        "source": job.source,
        "gateway": {"id": gateway.pk, "name": gateway.name, "colour": gateway.colour}
        if gateway
        else None,
        "external_id": job.external_id,
        "name": job.name,
        "agent": {"id": agent.pk, "name": agent.name} if agent else None,
        "schedule": job.schedule_raw,
        "schedule_words": job.schedule_words,
        "enabled": job.enabled,
        "health": job.health,
        "health_since": _iso(job.health_since),
        "health_reason": job.health_reason,
        # A direct check's next run is what its schedule expects (a gateway says its own).
        "next_run_at": _iso(
            job.next_run_at or (job.expected_next(timezone.now()) if job.is_direct else None)
        ),
        "last_run_at": _iso(job.last_run_at),
        "last_status": job.last_status,
        "last_duration_ms": job.last_duration_ms,
        "last_summary": job.last_summary[:SHORT],
        "last_error": job.last_error[:SHORT],
        "running_since": _iso(job.running_since),
        "consecutive_failures": job.consecutive_failures,
        "grace_s": job.grace_s,
        "failure_threshold": job.failure_threshold,
    }


def run_data(run: Run) -> RunData:
    return {
        "id": run.pk,
        "status": run.status,
        "trigger": run.trigger,
        "started_at": run.started_at.isoformat(),
        "finished_at": _iso(run.finished_at),
        "duration_ms": run.duration_ms,
        "summary": run.summary[:SHORT],
        "error": run.error[:SHORT],
        "model": run.model,
        "provider": run.provider,
        "input_tokens": run.input_tokens,
        "output_tokens": run.output_tokens,
        "session_key": run.session_key,
    }


def publish_job(job: Job, kind: str = "cron.job_changed", *, created: bool = False) -> None:
    event: JobChanged = {"type": kind, "job": job_data(job), "created": created}  # type: ignore[typeddict-item]
    live.publish("crons", event, gateway_id=job.gateway_id)


def publish_run(job: Job, run: Run, kind: str, *, created: bool) -> None:
    event: RunChanged = {
        "type": kind,  # type: ignore[typeddict-item]
        "job": job_data(job),
        "run": run_data(run),
        "created": created,
    }
    live.publish("crons", event, gateway_id=job.gateway_id)
