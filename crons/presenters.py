"""The Crons pages' presenter: job and run events as DOM ops, from the event's data alone. The
pages render through the same view objects (`job_view`, `run_view`), so a pushed row is the row
a reload shows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from django.template.loader import render_to_string

from missioncontrol import live


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def job_view(data: Mapping[str, Any]) -> SimpleNamespace:
    """What the templates read of a job (JobData), with times as datetimes."""
    gateway = data.get("gateway")
    agent = data.get("agent")
    return SimpleNamespace(
        **{
            **data,
            "pk": data["id"],
            "gateway": SimpleNamespace(pk=gateway["id"], **gateway) if gateway else None,
            "agent": SimpleNamespace(pk=agent["id"], **agent) if agent else None,
            "is_direct": data["source"] == "direct",
            **{
                name: _when(data.get(name))
                for name in ("health_since", "next_run_at", "last_run_at", "running_since")
            },
        }
    )


def run_view(data: Mapping[str, Any]) -> SimpleNamespace:
    return SimpleNamespace(
        **{
            **data,
            "pk": data["id"],
            "started_at": _when(data.get("started_at")),
            "finished_at": _when(data.get("finished_at")),
        }
    )


def _row(job: SimpleNamespace, created: bool) -> live.Op:
    op: live.Op = {
        "op": "upsert",
        "id": f"cron-{job.pk}",
        "html": render_to_string("crons/list.html#job_row", {"job": job}),
    }
    if created:
        op["parent"] = "cron-rows"  # new: at the end; known rows are replaced in place
    return op


def _head(job: SimpleNamespace) -> live.Op:
    return {
        "op": "upsert",
        "id": f"cron-head-{job.pk}",
        "html": render_to_string("crons/detail.html#job_head", {"job": job}),
    }


@live.presents("cron.job_changed")
def job_changed(event: dict[str, Any]) -> live.BrowserPayload:
    job = job_view(event["job"])
    return {"ops": [_row(job, event.get("created", False)), _head(job)]}


@live.presents("cron.job_removed")
def job_removed(event: dict[str, Any]) -> live.BrowserPayload:
    return {"ops": [{"op": "remove", "id": f"cron-{event['job']['id']}"}]}


@live.presents("cron.run_started", "cron.run_finished")
def run_changed(event: dict[str, Any]) -> live.BrowserPayload:
    job = job_view(event["job"])
    run = run_view(event["run"])
    row: live.Op = {
        "op": "upsert",
        "id": f"cron-run-{run.pk}",
        "html": render_to_string("crons/detail.html#run_row", {"run": run, "job": job}),
    }
    if event.get("created"):
        # A new run heads the history; a run that finished is replaced where it is.
        row.update({"parent": f"cron-runs-{job.pk}", "first": True, "limit": 100})
    return {"ops": [_row(job, False), _head(job), row]}
