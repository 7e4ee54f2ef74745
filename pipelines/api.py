"""The pipelines' API routes, on the one API stack (missioncontrol/api.py), with people's
tokens: viewers read pipelines and runs; operators start runs (an `Idempotency-Key` header
makes a retry return the same run), cancel them and answer approvals; admins create and
update definitions with the export's JSON shape (docs/pipelines.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from django.http import HttpRequest
from ninja import Router, Schema, Status
from ninja.responses import codes_4xx
from ninja.security import HttpBearer
from pydantic import ConfigDict, Field

from missioncontrol.api import ApiError, PersonTokenAuth, Text
from missioncontrol.audit import Actor
from missioncontrol.errors import Forbidden, NotFound
from pipelines import access, actions, approvals, events, triggers
from pipelines.models import Approval, Pipeline, PipelineRun

router = Router(tags=["pipelines"])


class PipelineOut(Schema):
    id: int
    name: str
    version: int
    definition: dict[str, Any] = Field(description="The current version, in the export's shape.")
    url: str


class PipelinesOut(Schema):
    pipelines: list[PipelineOut]


class DefinitionIn(Schema):
    """The export's shape (docs/pipelines.md); checked as the editor's text is, each problem
    named by where it is (`steps[1].agent`)."""

    model_config = ConfigDict(extra="allow")

    name: Any = Field(None, description="Unique.")
    description: Any = None
    inputs: Any = Field(None, description="[{name, type, required, default, choices}]")
    overlap: Any = Field(None, description="skip | queue | allow")
    schedule: Any = Field(None, description="{cron, timezone}")
    steps: Any = Field(
        None,
        description="[{id, agent | pool, brief, needs, if, timeout_s, retries, lands, "
        "done_when, approval}]",
    )


class RunIn(Schema):
    inputs: dict[str, Any] = Field(default_factory=dict, description="By input name.")


class RunOut(Schema):
    run: dict[str, Any] = Field(description="The run and each step's state, task and output.")


class AnswerIn(Schema):
    outcome: Literal["approved", "rejected", "changes_requested"]
    comment: Text(approvals.MAX_COMMENT) = ""  # type: ignore[valid-type]


class ApprovalOut(Schema):
    approval: approvals.ApprovalData


def _pipeline_out(pipeline: Pipeline) -> dict[str, Any]:
    version = pipeline.current
    return {
        "id": pipeline.pk,
        "name": pipeline.name,
        "version": version.number,
        "definition": version.data,
        "url": f"/pipelines/{pipeline.pk}/",
    }


def _run_out(run: PipelineRun) -> dict[str, Any]:
    data: dict[str, Any] = dict(events.run_data(run))
    full = dict(run.steps.values_list("step_id", "output"))
    data["steps"] = [{**s, "output": full.get(s["id"], "")} for s in data["steps"]]
    return {"run": data}


@router.get(
    "/pipelines",
    auth=PersonTokenAuth(),
    response={200: PipelinesOut, codes_4xx: ApiError},
    summary="Every pipeline, with its current definition",
)
def list_pipelines(request: HttpRequest) -> dict[str, Any]:
    rows = Pipeline.objects.filter(archived_at=None).order_by("name")
    return {"pipelines": [_pipeline_out(p) for p in rows]}


@router.get(
    "/pipelines/{id:pipeline_id}",
    auth=PersonTokenAuth(),
    response={200: PipelineOut, codes_4xx: ApiError},
    summary="A pipeline and its current definition",
)
def read_pipeline(request: HttpRequest, pipeline_id: int) -> dict[str, Any]:
    pipeline = Pipeline.objects.filter(pk=pipeline_id).first()
    if pipeline is None:
        raise NotFound("That pipeline does not exist.")
    return _pipeline_out(pipeline)


def _save(request: HttpRequest, body: DefinitionIn, pipeline_id: int | None) -> Pipeline:
    definition = actions.check_data(body.model_dump(exclude_unset=True))
    version = actions.save(
        Actor.user(request.auth),  # type: ignore[attr-defined]
        actions.definition_text(definition),
        pipeline_id,
    )
    return version.pipeline


@router.post(
    "/pipelines",
    auth=PersonTokenAuth(least="admin"),
    response={201: PipelineOut, codes_4xx: ApiError},
    summary="Create a pipeline from its definition (the export's JSON shape; each problem named "
    "by where it is: `steps[1].agent`)",
)
def create_pipeline(request: HttpRequest, body: DefinitionIn) -> Status[dict[str, Any]]:
    return Status(201, _pipeline_out(_save(request, body, None)))


@router.put(
    "/pipelines/{id:pipeline_id}",
    auth=PersonTokenAuth(least="admin"),
    response={200: PipelineOut, codes_4xx: ApiError},
    summary="Save a new version of a pipeline (runs going keep theirs)",
)
def update_pipeline(request: HttpRequest, pipeline_id: int, body: DefinitionIn) -> dict[str, Any]:
    if not Pipeline.objects.filter(pk=pipeline_id).exists():
        raise NotFound("That pipeline does not exist.")
    return _pipeline_out(_save(request, body, pipeline_id))


@dataclass(frozen=True)
class TriggerToken:
    pipeline_id: int


class TriggerTokenAuth(HttpBearer):
    """A pipeline's own trigger token (`mcp_<id>_…`): it starts that pipeline, nothing else."""

    def authenticate(self, request: HttpRequest, token: str) -> TriggerToken | None:
        pipeline_id = triggers.token_pipeline(token)
        return TriggerToken(pipeline_id) if pipeline_id is not None else None


@router.post(
    "/pipelines/{id:pipeline_id}/runs",
    auth=[PersonTokenAuth(least="operator"), TriggerTokenAuth()],
    response={200: RunOut, 202: RunOut, codes_4xx: ApiError},
    summary="Start a run with inputs, with an operator's token or the pipeline's trigger token "
    "(202; with an Idempotency-Key header, the same key again "
    "answers 200 with the run the first request made; 409 run_in_progress when its overlap "
    "policy is skip and a run is going)",
)
def start_run(request: HttpRequest, pipeline_id: int, body: RunIn) -> Status[dict[str, Any]]:
    who = request.auth  # type: ignore[attr-defined]
    pipeline = Pipeline.objects.filter(pk=pipeline_id).first()
    if pipeline is None:
        raise NotFound("That pipeline does not exist.")
    if isinstance(who, TriggerToken):
        if who.pipeline_id != pipeline_id:
            raise Forbidden("This trigger token starts another pipeline.")
        actor = Actor.system(f"trigger token ({pipeline.name})")
    else:
        access.check_start(who, pipeline.current.definition)
        actor = Actor.user(who)
    run, created = actions.start(
        actor,
        actions.Start(
            pipeline_id=pipeline_id,
            inputs=body.inputs,
            trigger=PipelineRun.Trigger.API,
            idempotency_key=request.headers.get("Idempotency-Key", ""),
        ),
    )
    return Status(202 if created else 200, _run_out(run))


def _run(run_id: int) -> PipelineRun:
    run = PipelineRun.objects.select_related("pipeline", "version").filter(pk=run_id).first()
    if run is None:
        raise NotFound("That pipeline run does not exist.")
    return run


@router.get(
    "/pipeline-runs/{id:run_id}",
    auth=PersonTokenAuth(),
    response={200: RunOut, codes_4xx: ApiError},
    summary="A pipeline run: its state and each step's state, task and output",
)
def read_run(request: HttpRequest, run_id: int) -> dict[str, Any]:
    return _run_out(_run(run_id))


@router.post(
    "/pipeline-runs/{id:run_id}/cancel",
    auth=PersonTokenAuth(least="operator"),
    response={200: RunOut, codes_4xx: ApiError},
    summary="Cancel a run: running steps aborted, the rest skipped (409 when it has ended)",
)
def cancel_run(request: HttpRequest, run_id: int) -> dict[str, Any]:
    from runs.access import stop_on_gateway

    _run(run_id)
    run, aborted = actions.cancel(Actor.user(request.auth), run_id)  # type: ignore[attr-defined]
    for agent_run in aborted:
        stop_on_gateway(agent_run)  # best effort: aborted here either way
    return _run_out(run)


@router.post(
    "/approvals/{id:approval_id}",
    auth=PersonTokenAuth(least="viewer"),
    response={200: ApprovalOut, codes_4xx: ApiError},
    summary="Answer an approval (403 when it is not yours to answer; 409 when someone answered "
    "first: the body's `approval` has their answer)",
)
def answer(request: HttpRequest, approval_id: int, body: AnswerIn) -> dict[str, Any]:
    user = request.auth  # type: ignore[attr-defined]
    approval = approvals.answer(Actor.user(user), user, approval_id, body.outcome, body.comment)
    approval = Approval.objects.select_related("step__run__pipeline").get(pk=approval.pk)
    return {"approval": approvals.approval_data(approval, approval.step.run)}
