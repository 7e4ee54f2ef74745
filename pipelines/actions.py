"""Pipelines: save a definition (a new version each time), start a run, and advance it by itself
as its steps end — each step a task dispatched to its agent (runs), in the transaction of what
ended the step before it.

What moves a run on: an agent's run ending (runs' end hook), a step's task entering Review or
Done (tasks' column hook, for steps done when the task gets there), a step's time running out
(the pipelines' loop), an approval's answer. Every function here is one transaction.

Locks, in one order everywhere: an agent's run, then tasks, then the pipeline run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Sum
from django.utils import timezone

from agents.models import Agent
from missioncontrol import audit, live
from missioncontrol.audit import Actor
from missioncontrol.errors import (
    ActionError,
    Conflict,
    Invalid,
    NotFound,
    RunActive,
    RunInProgress,
)
from pipelines import definition as defs
from pipelines import events
from pipelines.models import Pipeline, PipelineRun, PipelineVersion, StepRun
from runs import actions as runs
from runs.models import Run
from tasks import actions as tasks
from tasks.models import Task

LABEL = "pipeline"  # every step's task carries it (the board's filter finds them)


def _system(why: str) -> Actor:
    return Actor.system(f"pipeline ({why})"[:150])


# --- Definitions --------------------------------------------------------------------------------


def check(text: str) -> defs.Definition:
    """`text` parsed and checked against the agents that exist (Invalid: each problem with its
    line, under `text`)."""
    agents = set(Agent.objects.values_list("name", flat=True))
    try:
        return defs.parse(text, agents=agents)
    except defs.DefinitionError as bad:
        raise Invalid({"text": bad.lines()}) from None


def check_data(data: Mapping[str, object]) -> defs.Definition:
    """An API body in the export's shape, checked as the text is; its problems named by where
    they are in the data (`steps[1].agent`)."""
    agents = set(Agent.objects.values_list("name", flat=True))
    try:
        return defs.from_data(dict(data), agents=agents)
    except defs.DefinitionError as bad:
        raise Invalid(bad.fields()) from None


def definition_text(definition: defs.Definition) -> str:
    """What the editor shows for a definition that came as data: its YAML."""
    return defs.dump(definition)


def save(actor: Actor, text: str, pipeline_id: int | None = None) -> PipelineVersion:
    """A new pipeline (pipeline_id None) or a new version of one, from its definition's text.
    Runs already going keep the version they started with."""
    definition = check(text)
    try:
        with transaction.atomic():
            if pipeline_id is None:
                pipeline = Pipeline.objects.create(name=definition.name)
                number = 1
            else:
                pipeline = _lock_pipeline(pipeline_id)
                pipeline.name = definition.name
                number = (pipeline.versions.aggregate(n=Max("number"))["n"] or 0) + 1
            pipeline.description = definition.description
            pipeline.next_slot_at = next_slot(definition, timezone.now())
            pipeline.save()
            version = PipelineVersion.objects.create(
                pipeline=pipeline,
                number=number,
                text=text,
                data=definition.as_data(),
                created_by_id=actor.user_id,
                created_label=actor.label[:150],
            )
            audit.record(
                actor,
                "pipeline.saved",
                pipeline,
                after={"version": number, "steps": len(definition.steps)},
            )
            live.publish(
                events.TOPIC,
                {
                    "type": "pipeline.saved",
                    "actor": actor.as_dict(),
                    "pipeline": events.pipeline_data(
                        pipeline, number, len(definition.steps), _schedule_text(definition)
                    ),
                },
            )
    except IntegrityError:
        raise Invalid(
            {"text": [f"line 1: A pipeline is already called “{definition.name}”."]}
        ) from None
    pipeline.__dict__.pop("current", None)
    return version


def _schedule_text(definition: defs.Definition) -> str:
    if definition.schedule is None:
        return ""
    return f"{definition.schedule.cron} ({definition.schedule.timezone})"


def next_slot(definition: defs.Definition, after: datetime) -> datetime | None:
    if definition.schedule is None:
        return None
    from crons.schedules import BadSchedule, Schedule

    try:
        return Schedule.cron(definition.schedule.cron, definition.schedule.timezone).next_after(
            after
        )
    except BadSchedule:
        return None


def archive(actor: Actor, pipeline_id: int) -> Pipeline:
    with transaction.atomic():
        pipeline = _lock_pipeline(pipeline_id)
        if pipeline.archived_at is None:
            pipeline.archived_at = timezone.now()
            pipeline.next_slot_at = None
            pipeline.save(update_fields=["archived_at", "next_slot_at"])
            audit.record(actor, "pipeline.archived", pipeline)
    return pipeline


def _lock_pipeline(pipeline_id: int) -> Pipeline:
    pipeline = Pipeline.objects.select_for_update(no_key=True).filter(pk=pipeline_id).first()
    if pipeline is None:
        raise NotFound("That pipeline does not exist.")
    return pipeline


# --- Starting a run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Run `pipeline_id`'s current version with `inputs`. `idempotency_key`: the same key again
    returns the run the first request made; `slot`: a scheduled run's slot (one run each)."""

    pipeline_id: int
    inputs: dict[str, Any] = field(default_factory=dict)
    trigger: str = PipelineRun.Trigger.MANUAL
    idempotency_key: str = ""
    slot: datetime | None = None


Overlap = RunInProgress  # the pipeline's overlap policy is skip and a run of it is going


def start(actor: Actor, order: Start) -> tuple[PipelineRun, bool]:
    """The run `order` made (running, or queued behind a run still going when the pipeline's
    overlap policy says queue) and whether it is new."""
    key = (order.idempotency_key or "").strip()
    if len(key) > 100:
        raise Invalid({"idempotency_key": ["Keep the Idempotency-Key under 100 characters."]})
    if order.trigger not in PipelineRun.Trigger.values:
        raise Invalid({"trigger": ["Unknown trigger."]})
    try:
        with transaction.atomic():
            return _start(actor, order, key)
    except IntegrityError:
        # The same key (or slot) from two requests at once: the other one made the run.
        earlier = _earlier(order.pipeline_id, key, order.slot)
        if earlier is None:
            raise
        return earlier, False


def _earlier(pipeline_id: int, key: str, slot: datetime | None) -> PipelineRun | None:
    if key:
        return PipelineRun.objects.filter(pipeline_id=pipeline_id, idempotency_key=key).first()
    if slot is not None:
        return PipelineRun.objects.filter(pipeline_id=pipeline_id, slot=slot).first()
    return None


def _start(actor: Actor, order: Start, key: str) -> tuple[PipelineRun, bool]:
    pipeline = _lock_pipeline(order.pipeline_id)
    earlier = _earlier(pipeline.pk, key, order.slot)
    if earlier is not None:
        return earlier, False
    if pipeline.archived_at is not None:
        raise NotFound("That pipeline is archived.")
    version = pipeline.current
    definition = version.definition
    try:
        inputs = defs.resolve_inputs(definition, order.inputs)
    except defs.InputsError as bad:
        raise Invalid({f"inputs.{k}": [v] for k, v in bad.problems.items()}) from None
    going = PipelineRun.objects.filter(pipeline=pipeline).active().order_by("number").first()
    state = PipelineRun.State.RUNNING
    if going is not None and definition.overlap == "skip":
        raise Overlap(
            f"Run {going.number} of “{pipeline.name}” is still going, and its overlap policy "
            "is skip.",
            run=going.pk,
        )
    if going is not None and definition.overlap == "queue":
        state = PipelineRun.State.QUEUED
    number = (
        PipelineRun.objects.filter(pipeline=pipeline).aggregate(n=Max("number"))["n"] or 0
    ) + 1
    now = timezone.now()
    run = PipelineRun.objects.create(
        pipeline=pipeline,
        version=version,
        number=number,
        state=state,
        trigger=order.trigger,
        inputs=inputs,
        requested_by_id=actor.user_id,
        requested_label=actor.label[:150],
        idempotency_key=key,
        slot=order.slot,
        started_at=now if state == PipelineRun.State.RUNNING else None,
    )
    steps = StepRun.objects.bulk_create(
        [StepRun(run=run, step_id=s.id, position=i) for i, s in enumerate(definition.steps)]
    )
    audit.record(
        actor,
        "pipeline.run_started",
        pipeline,
        after={"run": number, "version": version.number, "trigger": order.trigger}
        | ({"queued_behind": going.number} if going is not None else {}),
    )
    if state == PipelineRun.State.RUNNING:
        publish_run("pipeline.run_started", actor, run, steps)
        advance(actor, run, steps)
    else:
        publish_run("pipeline.run_changed", actor, run, steps)
    return run, True


# --- Advancing ----------------------------------------------------------------------------------


def publish_run(
    event_type: events.RunEventType,
    actor: Actor,
    run: PipelineRun,
    steps: list[StepRun],
    step: StepRun | None = None,
) -> None:
    run.change += 1
    PipelineRun.objects.filter(pk=run.pk).update(change=run.change)
    live.publish(events.TOPIC, events.changed(event_type, actor, run, steps, step))


def lock_run(run_id: int) -> PipelineRun:
    run = (
        PipelineRun.objects.select_for_update(of=("self",), no_key=True)
        .select_related("pipeline", "version")
        .filter(pk=run_id)
        .first()
    )
    if run is None:
        raise NotFound("That pipeline run does not exist.")
    return run


def lock_tasks_of(run_id: int) -> None:
    """The run's steps' tasks, locked before the run itself (the one lock order: agent runs,
    tasks, then the pipeline run) by what may dispatch them again."""
    for task_id in sorted(
        StepRun.objects.filter(run_id=run_id, task__isnull=False).values_list("task_id", flat=True)
    ):
        tasks.lock_task(task_id)


def steps_of(run: PipelineRun) -> list[StepRun]:
    return list(StepRun.objects.filter(run=run).order_by("position"))


def _met(condition: str, needs: list[StepRun]) -> bool:
    if condition == "always":
        return True
    if condition == "failure":
        return any(n.state == StepRun.State.FAILED for n in needs)
    return all(n.state == StepRun.State.SUCCEEDED for n in needs)


def _skip_reason(condition: str) -> str:
    if condition == "failure":
        return "Skipped: none of the steps it needs failed."
    return "Skipped: not every step it needs succeeded."


def advance(actor: Actor, run: PipelineRun, steps: list[StepRun]) -> None:
    """Start every waiting step whose needs have ended (or skip it, by its `if`), until nothing
    moves; end the run when every step has ended."""
    if run.state != PipelineRun.State.RUNNING:
        return
    definition = run.version.definition
    by_id = {s.step_id: s for s in steps}
    moved = True
    while moved:
        moved = False
        for step in steps:
            if step.state != StepRun.State.WAITING:
                continue
            spec = definition.step(step.step_id)
            needs = [by_id[n] for n in spec.needs]
            if not all(n.ended for n in needs):
                continue
            moved = True
            if not _met(spec.condition, needs):
                end_step(
                    actor,
                    run,
                    steps,
                    step,
                    StepRun.State.SKIPPED,
                    error=_skip_reason(spec.condition),
                )
            elif spec.approval is not None and not step.approved:
                _ask_approval(actor, run, steps, step, spec)
            elif spec.gate_only:
                end_step(actor, run, steps, step, StepRun.State.SUCCEEDED)
            else:
                _start_step(actor, run, steps, step, spec)
    if all(s.ended for s in steps):
        _finish(actor, run, steps)


def _ask_approval(
    actor: Actor, run: PipelineRun, steps: list[StepRun], step: StepRun, spec: defs.StepSpec
) -> None:
    from pipelines import approvals

    approvals.ask(actor, run, steps, step, spec)


def _pick_agent(spec: defs.StepSpec) -> Agent:
    """The step's agent: the named one, or the least busy agent carrying the pool's label (its
    role, one of its capabilities, or a label an operator gave it): idle ones first, then busy
    ones, then the rest."""
    if spec.agent:
        agent = Agent.objects.filter(name=spec.agent).first()
        if agent is None:
            raise Invalid({"agent": [f"No agent is called “{spec.agent}” (any more)."]})
        return agent
    label = spec.pool.lower()
    pool = [
        a
        for a in Agent.objects.all()
        if a.role.lower() == label
        or label in {str(c).lower() for c in [*(a.capabilities or []), *(a.labels or [])]}
    ]
    if not pool:
        raise Invalid({"pool": [f"No agent carries the label “{spec.pool}”."]})
    busy = dict(
        Run.objects.active()
        .filter(agent_id__in=[a.pk for a in pool])
        .values_list("agent_id")
        .annotate(n=Count("id"))
    )
    rank: dict[str, int] = {Agent.Status.IDLE: 0, Agent.Status.BUSY: 1}
    pool.sort(key=lambda a: (rank.get(a.status, 2), busy.get(a.pk, 0), a.name))
    return pool[0]


def _start_step(
    actor: Actor, run: PipelineRun, steps: list[StepRun], step: StepRun, spec: defs.StepSpec
) -> None:
    """The step's task (made now, or its earlier one again on a re-run) dispatched to its agent."""
    system = _system(f"{run.pipeline.name} #{run.number}")
    outputs = {s.step_id: s.output for s in steps if s.state == StepRun.State.SUCCEEDED}
    brief = defs.render(spec.brief, run.inputs, outputs)
    try:
        agent = _pick_agent(spec)
        assignee = tasks.Assignee(agent_id=agent.pk)
        if step.task_id is None:
            task = tasks.create_task(
                system,
                title=f"{run.pipeline.name} #{run.number} · {spec.id}"[:200],
                description=brief,
                status=Task.Status.TODO,
                assignee=assignee,
                labels=[LABEL],
            )
            step.task = task
        else:
            tasks.update_task(system, step.task_id, {"description": brief, "assignee": assignee})
        step.agent_name = agent.name
        step.state, step.started_at, step.ended_at = StepRun.State.RUNNING, timezone.now(), None
        step.attempts, step.error, step.output = 1, "", ""
        step.deadline_at = deadline(spec)
        step.save()
        _dispatch(system, step, spec)
    except ActionError as refused:
        end_step(
            actor,
            run,
            steps,
            step,
            StepRun.State.FAILED,
            error=" ".join(refused.messages)[:1000],
        )
        return
    publish_run("pipeline.step_started", actor, run, steps, step)


def deadline(spec: defs.StepSpec) -> datetime | None:
    return timezone.now() + timedelta(seconds=spec.timeout_s) if spec.timeout_s else None


def _dispatch(actor: Actor, step: StepRun, spec: defs.StepSpec) -> None:
    assert step.task_id is not None
    # RunActive: its agent's auto-dispatch sent it already, as the task entered To do.
    with contextlib.suppress(RunActive):
        runs.dispatch(actor, runs.Dispatch(task_id=step.task_id, land_in=spec.lands))


def _cost(step: StepRun) -> int:
    if step.task_id is None:
        return 0
    return Run.objects.filter(task_id=step.task_id).aggregate(c=Sum("cost_nanos"))["c"] or 0


def end_step(
    actor: Actor,
    run: PipelineRun,
    steps: list[StepRun],
    step: StepRun,
    state: str,
    *,
    output: str = "",
    error: str = "",
) -> None:
    step.state, step.ended_at, step.deadline_at = state, timezone.now(), None
    step.output, step.error = output, error[:1000]
    if step.started_at is None:
        step.started_at = step.ended_at
    step.cost_nanos = _cost(step)
    step.save()
    publish_run("pipeline.step_finished", actor, run, steps, step)


def _finish(actor: Actor, run: PipelineRun, steps: list[StepRun]) -> None:
    failed = [s for s in steps if s.state == StepRun.State.FAILED]
    run.state = PipelineRun.State.FAILED if failed else PipelineRun.State.SUCCEEDED
    run.ended_at = timezone.now()
    run.error = (
        f"Step “{failed[0].step_id}” failed: {failed[0].error or 'no reason given'}"[:1000]
        if failed
        else ""
    )
    run.save(update_fields=["state", "ended_at", "error"])
    audit.record(
        actor,
        "pipeline.run_finished",
        run.pipeline,
        after={"run": run.number, "state": run.state},
    )
    publish_run("pipeline.run_finished", actor, run, steps)
    _start_queued(actor, run.pipeline_id)


def _start_queued(actor: Actor, pipeline_id: int) -> None:
    """The oldest queued run of the pipeline starts when none is running (overlap: queue)."""
    if PipelineRun.objects.filter(
        pipeline_id=pipeline_id, state=PipelineRun.State.RUNNING
    ).exists():
        return
    nxt = (
        PipelineRun.objects.filter(pipeline_id=pipeline_id, state=PipelineRun.State.QUEUED)
        .order_by("number")
        .first()
    )
    if nxt is None:
        return
    nxt = lock_run(nxt.pk)
    nxt.state, nxt.started_at = PipelineRun.State.RUNNING, timezone.now()
    nxt.save(update_fields=["state", "started_at"])
    steps = steps_of(nxt)
    publish_run("pipeline.run_started", actor, nxt, steps)
    advance(actor, nxt, steps)


# --- What ends a step ---------------------------------------------------------------------------


def _step_of_task(task_id: int) -> StepRun | None:
    return (
        StepRun.objects.filter(task_id=task_id, state=StepRun.State.RUNNING).order_by("-id").first()
    )


def _locked(step: StepRun) -> tuple[PipelineRun, list[StepRun], StepRun] | None:
    run = lock_run(step.run_id)
    steps = steps_of(run)
    fresh = next(s for s in steps if s.pk == step.pk)
    if fresh.state != StepRun.State.RUNNING:
        return None
    return run, steps, fresh


def _running_step_of(
    task_id: int,
) -> tuple[PipelineRun, list[StepRun], StepRun, defs.StepSpec] | None:
    """The running step whose task this is, its run locked; None when it is no step's."""
    step = _step_of_task(task_id)
    held = _locked(step) if step is not None else None
    if held is None:
        return None
    run, steps, step = held
    return run, steps, step, run.version.definition.step(step.step_id)


def run_ended(actor: Actor, agent_run: Run) -> None:
    """runs' end hook: an agent's run of a step's task ended. Succeeded: the step is done (when
    it is done when its run succeeds). Failed, timed out, lost: retried while the step has
    retries left, else the step failed. Aborted: the step failed (no retry: a person stopped
    it). In the run's transaction."""
    held = _running_step_of(agent_run.task_id)
    if held is None:
        return
    run, steps, step, spec = held
    if run.state != PipelineRun.State.RUNNING:
        end_step(actor, run, steps, step, StepRun.State.CANCELLED, error="The run was cancelled.")
        return
    if agent_run.state == Run.State.SUCCEEDED:
        if spec.done_when != "run":
            return  # done when its task reaches Review or Done (the column hook)
        end_step(actor, run, steps, step, StepRun.State.SUCCEEDED, output=agent_run.reply)
    elif agent_run.state != Run.State.ABORTED and step.attempts <= spec.retries:
        step.attempts += 1
        step.deadline_at = deadline(spec)
        step.save(update_fields=["attempts", "deadline_at"])
        runs.retry(_system(f"{run.pipeline.name} #{run.number}, retry"), agent_run.pk)
        publish_run("pipeline.run_changed", actor, run, steps, step)
        return
    else:
        reason = agent_run.error or agent_run.get_state_display().lower()
        end_step(
            actor,
            run,
            steps,
            step,
            StepRun.State.FAILED,
            error=f"Attempt {agent_run.attempt} {agent_run.get_state_display().lower()}: {reason}"
            if reason != agent_run.get_state_display().lower()
            else f"Attempt {agent_run.attempt} {reason}.",
        )
    advance(actor, run, steps)


def task_moved(actor: Actor, task: Task, old_status: str) -> None:
    """tasks' column hook: a step's task reached Review or Done — the step is done if that is
    when it counts as done (an operator accepting the work). Its output: the task's latest
    successful run's reply."""
    if old_status == task.status or task.assignee_agent_id is None:
        return
    if task.status not in (Task.Status.REVIEW, Task.Status.DONE):
        return
    held = _running_step_of(task.pk)
    if held is None:
        return
    run, steps, step, spec = held
    if spec.done_when == "run" or (spec.done_when == "done" and task.status != Task.Status.DONE):
        return
    if run.state != PipelineRun.State.RUNNING:
        return
    reply = (
        Run.objects.filter(task_id=task.pk, state=Run.State.SUCCEEDED)
        .order_by("-attempt")
        .values_list("reply", flat=True)
        .first()
    )
    end_step(actor, run, steps, step, StepRun.State.SUCCEEDED, output=reply or "")
    advance(actor, run, steps)


def time_out_steps(now: datetime | None = None) -> int:
    """Steps past their `timeout_s`: the agent's run is timed out (retried while the step has
    retries left); a step waiting for its task to reach a column fails. The number timed out."""
    now = now or timezone.now()
    done = 0
    due = StepRun.objects.filter(state=StepRun.State.RUNNING, deadline_at__lte=now)
    for step in list(due.select_related("run__version")[:100]):
        spec = step.run.version.definition.step(step.step_id)
        why = f"The step's time ran out ({spec.timeout_s} s)."
        with transaction.atomic():
            run_id = (
                Run.objects.active().filter(task=step.task_id).values_list("pk", flat=True).first()
                if step.task_id is not None
                else None
            )
            if run_id is not None:
                runs.time_out(_system("timeout"), run_id, why)
            else:
                held = _locked(step)
                if held is not None and held[0].state == PipelineRun.State.RUNNING:
                    run, steps, fresh = held
                    end_step(_system("timeout"), run, steps, fresh, StepRun.State.FAILED, error=why)
                    advance(_system("timeout"), run, steps)
        done += 1
    return done


# --- Operators' actions -------------------------------------------------------------------------


class _StepsMoved(Exception):
    """A step started between reading the running steps and locking the run (cancel retries)."""


def _running_tasks(run_id: int) -> set[int]:
    return set(
        StepRun.objects.filter(run_id=run_id, state=StepRun.State.RUNNING)
        .exclude(task__isnull=True)
        .values_list("task_id", flat=True)
    )


def cancel(actor: Actor, run_id: int) -> tuple[PipelineRun, list[Run]]:
    """Stop a run: its running steps' agent runs aborted, the steps not started skipped. The
    aborted agent runs (to stop on their gateways after commit). A step that starts while the
    cancel waits for its locks (its agent finished the step before: the next one began) makes
    it start over with that step's run locked too: none is left running."""
    for _attempt in range(5):
        try:
            return _cancel(actor, run_id)
        except _StepsMoved:
            continue
    raise Conflict("The run kept moving on while it was being cancelled: try again.")


def _cancel(actor: Actor, run_id: int) -> tuple[PipelineRun, list[Run]]:
    with transaction.atomic():
        task_ids = _running_tasks(run_id)
        # One lock order: agent runs, tasks, then the pipeline run.
        active = list(
            Run.objects.select_for_update(of=("self",), no_key=True)
            .filter(task_id__in=task_ids, state__in=Run.ACTIVE)
            .order_by("pk")
        )
        for task_id in sorted(task_ids):
            tasks.lock_task(task_id)
        run = lock_run(run_id)
        if not _running_tasks(run_id) <= task_ids:
            raise _StepsMoved  # rolls this attempt back; the locks are taken again in order
        if run.state not in PipelineRun.ACTIVE:
            raise Conflict(f"This run has ended: {run.get_state_display().lower()}.")
        run.state, run.ended_at = PipelineRun.State.CANCELLED, timezone.now()
        run.error = f"Cancelled by {actor.label}."[:1000]
        run.save(update_fields=["state", "ended_at", "error"])
        aborted = [runs.abort(actor, r.pk) for r in active]  # its end hook cancels the step
        steps = steps_of(run)
        for step in steps:
            if step.state in (StepRun.State.WAITING, StepRun.State.AWAITING_APPROVAL):
                end_step(
                    actor, run, steps, step, StepRun.State.SKIPPED, error="The run was cancelled."
                )
            elif step.state == StepRun.State.RUNNING:  # waiting for its task's column
                end_step(
                    actor, run, steps, step, StepRun.State.CANCELLED, error="The run was cancelled."
                )
        audit.record(actor, "pipeline.run_cancelled", run.pipeline, after={"run": run.number})
        publish_run("pipeline.run_finished", actor, run, steps)
        _start_queued(actor, run.pipeline_id)
    return run, aborted


def rerun_from(actor: Actor, run_id: int, step_id: str) -> PipelineRun:
    """Run a failed (or cancelled) run again from `step_id`: that step and every step after it
    that did not succeed start over; the steps that succeeded keep their outputs."""
    with transaction.atomic():
        lock_tasks_of(run_id)
        run = lock_run(run_id)
        if run.state not in (PipelineRun.State.FAILED, PipelineRun.State.CANCELLED):
            raise Conflict("Only a failed or cancelled run can be run again from a step.")
        steps = steps_of(run)
        chosen = next((s for s in steps if s.step_id == step_id), None)
        if chosen is None:
            raise NotFound("That run has no such step.")
        if chosen.state == StepRun.State.SUCCEEDED:
            raise Invalid({"step": ["That step succeeded: run again from one that did not."]})
        if PipelineRun.objects.filter(
            pipeline_id=run.pipeline_id, state=PipelineRun.State.RUNNING
        ).exists():
            raise Conflict("Another run of this pipeline is going: wait for it, or cancel it.")
        again = {step_id} | run.version.definition.descendants(step_id)
        for step in steps:
            interrupted = step.state in (StepRun.State.CANCELLED, StepRun.State.SKIPPED)
            if step.state != StepRun.State.SUCCEEDED and (step.step_id in again or interrupted):
                step.state, step.started_at, step.ended_at = StepRun.State.WAITING, None, None
                step.output, step.error, step.attempts, step.deadline_at = "", "", 0, None
                step.approved = False
                step.save()
        run.state, run.ended_at, run.error = PipelineRun.State.RUNNING, None, ""
        run.save(update_fields=["state", "ended_at", "error"])
        audit.record(
            actor, "pipeline.run_rerun", run.pipeline, after={"run": run.number, "from": step_id}
        )
        publish_run("pipeline.run_changed", actor, run, steps)
        advance(actor, run, steps)
    return run


def stats(pipeline_ids: list[int], since: datetime) -> dict[int, dict[str, Any]]:
    """Per pipeline over runs that ended since `since`: runs, success rate, median duration and
    cost (the list page's columns)."""
    ended = (
        PipelineRun.objects.filter(
            pipeline_id__in=pipeline_ids, ended_at__gte=since, state__in=PipelineRun.ENDED
        )
        .annotate(cost=Sum("steps__cost_nanos"))
        .values_list("pipeline_id", "state", "started_at", "ended_at", "cost")
    )
    rows: dict[int, list[tuple[str, float, int]]] = {}
    for pipeline_id, state, started, ended_at, cost in ended:
        seconds = (ended_at - started).total_seconds() if started and ended_at else 0.0
        rows.setdefault(pipeline_id, []).append((state, seconds, cost or 0))
    out: dict[int, dict[str, Any]] = {}
    for pipeline_id, items in rows.items():
        durations = sorted(d for _s, d, _c in items)
        costs = sorted(c for _s, _d, c in items)
        out[pipeline_id] = {
            "runs": len(items),
            "success_rate": sum(1 for s, _d, _c in items if s == "succeeded") / len(items),
            "median_s": durations[len(durations) // 2],
            "median_cost_nanos": costs[len(costs) // 2],
        }
    return out
