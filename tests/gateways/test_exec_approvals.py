"""Exec approvals mirrored from a gateway: how an answer is recorded, whichever of the
gateway's event and the answer's reply arrives first (the real-gateway test meets both orders;
this pins each one)."""

from __future__ import annotations

import pytest

from gateways import approvals, frames
from gateways.models import ExecApproval
from missioncontrol.audit import Actor
from tests.gateways.factories import make_gateway

pytestmark = pytest.mark.django_db


def _asked(gateway_id: int) -> ExecApproval:
    return approvals.requested(
        gateway_id,
        frames.ExecApproval.read(
            {"id": "ap-1", "request": {"command": "rm -rf build", "agentId": "main"}}
        ),
    )


def _outcome(applied: bool = True, by: str = "Mission Control") -> frames.ApprovalOutcome:
    return frames.ApprovalOutcome.read(
        {"id": "ap-1", "status": "allowed", "decision": "allow-once", "resolvedBy": by},
        applied=applied,
    )


@pytest.mark.parametrize("event_first", [True, False])
def test_the_person_who_answered_here_is_named_whichever_arrives_first(event_first: bool) -> None:
    gateway = make_gateway()
    row = _asked(gateway.pk)
    bob = Actor("user", "bob", None)
    if event_first:
        approvals.resolved(gateway.pk, _outcome())  # the gateway's broadcast
    approvals.resolved(gateway.pk, _outcome(), by=bob)  # approval.resolve's reply
    if not event_first:
        approvals.resolved(gateway.pk, _outcome())
    row.refresh_from_db()
    assert (row.status, row.decision, row.resolved_by) == ("allowed", "allow-once", "bob")


def test_an_answer_someone_else_gave_first_names_them() -> None:
    gateway = make_gateway()
    row = _asked(gateway.pk)
    approvals.resolved(gateway.pk, _outcome(by="alice (control ui)"))
    approvals.resolved(
        gateway.pk, _outcome(applied=False, by="alice (control ui)"), by=Actor("user", "bob", None)
    )
    row.refresh_from_db()
    assert row.resolved_by == "alice (control ui)"
