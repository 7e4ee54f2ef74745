"""The runs on a task's page: dispatch it (operators), follow its attempts live, abort one."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from missioncontrol.audit import Actor
from missioncontrol.errors import ActionError, Forbidden
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
        for message in refused.messages:
            messages.error(request, message)
        return redirect("tasks:list")
    if getattr(request, "htmx", False):
        return HttpResponse(status=204)
    return redirect(reverse("tasks:detail", args=[run.task_id]) + "#runs")
