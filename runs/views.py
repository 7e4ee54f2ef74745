"""The runs on a task's page: dispatch it (operators), follow its attempts live, abort one."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from missioncontrol.audit import Actor
from missioncontrol.errors import ActionError, Forbidden, NotFound
from missioncontrol.http import MCRequest
from missioncontrol.roles import role_required
from runs import access, actions, events
from runs.models import Run
from tasks.models import Task

SHOWN = 50  # attempts on the page (the newest)


class DispatchForm(forms.Form):
    instructions = forms.CharField(
        required=False,
        max_length=actions.MAX_INSTRUCTIONS,
        widget=forms.Textarea(
            attrs={"rows": 3, "placeholder": "Anything to add for this attempt (optional)"}
        ),
        label="Instructions",
    )
    land_in = forms.ChoiceField(
        choices=Run.LandIn.choices, initial=Run.LandIn.REVIEW, label="When it succeeds, move to"
    )


def run_context(request: HttpRequest, task: Task) -> dict[str, Any]:
    """What the task page shows of runs: its attempts (newest first) and the dispatch form."""
    runs = list(Run.objects.filter(task=task).order_by("-attempt")[:SHOWN])
    return {
        "runs": [events.run_data(r) for r in runs],
        "run_active": any(r.active for r in runs),
        "dispatch_form": DispatchForm(),
        "dispatch_nonce": uuid.uuid4().hex,
    }


@require_POST
@role_required("operator")
def dispatch(request: HttpRequest, pk: int) -> HttpResponse:
    form = DispatchForm(request.POST)
    back = reverse("tasks:detail", args=[pk]) + "#runs"
    if not form.is_valid():
        for errors in form.errors.values():
            for message in errors:
                messages.error(request, str(message))
        return redirect(back)
    try:
        access.check_dispatch(request.user, pk)
        run, _created = actions.dispatch(
            Actor.user(request.user),
            actions.Dispatch(
                task_id=pk,
                instructions=form.cleaned_data["instructions"],
                land_in=form.cleaned_data["land_in"],
                # A double click sends the form's nonce twice: one run.
                idempotency_key=f"form:{request.POST.get('nonce', '')}"
                if request.POST.get("nonce")
                else "",
            ),
        )
    except Forbidden as refused:
        raise PermissionDenied(refused.detail) from None
    except ActionError as refused:
        if getattr(request, "htmx", False):  # the board's menu and its D key: say it there
            return HttpResponse(
                " ".join(refused.messages), status=refused.status, content_type="text/plain"
            )
        for message in refused.messages:
            messages.error(request, message)
        return redirect(back)
    if getattr(request, "htmx", False):
        return HttpResponse(status=204)
    messages.success(request, f"Dispatched to {run.agent_name}: attempt {run.attempt}.")
    return redirect(back)


@require_POST
@role_required("operator")
def abort(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        run = access.check_operate_run(request.user, pk)
        actions.abort(Actor.user(request.user), pk)
        if problem := access.stop_on_gateway(run):
            messages.warning(request, problem)
    except Forbidden as refused:
        raise PermissionDenied(refused.detail) from None
    except ActionError as refused:
        return _refused(request, refused)
    if getattr(request, "htmx", False):
        return HttpResponse(status=204)
    return redirect(reverse("tasks:detail", args=[run.task_id]) + "#runs")


def _refused(request: HttpRequest, refused: ActionError) -> HttpResponse:
    """An action the page asked with htmx says why in plain text (the page's toast shows it);
    a plain form post says it as a message on the board."""
    if getattr(request, "htmx", False):
        return HttpResponse(
            " ".join(refused.messages), status=refused.status, content_type="text/plain"
        )
    for message in refused.messages:
        messages.error(request, message)
    return redirect("tasks:list")


@require_POST
@role_required("operator")
def retry(request: HttpRequest, pk: int) -> HttpResponse:
    """A new attempt of a failed, timed-out, aborted or lost run (its instructions, its column)."""
    try:
        run = access.check_operate_run(request.user, pk)
        access.check_dispatch(request.user, run.task_id)
        # Keyed by the attempt: a double click (or two tabs) retries it once.
        again, _created = actions.retry(Actor.user(request.user), pk, idempotency_key=f"retry:{pk}")
    except Forbidden as refused:
        raise PermissionDenied(refused.detail) from None
    except ActionError as refused:
        return _refused(request, refused)
    if getattr(request, "htmx", False):
        return HttpResponse(status=204)
    messages.success(request, f"Retried with {again.agent_name}: attempt {again.attempt}.")
    return redirect(reverse("tasks:detail", args=[again.task_id]) + "#runs")


@require_safe
@role_required("viewer")
def detail(request: MCRequest, pk: int) -> HttpResponse:
    """One attempt in full: the brief the agent was given, its timeline, the final reply, the
    error, usage and where it ran. Loaded into its entry when opened on the task page (htmx);
    a page of its own when visited (a link from a notification or an audit row)."""
    try:
        run = access.visible_run(request.user, pk)
    except NotFound:
        raise Http404("That run does not exist.") from None
    template = "runs/_run_detail.html" if request.htmx else "runs/detail.html"
    return render(request, template, {"run": run})
