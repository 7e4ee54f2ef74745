"""Scheduled jobs on the overview (an edge): late and failing jobs."""

from __future__ import annotations

from django.urls import reverse

from crons.context_processors import _attention
from missioncontrol import overview
from missioncontrol.overview import Attention, Viewer


def troubled(viewer: Viewer) -> list[Attention]:
    found = []
    for job in _attention.get():
        if not viewer.sees(job.gateway.pk if job.gateway else None):
            continue
        since = job.health_since
        found.append(
            Attention(
                key=overview.occurrence(f"cron.{job.health}", job.pk, since),
                kind=f"Cron {job.health}",
                severity=overview.STUCK,
                title=job.name,
                detail=job.health_reason,
                url=reverse("crons:detail", args=[job.pk]),
                since=since,
                gateway=job.gateway,
                action="Open job",
                more_url=reverse("crons:list") + "?health=attention",
                more_label="late or failing jobs",
            )
        )
    return found


def find_jobs(viewer: Viewer, text: str) -> list[overview.Found]:
    from crons.models import Job

    return [
        overview.Found("Job", job.name, reverse("crons:detail", args=[job.pk]), job.health)
        for job in Job.objects.listed().filter(name__icontains=text).order_by("name")[:20]
        if viewer.sees(job.gateway_id)
    ][:6]


def register() -> None:
    overview.register_search("crons", find_jobs)
    overview.register_attention(
        "crons.troubled", troubled, topics=("crons", "alerts"), notify="cron"
    )
