"""Scheduled pipelines: a pipeline whose definition has a `schedule` starts a run at each slot
of its cron expression (in its time zone), at most once per slot — even across restarts and
with several processes (the slot is part of the run: PipelineRun.slot, unique per pipeline) —
following its overlap policy (skip, the default: a slot that comes while a run is going starts
nothing; queue; allow). A slot missed while the server was down is not fired late: the next
slot after now is."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from missioncontrol.audit import Actor
from missioncontrol.errors import ActionError
from pipelines import actions
from pipelines.models import Pipeline, PipelineRun

logger = logging.getLogger(__name__)

# A slot this late is still fired (the loop ticks every second; a busy database may delay it).
GRACE_S = 300


def fire_due(now: datetime | None = None) -> int:
    """Start the runs whose slot came; move each pipeline to its next slot. One query when none
    is due (an index on next_slot_at). The number of runs started."""
    now = now or timezone.now()
    started = 0
    for pipeline_id in list(
        Pipeline.objects.filter(next_slot_at__lte=now, archived_at=None).values_list(
            "pk", flat=True
        )[:200]
    ):
        started += _fire(pipeline_id, now)
    return started


def _fire(pipeline_id: int, now: datetime) -> int:
    with transaction.atomic():
        pipeline = (
            Pipeline.objects.select_for_update(no_key=True)
            .filter(pk=pipeline_id, next_slot_at__lte=now)
            .first()
        )
        if pipeline is None:
            return 0  # another process took this slot
        slot = pipeline.next_slot_at
        assert slot is not None
        definition = pipeline.current.definition
        pipeline.next_slot_at = actions.next_slot(definition, now)
        pipeline.save(update_fields=["next_slot_at"])
    if (now - slot).total_seconds() > GRACE_S:
        logger.info(
            "pipeline %s: slot %s missed (the server was down); next %s",
            pipeline_id,
            slot,
            pipeline.next_slot_at,
        )
        return 0
    try:
        _run, created = actions.start(
            Actor.system("schedule"),
            actions.Start(pipeline_id=pipeline_id, trigger=PipelineRun.Trigger.SCHEDULE, slot=slot),
        )
    except actions.Overlap:
        return 0  # skip: a run is still going
    except ActionError as refused:
        logger.warning("pipeline %s: the scheduled run did not start: %s", pipeline_id, refused)
        return 0
    return int(created)
