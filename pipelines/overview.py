"""The pipelines' part of the overview (an edge): approvals and agents' questions waiting for
the viewer, and failed pipeline runs, as "Needs attention" items; pipelines in the command
palette."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from django.db.models import Exists, OuterRef
from django.urls import reverse
from django.utils import timezone

from missioncontrol import overview
from missioncontrol.overview import Attention, Viewer
from pipelines import approvals
from pipelines.models import AgentAsk, Approval, Pipeline, PipelineRun

# A failed pipeline run stays on the overview this long (or until acknowledged, or run again).
FAILED_WITHIN = timedelta(hours=24)


def waiting_approvals(viewer: Viewer) -> list[Attention]:
    """Approvals the viewer may answer (steps are no gateway's data: every gateway view shows
    them when it shows all)."""
    if not viewer.sees(None):
        return []
    found = []
    rows = (
        Approval.objects.pending()
        .select_related("step__run__pipeline")
        .order_by("requested_at", "pk")[: viewer.scan]
    )
    for approval in rows:
        if not viewer.may(partial(approvals.may_answer, approval=approval)):
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
                role="viewer"
                if approval.by_users
                else "admin"
                if approval.by_role == "admin"
                else "operator",
                people=tuple(approval.by_users or ()),
            )
        )
        if len(found) >= viewer.limit:
            break
    return found


def agent_asks(viewer: Viewer) -> list[Attention]:
    """Agents waiting for an answer, for the operators who may give it (the agent's gateway)."""
    from gateways import access

    rows = (
        AgentAsk.objects.filter(outcome=AgentAsk.Outcome.PENDING)
        .filter(access.narrowing(viewer.user, "agent__gateway"))
        .select_related("agent__gateway")
        .order_by("requested_at", "pk")[: viewer.limit]
    )
    found = []
    for ask in rows:
        gateway = ask.agent.gateway
        if not viewer.sees(gateway.pk if gateway else None):
            continue
        if not viewer.may(partial(approvals.may_answer_ask, ask=ask)):
            continue
        found.append(
            Attention(
                key=overview.occurrence("agent_ask", ask.pk, ask.requested_at),
                kind="Question",
                severity=overview.WAITING,
                title=f"{ask.agent_name} asks: {ask.question[:120]}",
                detail=f"About task #{ask.task_id}."
                if ask.task_id
                else "It waits for your answer.",
                url=reverse("pipelines:approvals") + f"#agent-ask-{ask.pk}",
                since=ask.requested_at,
                gateway=gateway,
                action="Answer",
                more_url=reverse("pipelines:approvals"),
                more_label="questions",
                role="operator",
                operate=True,
            )
        )
    return found


def failed_runs(viewer: Viewer) -> list[Attention]:
    """Pipeline runs that failed in the last day, unless a later run of the same pipeline
    succeeded (runs are no gateway's: shown when the switch shows all)."""
    if not viewer.sees(None):
        return []
    since = timezone.now() - FAILED_WITHIN
    later = PipelineRun.objects.filter(
        pipeline=OuterRef("pipeline"),
        state=PipelineRun.State.SUCCEEDED,
        created_at__gt=OuterRef("created_at"),
    )
    rows = (
        PipelineRun.objects.filter(state=PipelineRun.State.FAILED, ended_at__gte=since)
        .exclude(Exists(later))
        .select_related("pipeline")
        .order_by("-ended_at", "-pk")[: viewer.limit]
    )
    return [
        Attention(
            key=overview.occurrence("pipeline.failed", run.pk, run.ended_at),
            kind="Pipeline failed",
            severity=overview.DEGRADED,
            title=f"{run.pipeline.name} #{run.number} failed",
            detail=run.error,
            url=reverse("pipelines:run", args=[run.pk]),
            since=run.ended_at,
            action="Open run",
            more_url=reverse("pipelines:list"),
            more_label="failed pipeline runs",
        )
        for run in rows
    ]


def find_pipelines(viewer: Viewer, text: str) -> list[overview.Found]:
    rows = Pipeline.objects.filter(archived_at=None, name__icontains=text.strip())
    return [
        overview.Found("Pipeline", p.name, reverse("pipelines:detail", args=[p.pk]), p.description)
        for p in rows.order_by("name")[:6]
    ]


def register() -> None:
    overview.register_attention(
        "pipelines.approvals", waiting_approvals, topics=("pipelines",), notify="approval"
    )
    overview.register_attention(
        "pipelines.agent_asks",
        agent_asks,
        topics=("pipelines",),
        notify="approval",
        min_role="operator",
    )
    overview.register_attention(
        "pipelines.failed", failed_runs, topics=("pipelines",), notify="pipeline"
    )
    overview.register_search("pipelines", find_pipelines)
