"""The pipelines' part of the overview (an edge): approvals waiting for the viewer as "Needs
attention" items, and pipelines in the command palette."""

from __future__ import annotations

from django.urls import reverse

from missioncontrol import overview
from missioncontrol.overview import Attention, Viewer
from pipelines import approvals
from pipelines.models import AgentAsk, Approval, Pipeline

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


def agent_asks(viewer: Viewer) -> list[Attention]:
    """Agents waiting for an answer, for the operators who may give it (the agent's gateway)."""
    from gateways import access

    rows = (
        AgentAsk.objects.filter(outcome=AgentAsk.Outcome.PENDING)
        .filter(access.narrowing(viewer.user, "agent__gateway"))
        .select_related("agent__gateway")
        .order_by("requested_at", "pk")[:SHOWN]
    )
    found = []
    for ask in rows:
        gateway = ask.agent.gateway
        if not viewer.sees(gateway.pk if gateway else None):
            continue
        if not approvals.may_answer_ask(viewer.user, ask):
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
            )
        )
    return found


def find_pipelines(viewer: Viewer, text: str) -> list[overview.Found]:
    rows = Pipeline.objects.filter(archived_at=None, name__icontains=text.strip())
    return [
        overview.Found("Pipeline", p.name, reverse("pipelines:detail", args=[p.pk]), p.description)
        for p in rows.order_by("name")[:6]
    ]


def register() -> None:
    overview.register_attention("pipelines.approvals", waiting_approvals, topics=("pipelines",))
    overview.register_attention(
        "pipelines.agent_asks", agent_asks, topics=("pipelines",), min_role="operator"
    )
    overview.register_search("pipelines", find_pipelines)
