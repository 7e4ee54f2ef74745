"""The Crons pages: every scheduled job of every gateway the user sees, and direct checks, with
their health; a job's page with its run history. Operators run a gateway's job now; admins
enable/disable jobs, tune the monitoring and manage direct checks. Plus the check-in endpoint
the direct checks' jobs call (no session: its unguessable id is its credential)."""

from __future__ import annotations

import uuid
from typing import Any, cast

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Case, Count, IntegerField, Q, QuerySet, Value, When
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from crons import actions, events
from crons.forms import CheckForm, MonitoringForm
from crons.models import Job, Run
from crons.presenters import job_view, run_view
from gateways import access, commands, frames
from gateways.context_processors import chosen_gateway_id
from gateways.protocol import GatewayError
from missioncontrol.audit import Actor
from missioncontrol.context_processors import live_seq_for
from missioncontrol.errors import ActionError, NotFound, RateLimited, error_response, json_error
from missioncontrol.ratelimit import TokenBucket
from missioncontrol.roles import has_role, role_required
from missioncontrol.templatetags.mc import millis

PAGE = 100
HISTORY = 100
CHART_RUNS = 40
CHART_W, CHART_H = 600, 120

# Urgency first: what needs someone at the top.
_ORDER = Case(
    When(health=Job.Health.LATE, then=Value(0)),
    When(health=Job.Health.FAILING, then=Value(1)),
    When(health=Job.Health.RUNNING, then=Value(2)),
    When(health=Job.Health.OK, then=Value(3)),
    default=Value(4),
    output_field=IntegerField(),
)
HEALTH_FILTERS = [
    ("", "All"),
    ("attention", "Needs attention"),
    ("late", "Late"),
    ("failing", "Failing"),
    ("running", "Running"),
    ("ok", "OK"),
    ("paused", "Paused"),
]


def _visible(request: HttpRequest) -> QuerySet[Job]:
    """Jobs of the gateways this user sees (grants narrow it), and every direct check."""
    jobs = Job.objects.listed().select_related("gateway", "agent")
    ids = access.visible_ids(request.user)
    if ids is not None:
        jobs = jobs.filter(Q(gateway__isnull=True) | Q(gateway_id__in=ids))
    return jobs


def _job(request: HttpRequest, pk: int) -> Job:
    job = _visible(request).filter(pk=pk).first()
    if job is None:
        raise Http404("That job does not exist, or is not yours to see.")
    return job


@require_safe
@role_required("viewer")
def job_list(request: HttpRequest) -> HttpResponse:
    live_seq_for(request)
    jobs = _visible(request)
    chosen = {
        "health": request.GET.get("health", ""),
        "source": request.GET.get("source", ""),
    }
    if chosen["health"] == "attention":
        jobs = jobs.filter(health__in=[Job.Health.LATE, Job.Health.FAILING])
    elif chosen["health"] in Job.Health.values:
        jobs = jobs.filter(health=chosen["health"])
    else:
        chosen["health"] = ""
    if chosen["source"] in Job.Source.values:
        jobs = jobs.filter(source=chosen["source"])
    else:
        chosen["source"] = ""
    gateway_id = chosen_gateway_id(request)
    if gateway_id is not None:
        jobs = jobs.filter(gateway_id=gateway_id)
    page = Paginator(jobs.order_by(_ORDER, "name", "pk"), PAGE).get_page(request.GET.get("page"))
    rows = [job_view(events.job_data(j)) for j in page.object_list]
    query = "&".join(f"{k}={v}" for k, v in chosen.items() if v)
    counts = dict(
        _visible(request)
        .order_by()
        .values("health")
        .annotate(n=Count("pk"))
        .values_list("health", "n")
    )
    return render(
        request,
        "crons/list.html",
        {
            "jobs": rows,
            "page": page,
            "query": query,
            "chosen": chosen,
            "filtered": bool(chosen["health"] or chosen["source"]),
            "health_filters": [
                (key, label, f"?health={key}" if key else "?") for key, label in HEALTH_FILTERS
            ],
            "attention": counts.get("late", 0) + counts.get("failing", 0),
            "counts": counts,
        },
    )


def _chart(runs: list[Run]) -> dict[str, Any]:
    """Durations of the latest runs as SVG bars, oldest first (failed runs in their colour)."""
    shown = [r for r in reversed(runs[:CHART_RUNS]) if r.duration_ms is not None]
    peak = max((r.duration_ms or 0 for r in shown), default=0) or 1
    slot = CHART_W / max(1, len(shown))
    width = max(1.0, slot * 0.7)
    bars = []
    for index, run in enumerate(shown):
        h = max(1.0, (run.duration_ms or 0) / peak * (CHART_H - 8))
        bars.append(
            {
                "x": f"{index * slot + (slot - width) / 2:.2f}",
                "y": f"{CHART_H - h:.2f}",
                "w": f"{width:.2f}",
                "h": f"{h:.2f}",
                "status": run.status,
                "title": f"{run.started_at:%b %-d %H:%M} · {millis(run.duration_ms)} · {run.status}",
            }
        )
    return {"bars": bars, "w": CHART_W, "h": CHART_H, "peak": millis(peak), "empty": not bars}


def _streaks(runs: list[Run]) -> list[dict[str, Any]]:
    """Runs of consecutive failures in the history shown, newest first (skipped runs neither
    break nor extend a streak)."""
    found: list[dict[str, Any]] = []
    current: list[Run] = []
    for run in [*runs, None]:
        if run is not None and run.status == Run.Status.FAILED:
            current.append(run)
            continue
        if run is not None and run.status in (Run.Status.SKIPPED, Run.Status.RUNNING):
            continue
        if current:
            found.append(
                {"count": len(current), "from": current[-1].started_at, "to": current[0].started_at}
            )
            current = []
    return found[:5]


@require_safe
@role_required("viewer")
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    live_seq_for(request)
    job = _job(request, pk)
    form = MonitoringForm(initial=_initial(job)) if has_role(request.user, "admin") else None
    return _detail_page(request, job, form)


def _detail_page(
    request: HttpRequest, job: Job, form: MonitoringForm | None, status: int = 200
) -> HttpResponse:
    """A job's page: its head, runs, chart and streaks; for admins its settings `form` and,
    for a direct check, the check-in URL."""
    runs = list(job.runs.all()[:HISTORY])
    admin = has_role(request.user, "admin")
    return render(
        request,
        "crons/detail.html",
        {
            "job": job_view(events.job_data(job)),
            "row": job,
            "runs": [run_view(events.run_data(r)) for r in runs],
            "chart": _chart(runs),
            "streaks": _streaks(runs),
            "can_run": not job.is_direct and access.can_operate(request.user, job.gateway_id),
            "can_admin": admin,
            "checkin_url": request.build_absolute_uri(reverse("crons:checkin", args=[job.token]))
            if admin and job.is_direct and job.token
            else "",
            "form": form,
        },
        status=status,
    )


def _initial(job: Job) -> dict[str, Any]:
    schedule = job.parsed_schedule
    return {
        "name": job.name,
        "description": job.description,
        "grace_min": job.grace_s // 60,
        "failure_threshold": job.failure_threshold,
        "kind": schedule.kind if schedule else "cron",
        "expr": schedule.expr if schedule else "",
        "tz": (schedule.tz if schedule else "") or "UTC",
        "every_min": schedule.every_s // 60 if schedule and schedule.every_s else 60,
    }


_FIELDS = {"grace_s": "grace_min", "every_s": "every_min"}


def _form_errors(form: Any, error: ActionError) -> None:
    for field, problems in error.message_dict.items():
        field = _FIELDS.get(field, field)
        for problem in problems:
            form.add_error(field if field in form.fields else None, problem)


@require_POST
@role_required("operator")
def job_run(request: HttpRequest, pk: int) -> HttpResponse:
    """Run a gateway's job now (`cron.run`, mode force); its start and end arrive live."""
    job = _job(request, pk)
    if job.is_direct or job.gateway_id is None:
        messages.error(request, "A direct check runs on its own schedule, outside Mission Control.")
        return redirect("crons:detail", pk=job.pk)
    if not access.can_operate(request.user, job.gateway_id):
        raise PermissionDenied("You may not run jobs on this gateway.")
    answered, answer = _ask_gateway(
        request, job, "cron.run", {"id": job.external_id, "mode": "force"}, "Not run"
    )
    if answered:
        actions.record_run_requested(Actor.user(request.user), job, frames.run_id(answer))
        messages.success(request, f"{job.name}: run requested; it shows here as it starts.")
    return redirect("crons:detail", pk=job.pk)


def _ask_gateway(
    request: HttpRequest, job: Job, method: str, params: dict[str, Any], not_done: str
) -> tuple[bool, Any]:
    """(True, its answer), or (False, None) with the gateway's refusal or absence shown."""
    assert job.gateway_id is not None
    try:
        return True, commands.call(job.gateway_id, method, params)
    except GatewayError as refused:
        messages.error(request, f"The gateway refused: {refused.message}")
    except commands.Unavailable as unavailable:
        messages.error(request, f"{not_done}: {unavailable}")
    return False, None


@require_POST
@role_required("admin")
def job_enabled(request: HttpRequest, pk: int) -> HttpResponse:
    """Enable or disable a job: a gateway's on the gateway (`cron.update`), then here."""
    job = _job(request, pk)
    enabled = request.POST.get("enabled") == "1"
    if not job.is_direct and job.gateway_id is not None:
        patch = {"id": job.external_id, "patch": {"enabled": enabled}}
        if not _ask_gateway(request, job, "cron.update", patch, "Not changed")[0]:
            return redirect("crons:detail", pk=job.pk)
    actions.record_enabled(Actor.user(request.user), job.pk, enabled)
    messages.success(request, f"{job.name} {'enabled' if enabled else 'disabled'}.")
    return redirect("crons:detail", pk=job.pk)


@require_POST
@role_required("admin")
def job_settings(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(request, pk)
    form = MonitoringForm(request.POST)
    if form.is_valid():
        try:
            actions.update_job(
                Actor.user(request.user), job.pk, cast(actions.CheckSettings, form.cleaned_data)
            )
        except ActionError as error:
            _form_errors(form, error)
        else:
            messages.success(request, "Monitoring settings saved.")
            return redirect("crons:detail", pk=job.pk)
    return _detail_page(request, job, form, status=400)


@require_http_methods(["GET", "POST"])
@role_required("admin")
def check_new(request: HttpRequest) -> HttpResponse:
    form = CheckForm(
        request.POST or None,
        initial={
            "grace_min": 5,
            "failure_threshold": 1,
            "kind": "cron",
            "tz": "UTC",
            "every_min": 60,
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            job = actions.create_check(
                Actor.user(request.user), cast(actions.CheckSettings, form.cleaned_data)
            )
        except ActionError as error:
            _form_errors(form, error)
        else:
            messages.success(request, "Check created: point your job at its check-in URL below.")
            return redirect("crons:detail", pk=job.pk)
    return render(request, "crons/new.html", {"form": form}, status=400 if form.errors else 200)


@require_POST
@role_required("admin")
def check_delete(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(request, pk)
    try:
        actions.delete_check(Actor.user(request.user), job.pk)
    except ActionError as error:
        messages.error(request, str(error.detail))
        return redirect("crons:detail", pk=job.pk)
    messages.success(request, f"Check {job.name} deleted.")
    return redirect("crons:list")


@require_POST
@role_required("admin")
def check_rotate(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(request, pk)
    try:
        actions.rotate_token(Actor.user(request.user), job.pk)
    except ActionError as error:
        messages.error(request, str(error.detail))
    else:
        messages.success(request, "New check-in URL: the old one no longer works.")
    return redirect("crons:detail", pk=job.pk)


# --- Check-ins (the jobs themselves) -----------------------------------------------------------

# Per check: a job pinging in a tight loop is refused, not stored a thousand times.
_per_check = TokenBucket("cron-checkin", rate=1.0, burst=10)
# Per client address, for ids that do not exist (guessing costs time).
_misses = TokenBucket("cron-checkin-miss", rate=0.5, burst=10)


@csrf_exempt
def checkin(request: HttpRequest, token: uuid.UUID, signal: str = "success") -> HttpResponse:
    """POST /api/v1/checkins/<uuid>[/start|/fail]: a run's start, success or failure; the body
    (≤ 10,000 bytes, else 413) is kept as the run's output."""
    if request.method != "POST":
        response = json_error(405, "Check in with POST.")
        response["Allow"] = "POST"
        return response
    wait = _per_check.take(str(token))
    if wait:
        return error_response(RateLimited("Too many check-ins for this check.", retry_after=wait))
    length = request.META.get("CONTENT_LENGTH") or ""
    if length.isdigit() and int(length) > actions.CHECKIN_BODY_MAX:
        return _too_large()
    body = request.body
    if len(body) > actions.CHECKIN_BODY_MAX:
        return _too_large()
    try:
        run = actions.checkin(token, signal, body.decode("utf-8", errors="replace"))  # type: ignore[arg-type]
    except NotFound:
        address = request.META.get("REMOTE_ADDR", "")
        missed = _misses.take(address)
        if missed:
            return error_response(
                RateLimited("Too many unknown check ids from this address.", retry_after=missed)
            )
        return json_error(404, "No check has that id.")
    return JsonResponse({"ok": True, "run": run.pk, "status": run.status})


def _too_large() -> HttpResponse:
    return json_error(
        413,
        f"A check-in's body is limited to {actions.CHECKIN_BODY_MAX} bytes.",
    )
