"""Gateways on the overview (an edge): a gateway that is not connected, with its remedy."""

from __future__ import annotations

from functools import partial

from django.urls import reverse

from gateways.models import Gateway
from missioncontrol import overview
from missioncontrol.overview import Attention, Viewer


def not_connected(viewer: Viewer) -> list[Attention]:
    found = []
    for gateway in Gateway.objects.filter(enabled=True).exclude(state=Gateway.State.CONNECTED):
        if not viewer.sees(gateway.pk):
            continue
        since = gateway.state_since
        found.append(
            Attention(
                key=overview.occurrence(f"gateway.{gateway.state}", gateway.pk, since),
                kind="Gateway",
                severity=overview.CRITICAL,
                title=f"{gateway.name} is {gateway.get_state_display().lower()}",
                detail=gateway.remedy or gateway.last_error,
                url=reverse("gateways:detail", args=[gateway.pk]),
                since=since,
                gateway=gateway,
                action="Open gateway",
                more_url=reverse("gateways:list"),
                more_label="gateways not connected",
            )
        )
    return found


def exec_approvals(viewer: Viewer) -> list[Attention]:
    """Commands the gateways' agents ask to run, for those who may answer (operate on the
    gateway): the Approvals page answers them."""
    from gateways import access
    from gateways.models import ExecApproval

    found = []
    rows = (
        ExecApproval.objects.filter(status=ExecApproval.Status.PENDING)
        .select_related("gateway")
        .order_by("requested_at")[: viewer.scan]
    )
    for row in rows:
        if not viewer.sees(row.gateway_id):
            continue
        if not viewer.may(partial(access.can_operate, gateway_id=row.gateway_id)):
            continue
        found.append(
            Attention(
                key=overview.occurrence("exec_approval", row.pk, row.requested_at),
                kind="Approval",
                severity=overview.WAITING,
                title=f"{row.agent_external_id or 'An agent'} asks to run: {row.command[:120]}",
                detail=f"in {row.cwd}" if row.cwd else "",
                url=reverse("pipelines:approvals") + f"#exec-approval-{row.pk}",
                since=row.requested_at,
                gateway=row.gateway,
                action="Answer",
                more_url=reverse("pipelines:approvals"),
                more_label="commands waiting for approval",
                role="operator",
                operate=True,
            )
        )
        if len(found) >= viewer.limit:
            break
    return found


def register() -> None:
    from gateways.context_processors import chosen_gateway_id

    overview.register_attention(
        "gateways.down", not_connected, topics=("gateways",), notify="gateway"
    )
    overview.register_attention(
        "gateways.exec_approvals", exec_approvals, topics=("gateways",), notify="approval"
    )
    overview.register_gateway_choice(chosen_gateway_id)
