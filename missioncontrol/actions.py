"""The core app's own writes (the overview's acknowledgements, the deployment findings): each
one transaction with its audit row, like every app's actions."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from missioncontrol import audit
from missioncontrol.models import Acknowledgement, DeploymentFinding


def acknowledge(
    actor: audit.Actor, user_id: int, key: str, *, until: datetime | None, title: str
) -> None:
    """Take one "Needs attention" item off a person's overview until `until` (None: until it
    changes: a new occurrence has a new key)."""
    with transaction.atomic():
        Acknowledgement.objects.update_or_create(
            user_id=user_id, key=key[:200], defaults={"until": until}
        )
        audit.record(
            actor,
            "overview.acknowledged",
            object_type="attention",
            object_id=key[:64],
            object_repr=title[:200],
            after={"until": until.isoformat() if until else "it changes"},
        )


def clear_deployment_findings(actor: audit.Actor) -> int:
    """Forget every deployment finding (what recurs is found again); how many there were."""
    with transaction.atomic():
        cleared = DeploymentFinding.objects.all().delete()[0]
        audit.record(
            actor,
            "deployment.findings_cleared",
            object_type="deployment",
            object_repr="deployment findings",
            after={"cleared": cleared},
        )
    return cleared
