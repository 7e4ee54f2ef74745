"""The Pipelines pages: the list (with each pipeline's last 30 days), a pipeline (its steps, its
inputs form, its runs, its versions), the editor (admins; text with every problem by line),
a run's page (its steps as a graph, live), and the Approvals inbox."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from missioncontrol.audit import Actor
from missioncontrol.context_processors import live_seq_for
from missioncontrol.errors import (
    ActionError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Unavailable,
    error_response,
    json_error,
)
from missioncontrol.http import parse_int
from missioncontrol.roles import role_required
from pipelines import access, actions, approvals, events, triggers
from pipelines import definition as defs
from pipelines.models import Approval, Pipeline, PipelineRun
from pipelines.templatetags.pipelines import columns

RUNS_SHOWN = 50
EXAMPLE = """\
name: Fix a bug
description: Research it, fix it, and have a person approve the fix.
inputs:
  - {name: issue, type: text, required: true, description: What is wrong}
steps:
  - id: research
    agent: AGENT
    brief: |
      Find the cause of this bug: {{ inputs.issue }}
  - id: fix
    agent: AGENT
    needs: [research]
    brief: |
      Fix it. What the research found:
      {{ steps.research.output }}
    retries: 1
  - id: sign-off
    needs: [fix]
    approval: {by: operator, instructions: Read the fix on its task, then approve.}
"""


def pipeline_steps(task: Any) -> list[Any]:
    """The pipeline steps a task is (for its page: the run it belongs to)."""
    from pipelines.models import StepRun

    return list(
        StepRun.objects.filter(task_id=task.pk).select_related("run__pipeline").order_by("-id")[:3]
    )


def _pipeline(pk: int) -> Pipeline:
    pipeline = Pipeline.objects.filter(pk=pk).first()
    if pipeline is None:
        raise Http404("That pipeline does not exist.")
    return pipeline


def _run(request: HttpRequest, pk: int) -> PipelineRun:
    run = PipelineRun.objects.select_related("pipeline", "version").filter(pk=pk).first()
    if run is None:
        raise Http404("That pipeline run does not exist.")
    return run


def _refused(request: HttpRequest, refused: ActionError, back: str) -> HttpResponse:
    if getattr(request, "htmx", False):
        return HttpResponse(
            " ".join(refused.messages), status=refused.status, content_type="text/plain"
        )
    for message in refused.messages:
        messages.error(request, message)
    return redirect(back)


@require_safe
@role_required("viewer")
def pipeline_list(request: HttpRequest) -> HttpResponse:
    live_seq_for(request)
    latest = PipelineRun.objects.filter(pipeline=OuterRef("pk")).order_by("-number").values("pk")
    pipelines = list(
        Pipeline.objects.filter(archived_at=None)
        .annotate(last_run_id=Subquery(latest[:1]))
        .order_by("name")
    )
    stats = actions.stats([p.pk for p in pipelines], timezone.now() - timedelta(days=30))
    last = PipelineRun.objects.in_bulk([p.last_run_id for p in pipelines if p.last_run_id])
    for p in pipelines:
        p.stats = stats.get(p.pk)  # type: ignore[attr-defined]
        p.definition = p.current.definition  # type: ignore[attr-defined]
        p.last_run = last.get(p.last_run_id)  # type: ignore[attr-defined]
    recent = PipelineRun.objects.select_related("pipeline", "version").order_by(
        "-created_at", "-id"
    )
    chosen = {
        "state": request.GET.get("state", "")
        if request.GET.get("state") in PipelineRun.State.values
        else "",
        "trigger": request.GET.get("trigger", "")
        if request.GET.get("trigger") in PipelineRun.Trigger.values
        else "",
        "pipeline": parse_int(request.GET.get("pipeline"), low=1),
    }
    if chosen["state"]:
        recent = recent.filter(state=chosen["state"])
    if chosen["trigger"]:
        recent = recent.filter(trigger=chosen["trigger"])
    if chosen["pipeline"] is not None:
        recent = recent.filter(pipeline_id=chosen["pipeline"])
    return render(
        request,
        "pipelines/list.html",
        {
            "pipelines": pipelines,
            "recent": [events.run_data(r) for r in recent[:RUNS_SHOWN]],
            "chosen": chosen,
            "filtered": any(v not in ("", None) for v in chosen.values()),
            "states": PipelineRun.State.choices,
            "trigger_choices": PipelineRun.Trigger.choices,
            "pending": Approval.objects.pending().count(),
        },
    )


@require_safe
@role_required("viewer")
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _detail(request, pk)


def _detail(
    request: HttpRequest, pk: int, new_triggers: triggers.Triggers | None = None
) -> HttpResponse:
    live_seq_for(request)
    pipeline = _pipeline(pk)
    version = pipeline.current
    definition = version.definition
    runs = PipelineRun.objects.filter(pipeline=pipeline).select_related("pipeline", "version")
    return render(
        request,
        "pipelines/detail.html",
        {
            "pipeline": pipeline,
            "version": version,
            "definition": definition,
            "levels": levels(definition),
            "form": InputsForm(definition),
            "nonce": uuid.uuid4().hex,
            "runs": [events.run_data(r) for r in runs.order_by("-number")[:RUNS_SHOWN]],
            "versions": pipeline.versions.order_by("-number")[:20],
            "stats": actions.stats([pipeline.pk], timezone.now() - timedelta(days=30)).get(
                pipeline.pk
            ),
            "new_triggers": new_triggers,
            "start_url": request.build_absolute_uri(f"/api/v1/pipelines/{pipeline.pk}/runs"),
            "webhook_url": request.build_absolute_uri(f"/api/v1/pipelines/{pipeline.pk}/webhook"),
        },
    )


def levels(definition: defs.Definition) -> list[list[defs.StepSpec]]:
    """The steps in columns: each after every step it needs (the graph, left to right)."""
    specs = {s.id: s for s in definition.steps}
    shape = [
        {"id": s.id, "position": i, "needs": list(s.needs)} for i, s in enumerate(definition.steps)
    ]
    return [[specs[d["id"]] for d in column] for column in columns(shape)]


class InputsForm(forms.Form):
    """A run's inputs, one field per declared input, typed."""

    def __init__(self, definition: defs.Definition, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for spec in definition.inputs:
            label = spec.name.replace("_", " ").capitalize()
            help_text = spec.description
            initial = spec.default
            field: forms.Field
            if spec.type == "boolean":
                field = forms.BooleanField(required=False, label=label, help_text=help_text)
            elif spec.type == "number":
                field = forms.FloatField(
                    required=spec.required and spec.default is None,
                    label=label,
                    help_text=help_text,
                )
            elif spec.type == "choice":
                choices = [(c, c) for c in spec.choices]
                if not spec.required:
                    choices = [("", "—"), *choices]
                field = forms.ChoiceField(
                    choices=choices, required=spec.required, label=label, help_text=help_text
                )
            else:
                field = forms.CharField(
                    required=spec.required and spec.default is None,
                    label=label,
                    help_text=help_text,
                    max_length=10_000,
                    widget=forms.Textarea(attrs={"rows": 2}),
                )
            field.initial = initial
            self.fields[spec.name] = field


@require_POST
@role_required("operator")
def start(request: HttpRequest, pk: int) -> HttpResponse:
    pipeline = _pipeline(pk)
    definition = pipeline.current.definition
    form = InputsForm(definition, request.POST)
    back = reverse("pipelines:detail", args=[pk])
    if not form.is_valid():
        for name, errors in form.errors.items():
            for message in errors:
                messages.error(request, f"{name}: {message}")
        return redirect(back)
    try:
        access.check_start(request.user, definition)
        given = {k: v for k, v in form.cleaned_data.items() if v is not None and v != ""}
        run, _created = actions.start(
            Actor.user(request.user),
            actions.Start(
                pipeline_id=pk,
                inputs=given,
                idempotency_key=f"form:{request.POST.get('nonce', '')}"[:100]
                if request.POST.get("nonce")
                else "",
            ),
        )
    except Forbidden as refused:
        raise PermissionDenied(refused.detail) from None
    except ActionError as refused:
        return _refused(request, refused, back)
    return redirect("pipelines:run", run.pk)


class TextForm(forms.Form):
    text = forms.CharField(
        max_length=defs.MAX_TEXT,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "false", "class": "code-input"}),
        label="Definition (YAML or JSON)",
    )


@require_http_methods(["GET", "POST"])
@role_required("admin")
def edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    pipeline = _pipeline(pk) if pk is not None else None
    if request.method == "POST":
        form = TextForm(request.POST)
        upload = request.FILES.get("file")
        if upload is not None:
            raw = upload.read(defs.MAX_TEXT + 1)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            form = TextForm({"text": text or ""})
            if text is None:
                form.add_error(None, "That file is not UTF-8 text.")
        if form.is_valid():
            try:
                version = actions.save(Actor.user(request.user), form.cleaned_data["text"], pk)
            except ActionError as refused:
                for message in refused.messages:
                    form.add_error("text", message)
            else:
                messages.success(
                    request, f"Saved “{version.pipeline.name}”, version {version.number}."
                )
                return redirect("pipelines:detail", version.pipeline_id)
    else:
        if pipeline is not None:
            text = pipeline.current.text
        else:
            agent = _an_agent_name()
            text = EXAMPLE.replace("AGENT", agent)
        form = TextForm(initial={"text": text})
    return render(request, "pipelines/edit.html", {"pipeline": pipeline, "form": form})


def _an_agent_name() -> str:
    from agents.models import Agent

    return Agent.objects.order_by("name").values_list("name", flat=True).first() or "my-agent"


@require_safe
@role_required("viewer")
def export(request: HttpRequest, pk: int) -> HttpResponse:
    pipeline = _pipeline(pk)
    version = pipeline.current
    wanted = request.GET.get("format", "yaml")
    if wanted == "json":
        import json

        body = json.dumps(version.definition.as_data(), indent=2, ensure_ascii=False) + "\n"
        kind, ext = "application/json", "json"
    else:
        body, kind, ext = defs.dump(version.definition), "application/yaml", "yaml"
    response = HttpResponse(body, content_type=f"{kind}; charset=utf-8")
    slug = "".join(c if c.isalnum() else "-" for c in pipeline.name.lower()).strip("-")[:60]
    response["Content-Disposition"] = (
        f'attachment; filename="{slug or "pipeline"}-v{version.number}.{ext}"'
    )
    return response


@require_POST
@role_required("admin")
def archive(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        pipeline = actions.archive(Actor.user(request.user), pk)
    except NotFound:
        raise Http404("That pipeline does not exist.") from None
    messages.success(request, f"Archived “{pipeline.name}”: it no longer runs on its schedule.")
    return redirect("pipelines:list")


@require_safe
@role_required("viewer")
def run_page(request: HttpRequest, pk: int) -> HttpResponse:
    live_seq_for(request)
    run = _run(request, pk)
    data = events.run_data(run)
    asked = Approval.objects.filter(step__run=run).select_related("step", "step__run__pipeline")
    return render(
        request,
        "pipelines/run.html",
        {
            "run": data,
            "pipeline": run.pipeline,
            "pending": [approvals.approval_data(a, run) for a in asked if a.pending],
            "answered": [approvals.approval_data(a, run) for a in asked if not a.pending][:50],
        },
    )


@require_POST
@role_required("operator")
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    back = reverse("pipelines:run", args=[pk])
    try:
        _run(request, pk)
        _run_cancelled, aborted = actions.cancel(Actor.user(request.user), pk)
    except ActionError as refused:
        return _refused(request, refused, back)
    from runs.access import stop_on_gateway

    for agent_run in aborted:
        if problem := stop_on_gateway(agent_run):
            messages.warning(request, problem)
    if getattr(request, "htmx", False):
        return HttpResponse(status=204)
    return redirect(back)


@require_POST
@role_required("operator")
def rerun(request: HttpRequest, pk: int) -> HttpResponse:
    back = reverse("pipelines:run", args=[pk])
    step_id = (request.POST.get("step") or "").strip()
    try:
        run = _run(request, pk)
        access.check_start(request.user, run.version.definition)
        actions.rerun_from(Actor.user(request.user), pk, step_id)
    except Forbidden as refused:
        raise PermissionDenied(refused.detail) from None
    except ActionError as refused:
        return _refused(request, refused, back)
    if getattr(request, "htmx", False):
        return HttpResponse(status=204)
    return redirect(back)


@require_safe
@role_required("viewer")
def approvals_page(request: HttpRequest) -> HttpResponse:
    live_seq_for(request)
    pending = list(
        Approval.objects.pending()
        .select_related("step__run__pipeline")
        .order_by("requested_at")[:200]
    )
    answered = list(
        Approval.objects.exclude(outcome="pending")
        .select_related("step__run__pipeline")
        .order_by("-answered_at")[:50]
    )
    return render(
        request,
        "pipelines/approvals.html",
        {
            "pending": [approvals.approval_data(a, a.step.run) for a in pending],
            "answered": [approvals.approval_data(a, a.step.run) for a in answered],
            "exec_pending": _exec_approvals(request.user, pending=True),
            "exec_answered": _exec_approvals(request.user, pending=False),
            "asks_pending": agent_asks(request.user, pending=True),
            "asks_answered": agent_asks(request.user, pending=False),
        },
    )


def agent_asks(user: Any, *, pending: bool) -> list[approvals.AgentAskData]:
    """The agents' questions this person sees (their gateway grants)."""
    from gateways import access as gateway_access
    from pipelines.models import AgentAsk

    rows = AgentAsk.objects.select_related("task", "agent").filter(
        gateway_access.narrowing(user, "agent__gateway")
    )
    rows = (
        rows.filter(outcome=AgentAsk.Outcome.PENDING).order_by("requested_at")
        if pending
        else rows.exclude(outcome=AgentAsk.Outcome.PENDING).order_by("-answered_at", "-id")
    )
    return [approvals.agent_ask_data(a, a.agent.gateway_id) for a in rows[: 200 if pending else 50]]


@require_POST
@role_required("operator")
def ask_answer(request: HttpRequest, pk: int) -> HttpResponse:
    """Answer an agent's question (approved or rejected, with a comment it reads)."""
    outcome = request.POST.get("outcome", "")
    if outcome not in ("approved", "rejected"):
        refused = Invalid({"outcome": ["Approve or reject."]})
        return _refused(request, refused, reverse("pipelines:approvals"))

    def give() -> str:
        approvals.answer_agent(
            Actor.user(request.user),
            request.user,
            pk,
            outcome,  # type: ignore[arg-type]
            request.POST.get("comment", ""),
        )
        return f"{outcome.capitalize()}."

    return _answered(request, reverse("pipelines:approvals"), give)


def _answered(request: HttpRequest, back: str, give: Callable[[], str]) -> HttpResponse:
    """An answer given from a page (`give` answers and says what was done): 204 to htmx, else
    the message and back; refusals as the page shows them (403 and 404 as such)."""
    try:
        said = give()
    except Forbidden as refused:
        raise PermissionDenied(refused.detail) from None
    except NotFound as missing:
        raise Http404(missing.detail) from None
    except ActionError as refused:
        return _refused(request, refused, back)
    if getattr(request, "htmx", False):
        return HttpResponse(status=204)
    messages.success(request, said)
    return redirect(back)


def _exec_approvals(user: Any, *, pending: bool) -> list[Any]:
    """The gateways' exec approvals this person sees (their gateway grants)."""
    from gateways import access as gateway_access
    from gateways import approvals as gateway_approvals
    from gateways.models import ExecApproval

    rows = ExecApproval.objects.select_related("gateway")
    rows = (
        rows.filter(status=ExecApproval.Status.PENDING).order_by("requested_at")
        if pending
        else rows.exclude(status=ExecApproval.Status.PENDING).order_by("-resolved_at", "-id")
    )
    visible = gateway_access.visible_ids(user)
    if visible is not None:
        rows = rows.filter(gateway_id__in=visible)
    return [gateway_approvals.data(r, r.gateway) for r in rows[: 200 if pending else 50]]


@require_POST
@role_required("operator")
def exec_answer(request: HttpRequest, pk: int) -> HttpResponse:
    """Answer a gateway's exec approval (`approval.resolve` on its gateway; first answer
    wins: when someone answered first, that answer is recorded and said)."""
    from gateways import access as gateway_access
    from gateways import approvals as gateway_approvals
    from gateways import commands, frames
    from gateways.models import ExecApproval
    from gateways.protocol import GatewayError

    back = reverse("pipelines:approvals")
    row = ExecApproval.objects.filter(pk=pk).first()
    if row is None or not gateway_access.can_view(request.user, row.gateway_id):
        raise Http404("That approval does not exist.")
    if not gateway_access.can_operate(request.user, row.gateway_id):
        raise PermissionDenied("Answering needs operate on that gateway.")
    decision = request.POST.get("decision", "")
    if decision not in frames.APPROVAL_DECISIONS or decision not in row.allowed:
        return _refused(request, Invalid({"decision": ["Allow once, always allow or deny."]}), back)
    params = {"id": row.external_id, "kind": "exec", "decision": decision}
    try:
        answer = commands.call(row.gateway_id, "approval.resolve", params, timeout=10)
    except commands.Unavailable as unavailable:
        return _refused(request, Unavailable(f"The gateway was not reached: {unavailable}"), back)
    except GatewayError as refused:
        return _refused(request, Conflict(f"The gateway refused: {refused.message}"), back)
    outcome = frames.approval_outcome(answer)
    gateway_approvals.resolved(row.gateway_id, outcome, by=Actor.user(request.user))
    if not outcome.applied:
        said = f"{outcome.resolved_by or 'Someone'} answered first: {outcome.decision or outcome.status}."
        return _refused(request, Conflict(said), back)
    if getattr(request, "htmx", False):
        return HttpResponse(status=204)
    messages.success(request, f"{decision.replace('-', ' ').capitalize()}: {row.command[:80]}")
    return redirect(back)


def _came_from(request: HttpRequest) -> str:
    """The page the form was on (the run's page or the Approvals page), if it is ours."""
    from urllib.parse import urlsplit

    referer = urlsplit(request.headers.get("Referer", ""))
    if referer.netloc and referer.netloc != request.get_host():
        return ""
    return referer.path if referer.path.startswith("/pipelines/") else ""


@require_POST
@role_required("viewer")
def answer(request: HttpRequest, pk: int) -> HttpResponse:
    outcome = request.POST.get("outcome", "")

    def give() -> str:
        approval = approvals.answer(
            Actor.user(request.user),
            request.user,
            pk,
            outcome,  # type: ignore[arg-type]
            request.POST.get("comment", ""),
        )
        return f"{approval.get_outcome_display()}: {approval.step.step_id}."

    return _answered(request, _came_from(request) or reverse("pipelines:approvals"), give)


@csrf_exempt
def webhook(request: HttpRequest, pk: int) -> HttpResponse:
    """POST /api/v1/pipelines/<id>/webhook: a delivery signed per the Standard Webhooks spec
    with the pipeline's secret starts a run (202); no session, no token: the signature is the
    credential (pipelines/triggers.py)."""
    if request.method != "POST":
        refused = json_error(405, "Send webhooks with POST.")
        refused["Allow"] = "POST"
        return refused
    length = request.META.get("CONTENT_LENGTH") or ""
    if length.isdigit() and int(length) > triggers.MAX_BODY:
        return json_error(413, f"Keep the body under {triggers.MAX_BODY:,} bytes.")
    try:
        run, _created = triggers.start_by_webhook(pk, request.body, dict(request.headers))
    except ActionError as refused:
        return error_response(refused)
    return JsonResponse(
        {
            "run": {
                "id": run.pk,
                "number": run.number,
                "state": run.state,
                "url": f"/pipelines/runs/{run.pk}/",
            }
        },
        status=202,
    )


@require_POST
@role_required("admin")
def rotate_triggers(request: HttpRequest, pk: int) -> HttpResponse:
    """New trigger token and webhook secret, shown once on the page that answers."""
    try:
        made = triggers.rotate(Actor.user(request.user), pk)
    except NotFound:
        raise Http404("That pipeline does not exist.") from None
    # Shown on this answer only (never kept in a session or a page that can be fetched again).
    return _detail(request, pk, made)


# --- The form editor ----------------------------------------------------------------------------

_STEP_KEYS = {
    "if": "condition",
    "approval.by": "approval_by",
    "approval.instructions": "approval_instructions",
    "approval.timeout_s": "approval_timeout_s",
    "approval.on_timeout": "on_timeout",
}


def _rows(post: Any, kind: str, form_class: type[forms.Form]) -> list[dict[str, Any]]:
    """The rows the form posted (by their prefixes s0, s1, … / i0, i1, …), as raw values."""
    count = parse_int(post.get(f"{kind}_count"), high=200) or 0
    rows = []
    for n in range(count):
        row: dict[str, Any] = {}
        for name, field in form_class.base_fields.items():
            key = f"{kind}{n}-{name}"
            if isinstance(field, forms.BooleanField):
                row[name] = post.get(key) in ("on", "true", "1")
            else:
                row[name] = post.get(key, "")
        rows.append(row)
    return rows


def _moved(rows: list[dict[str, Any]], action: str, kind: str, blank: dict[str, Any]) -> bool:
    """Apply an add / remove / up / down button of `kind`; whether one was pressed."""
    verb, _, where = action.partition(":")
    if verb == f"add_{kind}":
        rows.append(dict(blank))
        return True
    if not where.isdigit() or int(where) >= len(rows):
        return verb.endswith(f"_{kind}")
    n = int(where)
    if verb == f"remove_{kind}":
        rows.pop(n)
    elif verb == f"up_{kind}" and n > 0:
        rows[n - 1], rows[n] = rows[n], rows[n - 1]
    elif verb == f"down_{kind}" and n < len(rows) - 1:
        rows[n + 1], rows[n] = rows[n], rows[n + 1]
    else:
        return verb.endswith(f"_{kind}")
    return True


@require_http_methods(["GET", "POST"])
@role_required("admin")
def form_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """The definition as a form: fields, inputs and steps (add, remove, move), saved as a new
    version through the same checks as the text."""
    from agents.models import Agent
    from pipelines import forms as pforms

    pipeline = _pipeline(pk) if pk is not None else None
    agents = list(Agent.objects.order_by("name").values_list("name", flat=True))
    problems: list[str] = []
    if request.method == "POST":
        head = pforms.PipelineForm(request.POST)
        steps = _rows(request.POST, "s", pforms.StepForm)
        inputs = _rows(request.POST, "i", pforms.InputForm)
        action = request.POST.get("action", "save")
        if _moved(steps, action, "s", pforms.NEW_STEP) or _moved(
            inputs, action, "i", pforms.NEW_INPUT
        ):
            head = pforms.PipelineForm(initial=request.POST.dict())
            return _render_form(request, pipeline, head, steps, inputs, agents)
        step_forms = [
            pforms.StepForm(
                {f"s{n}-{k}": v for k, v in row.items() if v not in (False, None)},
                prefix=f"s{n}",
                agents=agents,
            )
            for n, row in enumerate(steps)
        ]
        input_forms = [
            pforms.InputForm(
                {f"i{n}-{k}": v for k, v in row.items() if v not in (False, None)}, prefix=f"i{n}"
            )
            for n, row in enumerate(inputs)
        ]
        valid = (
            head.is_valid()
            & all(f.is_valid() for f in step_forms)
            & all(f.is_valid() for f in input_forms)
        )
        if valid:
            data: dict[str, Any] = {
                "name": head.cleaned_data["name"],
                "description": head.cleaned_data["description"],
                "overlap": head.cleaned_data["overlap"],
                "inputs": [pforms.input_data(f.cleaned_data) for f in input_forms],
                "steps": [pforms.step_data(f.cleaned_data) for f in step_forms],
            }
            if head.cleaned_data["cron"].strip():
                data["schedule"] = {
                    "cron": head.cleaned_data["cron"],
                    "timezone": head.cleaned_data["timezone"] or "UTC",
                }
            try:
                definition = actions.check_data(data)
                version = actions.save(
                    Actor.user(request.user), actions.definition_text(definition), pk
                )
            except ActionError as refused:
                problems = _place(refused, head, step_forms, input_forms)
            else:
                messages.success(
                    request, f"Saved “{version.pipeline.name}”, version {version.number}."
                )
                return redirect("pipelines:detail", version.pipeline_id)
        return _render_forms(request, pipeline, head, step_forms, input_forms, problems)
    if pipeline is not None:
        definition = pipeline.current.definition
        head = pforms.PipelineForm(
            initial={
                "name": definition.name,
                "description": definition.description,
                "overlap": definition.overlap,
                "cron": definition.schedule.cron if definition.schedule else "",
                "timezone": definition.schedule.timezone if definition.schedule else "UTC",
            }
        )
        steps = [pforms.initial_step(s) for s in definition.steps]
        inputs = [pforms.initial_input(i) for i in definition.inputs]
    else:
        head = pforms.PipelineForm(initial={"overlap": "skip", "timezone": "UTC"})
        steps = [{**pforms.NEW_STEP, "id": "first", "agent": agents[0] if agents else ""}]
        inputs = []
    return _render_form(request, pipeline, head, steps, inputs, agents)


def _place(
    refused: ActionError,
    head: forms.Form,
    steps: Sequence[forms.Form],
    inputs: Sequence[forms.Form],
) -> list[str]:
    """Each problem the parser named (`steps[1].agent`) on its field; the rest for the page."""
    import re

    rest: list[str] = []
    for where, messages_ in refused.message_dict.items():
        match = re.match(r"^(steps|inputs)\[(\d+)\](?:\.(.+))?$", where)
        for message in messages_:
            if match:
                rows = steps if match.group(1) == "steps" else inputs
                n, field = int(match.group(2)), match.group(3) or ""
                field = _STEP_KEYS.get(field, field) if match.group(1) == "steps" else field
                if (
                    field == "agent"
                    and n < len(rows)
                    and rows[n].cleaned_data.get("kind") == "pool"
                ):
                    field = "pool"
                if n < len(rows) and field in rows[n].fields:
                    rows[n].add_error(field, message)
                elif n < len(rows):
                    rows[n].add_error(None, message)
                else:
                    rest.append(message)
            elif where in ("name", "description", "overlap"):
                head.add_error(where, message)
            elif where.startswith("schedule"):
                head.add_error("cron", message)
            else:
                rest.append(message)
    return rest


def _render_form(
    request: HttpRequest,
    pipeline: Pipeline | None,
    head: forms.Form,
    steps: list[dict[str, Any]],
    inputs: list[dict[str, Any]],
    agents: list[str],
) -> HttpResponse:
    from pipelines import forms as pforms

    step_forms = [
        pforms.StepForm(prefix=f"s{n}", initial=row, agents=agents) for n, row in enumerate(steps)
    ]
    input_forms = [pforms.InputForm(prefix=f"i{n}", initial=row) for n, row in enumerate(inputs)]
    return _render_forms(request, pipeline, head, step_forms, input_forms, [])


def _render_forms(
    request: HttpRequest,
    pipeline: Pipeline | None,
    head: forms.Form,
    step_forms: list[Any],
    input_forms: list[Any],
    problems: list[str],
) -> HttpResponse:
    return render(
        request,
        "pipelines/form.html",
        {
            "pipeline": pipeline,
            "head": head,
            "step_forms": step_forms,
            "input_forms": input_forms,
            "problems": problems,
        },
        status=400
        if problems or any(f.errors for f in [head, *step_forms, *input_forms] if f.is_bound)
        else 200,
    )
