"""The Pipelines pages: the list (with each pipeline's last 30 days), a pipeline (its steps, its
inputs form, its runs, its versions), the editor (admins; text with every problem by line),
a run's page (its steps as a graph, live), and the Approvals inbox."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from missioncontrol.audit import Actor
from missioncontrol.context_processors import live_seq_for
from missioncontrol.errors import ActionError, Forbidden, NotFound
from missioncontrol.roles import role_required
from pipelines import access, actions, approvals, events
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
    )[:RUNS_SHOWN]
    return render(
        request,
        "pipelines/list.html",
        {
            "pipelines": pipelines,
            "recent": [events.run_data(r) for r in recent],
            "pending": Approval.objects.pending().count(),
        },
    )


@require_safe
@role_required("viewer")
def detail(request: HttpRequest, pk: int) -> HttpResponse:
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
        },
    )


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
    back = _came_from(request) or reverse("pipelines:approvals")
    try:
        approval = approvals.answer(
            Actor.user(request.user),
            request.user,
            pk,
            outcome,  # type: ignore[arg-type]
            request.POST.get("comment", ""),
        )
    except Forbidden as refused:
        raise PermissionDenied(refused.detail) from None
    except ActionError as refused:
        return _refused(request, refused, back)
    if getattr(request, "htmx", False):
        return HttpResponse(status=204)
    messages.success(request, f"{approval.get_outcome_display()}: {approval.step.step_id}.")
    return redirect(back)
