"""The pipelines' domain events, on their own topic. Each run event carries the whole run as its
page shows it (every step's state, task, output's start, cost), so the presenter renders from
the event alone; a step's event also names the step that changed. The catalogue with every
field is docs/events.md."""

from __future__ import annotations

from typing import Literal, TypedDict

from missioncontrol.audit import Actor, ActorData
from pipelines.models import Pipeline, PipelineRun, StepRun
from tasks.models import Task

TOPIC = "pipelines"

RunEventType = Literal[
    "pipeline.run_started",
    "pipeline.step_started",
    "pipeline.step_finished",
    "pipeline.run_finished",
    "pipeline.run_changed",
]
PipelineEventType = Literal["pipeline.saved"]

PREVIEW = 300  # characters of a step's output in events (the run page links the whole)


class StepData(TypedDict):
    id: str
    position: int
    state: str
    needs: list[str]
    condition: str
    gate: bool  # an approval gate only (no agent)
    agent: str  # the named agent, or who the pool's step went to
    pool: str
    task_id: int | None
    run_state: str  # its task's latest run: queued / sending / running / … ("" before one)
    attempts: int
    output: str  # the first PREVIEW characters
    error: str
    started_at: str | None
    ended_at: str | None
    cost_usd: str


class RunData(TypedDict):
    id: int
    pipeline_id: int
    pipeline: str
    number: int
    version: int
    state: str
    trigger: str
    requested_by: str
    inputs: dict[str, object]
    created_at: str
    started_at: str | None
    ended_at: str | None
    error: str
    cost_usd: str
    url: str
    change: int
    steps: list[StepData]


class RunChanged(TypedDict):
    """A pipeline run started, one of its steps started or ended, or it ended (or changed
    otherwise: cancelled, re-run from a step)."""

    type: RunEventType
    actor: ActorData
    run: RunData
    step: StepData | None  # the step this event is about (step events)


class PipelineSaved(TypedDict):
    """An admin created a pipeline or saved a new version of it."""

    type: PipelineEventType
    actor: ActorData
    pipeline: PipelineData


class PipelineData(TypedDict):
    id: int
    name: str
    version: int
    steps: int
    schedule: str
    url: str


def _iso(value: object) -> str | None:
    return value.isoformat() if value is not None else None  # type: ignore[attr-defined]


def step_data(
    step: StepRun,
    run: PipelineRun,
    run_states: dict[int, str] | None = None,
    task_costs: dict[int, int] | None = None,
) -> StepData:
    """A step as its run's page shows it. Its cost: what its task's runs cost when it ended;
    while it runs, what the work on its task has cost so far (`task_costs`, the task's own
    running total, which the board's cost events keep live)."""
    spec = run.version.definition.step(step.step_id)
    return {
        "id": step.step_id,
        "position": step.position,
        "state": step.state,
        "needs": list(spec.needs),
        "condition": spec.condition,
        "gate": spec.gate_only,
        "agent": step.agent_name or spec.agent,
        "pool": spec.pool,
        "task_id": step.task_id,
        "run_state": (run_states or {}).get(step.task_id or 0, ""),
        "attempts": step.attempts,
        "output": step.output[:PREVIEW],
        "error": step.error,
        "started_at": _iso(step.started_at),
        "ended_at": _iso(step.ended_at),
        "cost_usd": f"{_cost_nanos(step, task_costs) / 1e9:.9f}",
    }


def _cost_nanos(step: StepRun, task_costs: dict[int, int] | None) -> int:
    if step.ended_at is None and step.task_id is not None and task_costs:
        return task_costs.get(step.task_id, 0)
    return step.cost_nanos


def run_data(run: PipelineRun, steps: list[StepRun] | None = None) -> RunData:
    steps = steps if steps is not None else list(run.steps.order_by("position"))
    # What each step's task's run is doing now (one query, fresh at each event).
    task_ids = [s.task_id for s in steps if s.task_id is not None]
    rows = (
        Task.objects.filter(pk__in=task_ids).values_list("pk", "run_state", "cost_nanos")
        if task_ids
        else []
    )
    run_states = {pk: state for pk, state, _cost in rows}
    task_costs = {pk: cost for pk, _state, cost in rows}
    shown = [step_data(s, run, run_states, task_costs) for s in steps]
    return {
        "id": run.pk,
        "pipeline_id": run.pipeline_id,
        "pipeline": run.pipeline.name,
        "number": run.number,
        "version": run.version.number,
        "state": run.state,
        "trigger": run.trigger,
        "requested_by": run.requested_label,
        "inputs": dict(run.inputs),
        "created_at": run.created_at.isoformat(),
        "started_at": _iso(run.started_at),
        "ended_at": _iso(run.ended_at),
        "error": run.error,
        "cost_usd": f"{sum(_cost_nanos(s, task_costs) for s in steps) / 1e9:.9f}",
        "url": f"/pipelines/runs/{run.pk}/",
        "change": run.change,
        "steps": shown,
    }


def changed(
    event_type: RunEventType,
    actor: Actor,
    run: PipelineRun,
    steps: list[StepRun],
    step: StepRun | None = None,
) -> RunChanged:
    data = run_data(run, steps)
    return {
        "type": event_type,
        "actor": actor.as_dict(),
        "run": data,
        "step": next((s for s in data["steps"] if step and s["id"] == step.step_id), None),
    }


def pipeline_data(pipeline: Pipeline, version: int, steps: int, schedule: str) -> PipelineData:
    return {
        "id": pipeline.pk,
        "name": pipeline.name,
        "version": version,
        "steps": steps,
        "schedule": schedule,
        "url": f"/pipelines/{pipeline.pk}/",
    }
