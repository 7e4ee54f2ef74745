"""OpenClaw exec approvals, mirrored: a command an agent asks to run waits for a person. The
connector (scope `operator.approvals`, caps `exec-approvals`: Mission Control is one of the
gateway's approval clients) stores each request and its answer; after a reconnect it lists
the pending ones (`exec.approval.list`) and asks the gateway how the others ended
(`approval.get`). Operators with the grant for that gateway answer here (`approval.resolve`,
first answer wins: when someone answered first, here or on the gateway, the recorded answer is
what this row says). Every change is a domain event on the gateways topic."""

from __future__ import annotations

from typing import Literal, TypedDict

from django.db import transaction
from django.utils import timezone

from gateways import frames
from gateways.models import ExecApproval, Gateway
from missioncontrol import audit, live
from missioncontrol.audit import Actor

ExecApprovalEventType = Literal["exec_approval.requested", "exec_approval.resolved"]


class ExecApprovalData(TypedDict):
    id: int
    gateway_id: int
    gateway: str
    gateway_colour: str
    external_id: str
    command: str
    cwd: str
    agent: str  # the gateway's agent id
    session_key: str
    host: str
    warning: str
    allowed: list[str]
    requested_at: str
    expires_at: str | None
    status: str
    decision: str
    reason: str
    resolved_by: str
    resolved_at: str | None


class ExecApprovalChanged(TypedDict):
    """A gateway's agent asked to run a command, or the request was answered (here, on the
    gateway, or by its expiry)."""

    type: ExecApprovalEventType
    approval: ExecApprovalData


def data(row: ExecApproval, gateway: Gateway) -> ExecApprovalData:
    return {
        "id": row.pk,
        "gateway_id": row.gateway_id,
        "gateway": gateway.name,
        "gateway_colour": gateway.colour,
        "external_id": row.external_id,
        "command": row.command,
        "cwd": row.cwd,
        "agent": row.agent_external_id,
        "session_key": row.session_key,
        "host": row.host,
        "warning": row.warning,
        "allowed": list(row.allowed),
        "requested_at": row.requested_at.isoformat(),
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        "status": row.status,
        "decision": row.decision,
        "reason": row.reason,
        "resolved_by": row.resolved_by,
        "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None,
    }


def _publish(kind: ExecApprovalEventType, row: ExecApproval) -> None:
    gateway = Gateway.objects.only("name", "colour").get(pk=row.gateway_id)
    live.publish(
        "gateways", {"type": kind, "approval": data(row, gateway)}, gateway_id=row.gateway_id
    )


def requested(gateway_id: int, asked: frames.ExecApproval) -> ExecApproval:
    """A request the gateway announced (or listed): stored once, published when new."""
    with transaction.atomic():
        row, created = ExecApproval.objects.get_or_create(
            gateway_id=gateway_id,
            external_id=asked.approval_id,
            defaults={
                "command": asked.command,
                "cwd": asked.cwd,
                "agent_external_id": asked.agent_external_id,
                "session_key": asked.session_key,
                "host": asked.host,
                "warning": asked.warning,
                "allowed": list(asked.allowed),
                "requested_at": asked.created_at or timezone.now(),
                "expires_at": asked.expires_at,
            },
        )
        if created:
            _publish("exec_approval.requested", row)
    return row


def resolved(
    gateway_id: int, outcome: frames.ApprovalOutcome, by: Actor | None = None
) -> ExecApproval | None:
    """How a request ended, as its gateway recorded it (`by`: the person who answered here;
    audited, and named as who answered when theirs is the recorded answer). None for a request
    this installation never saw."""
    with transaction.atomic():
        row = (
            ExecApproval.objects.select_for_update(no_key=True)
            .filter(gateway_id=gateway_id, external_id=outcome.approval_id)
            .first()
        )
        if row is None or outcome.status == ExecApproval.Status.PENDING:
            return row
        status = (
            outcome.status
            if outcome.status in ExecApproval.Status.values
            else (
                ExecApproval.Status.DENIED
                if outcome.decision == "deny"
                else ExecApproval.Status.ALLOWED
            )
        )
        changed = (row.status, row.decision) != (status, outcome.decision)
        row.status, row.decision, row.reason = status, outcome.decision, outcome.reason
        # The gateway's event and the answer's reply race: the event names this installation's
        # connection, the reply the person. The person is named whichever comes first.
        if by is not None and outcome.applied:
            changed = changed or row.resolved_by != by.label[:150]
            row.resolved_by = by.label[:150]
        elif changed or not row.resolved_by:
            row.resolved_by = outcome.resolved_by[:150]
        row.resolved_at = outcome.resolved_at or row.resolved_at or timezone.now()
        row.save()
        if by is not None:
            audit.record(
                by,
                "exec_approval.answered",
                row,
                after={"decision": outcome.decision, "recorded": outcome.applied},
                object_repr=row.command[:200],
                gateway_id=gateway_id,
            )
        if changed:
            _publish("exec_approval.resolved", row)
    return row


def still_pending_here(gateway_id: int, listed: list[frames.ExecApproval]) -> list[str]:
    """After a reconnect: store what the gateway lists as pending; the ids pending here that it
    no longer lists (answered or expired while we were away: ask it how)."""
    for asked in listed:
        requested(gateway_id, asked)
    pending = set(
        ExecApproval.objects.filter(
            gateway_id=gateway_id, status=ExecApproval.Status.PENDING
        ).values_list("external_id", flat=True)
    )
    return sorted(pending - {a.approval_id for a in listed})
