"""The pipelines' part of the overview (an edge): approvals waiting for the viewer as "Needs
attention" items, and pipelines in the command palette."""

from __future__ import annotations

from django.urls import reverse

from missioncontrol import overview
from missioncontrol.overview import Attention, Viewer
from pipelines import approvals
from pipelines.models import Approval, Pipeline

SHOWN = 20


def waiting_approvals(viewer: Viewer) -> list[Attention]:
    """Approvals the viewer may answer (steps are no gateway's data: every gateway view shows
    them when it shows all)."""
    if not viewer.sees(None):
        return []
    found = []
    rows = (
        Approval.objects.pending()
        .select_related("step__run__pipeline")
        .order_by("requested_at", "pk")[:200]
    )
    for approval in rows:
        if not approvals.may_answer(viewer.user, approval):
            continue
        run = approval.step.run
        found.append(
            Attention(
                key=overview.occurrence("approval", approval.pk, approval.requested_at),
                kind="Approval",
                severity=overview.WAITING,
                title=f"{run.pipeline.name} #{run.number} · {approval.step.step_id}",
                detail=approval.instructions or "A pipeline step waits for your approval.",
                url=reverse("pipelines:run", args=[run.pk])
                + f"#step-{run.pk}-{approval.step.step_id}",
                since=approval.requested_at,
                action="Review",
                more_url=reverse("pipelines:approvals"),
                more_label="approvals",
            )
        )
        if len(found) >= SHOWN:
            break
    return found


def find_pipelines(viewer: Viewer, text: str) -> list[overview.Found]:
    rows = Pipeline.objects.filter(archived_at=None, name__icontains=text.strip())
    return [
        overview.Found("Pipeline", p.name, reverse("pipelines:detail", args=[p.pk]), p.description)
        for p in rows.order_by("name")[:6]
    ]


def register() -> None:
    overview.register_attention("pipelines.approvals", waiting_approvals, topics=("pipelines",))
    overview.register_search("pipelines", find_pipelines)
