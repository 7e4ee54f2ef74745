"""Scheduled pipelines and timeouts (#28), with a frozen clock: a pipeline fires once per slot of
its cron expression in its time zone — not twice when the loop ticks again, when another
process (or a restart) tries the same slot, or when an earlier run is still going (overlap:
skip); a slot missed while the server was down is not fired late. A step past its timeout is
timed out (and retried while it has retries); an approval nobody answered gets its outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agents.models import Agent
from missioncontrol.audit import Actor
from pipelines import actions, approvals, schedule
from pipelines.models import Approval, Pipeline, PipelineRun, StepRun
from runs.models import Run

pytestmark = pytest.mark.django_db(transaction=True)

ADMIN = Actor.system("test")
NOW = datetime(2026, 12, 7, 7, 58, tzinfo=UTC)  # 08:58 in Paris

SCHEDULED = """
name: Morning report
inputs:
  - {name: scope, type: text, required: true, default: everything}
schedule: {cron: "0 9 * * *", timezone: Europe/Paris}
steps:
  - id: report
    agent: ann
    brief: "Report on {{ inputs.scope }}"
"""


@pytest.fixture
def ann(transactional_db) -> Agent:
    return Agent.objects.create(name="ann")


def test_a_scheduled_pipeline_fires_once_per_slot_in_its_time_zone(ann, clock):
    pipeline_id = actions.save(ADMIN, SCHEDULED).pipeline_id
    slot = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # 09:00 Paris
    assert Pipeline.objects.get().next_slot_at == slot
    assert schedule.fire_due() == 0  # not yet
    clock.shift(timedelta(minutes=2, seconds=1))
    assert schedule.fire_due() == 1
    assert schedule.fire_due() == 0  # the loop ticks again: nothing twice
    run = PipelineRun.objects.get()
    assert (run.trigger, run.slot, run.inputs) == ("schedule", slot, {"scope": "everything"})
    # Another process (or a restart) that still thinks the slot is due gets the same run.
    again, created = actions.start(
        Actor.system("schedule"),
        actions.Start(pipeline_id=pipeline_id, trigger="schedule", slot=slot),
    )
    assert (again.pk, created) == (run.pk, False)
    assert Pipeline.objects.get().next_slot_at == slot + timedelta(days=1)
    # The next day's slot comes while today's run is still going: skipped (overlap: skip).
    clock.shift(timedelta(days=1))
    assert schedule.fire_due() == 0
    assert PipelineRun.objects.count() == 1
    assert Pipeline.objects.get().next_slot_at == slot + timedelta(days=2)


def test_a_slot_missed_while_the_server_was_down_is_not_fired_late(ann, clock):
    actions.save(ADMIN, SCHEDULED)
    clock.shift(timedelta(hours=5))  # the server was down across 09:00
    assert schedule.fire_due() == 0
    assert PipelineRun.objects.count() == 0
    assert Pipeline.objects.get().next_slot_at == datetime(2026, 12, 8, 8, 0, tzinfo=UTC)


def test_a_step_past_its_timeout_is_timed_out_then_retried_then_failed(ann, clock):
    text = "name: Slow\nsteps:\n  - id: slow\n    agent: ann\n    timeout_s: 60\n    retries: 1\n"
    run, _ = actions.start(ADMIN, actions.Start(actions.save(ADMIN, text).pipeline_id))
    clock.shift(timedelta(seconds=59))
    assert actions.time_out_steps() == 0
    clock.shift(timedelta(seconds=2))
    assert actions.time_out_steps() == 1
    step = StepRun.objects.get()
    attempts = list(
        Run.objects.filter(task=step.task).order_by("attempt").values_list("state", flat=True)
    )
    assert (step.state, step.attempts, attempts) == ("running", 2, ["timed_out", "queued"])
    clock.shift(timedelta(seconds=61))
    assert actions.time_out_steps() == 1
    step.refresh_from_db()
    run.refresh_from_db()
    assert (step.state, run.state) == ("failed", "failed")
    assert "time ran out (60 s)" in step.error


def test_an_unanswered_approval_gets_its_timeout_outcome(ann, clock):
    text = (
        "name: Gate\nsteps:\n  - id: ok\n    approval: {timeout_s: 600, on_timeout: approve}\n"
        "  - id: go\n    agent: ann\n    needs: [ok]\n"
    )
    run, _ = actions.start(ADMIN, actions.Start(actions.save(ADMIN, text).pipeline_id))
    clock.shift(timedelta(seconds=599))
    assert approvals.time_out() == 0
    clock.shift(timedelta(seconds=2))
    assert approvals.time_out() == 1
    approval = Approval.objects.get()
    assert (approval.outcome, approval.answered_label) == ("approved", "approval timeout")
    assert {s.step_id: s.state for s in StepRun.objects.filter(run=run)} == {
        "ok": "succeeded",
        "go": "running",
    }


def test_request_changes_hands_the_work_back_with_the_comment_then_asks_again(ann, bob_operator):
    from runs import actions as runs

    text = (
        "name: Review\nsteps:\n  - id: write\n    agent: ann\n"
        "  - id: check\n    needs: [write]\n    approval: {by: operator}\n"
    )
    run, _ = actions.start(ADMIN, actions.Start(actions.save(ADMIN, text).pipeline_id))

    def work(reply: str) -> None:
        agent_run = Run.objects.get(state="queued")
        runs.claim(ann.pk, agent_run.pk)
        runs.finish(ann.pk, agent_run.pk, "succeeded", reply=reply)

    work("First draft")
    first = Approval.objects.get()
    approvals.answer(
        Actor.user(bob_operator), bob_operator, first.pk, "changes_requested", "Shorter"
    )
    again = Run.objects.get(state="queued")
    assert again.attempt == 2
    assert "Instructions: Shorter" in again.prompt
    work("Short draft")
    second = Approval.objects.get(outcome="pending")
    assert second.pk != first.pk
    approvals.answer(Actor.user(bob_operator), bob_operator, second.pk, "approved")
    run.refresh_from_db()
    assert run.state == "succeeded"
    assert StepRun.objects.get(step_id="write").output == "Short draft"
