from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from agents import actions
from agents.forms import KeyForm
from agents.models import Agent, AgentKey
from billing.models import UsageRecord
from missioncontrol.audit import Actor
from missioncontrol.context_processors import live_seq_for
from missioncontrol.roles import role_required
from tasks.models import Task

STATUS_ORDER = ["error", "busy", "idle", "stale", "offline"]


@require_safe
@role_required("viewer")
def agent_list(request: HttpRequest) -> HttpResponse:
    live_seq_for(request)
    status = request.GET.get("status", "")
    source = request.GET.get("source", "")
    framework = request.GET.get("framework", "")
    qs = Agent.objects.by_attention().select_related("gateway")
    if status in Agent.Status.values:
        qs = qs.filter(status=status)
    if source in Agent.Source.values:
        qs = qs.filter(source=source)
    if framework:
        qs = qs.filter(framework=framework)
    counts = actions.status_counts()
    frameworks = sorted(
        set(Agent.objects.exclude(framework="").values_list("framework", flat=True))
    )
    current = {
        t.pk: t
        for t in Task.objects.filter(
            pk__in=[a for a in qs.values_list("current_task_id", flat=True) if a]
        )
    }
    agents = list(qs[:1000])
    for agent in agents:
        agent.current_task = current.get(agent.current_task_id or 0)  # type: ignore[attr-defined]
    return render(
        request,
        "agents/list.html",
        {
            "agents": agents,
            "counts": [(s, Agent.Status(s).label, counts[s]) for s in STATUS_ORDER],
            "online": counts["busy"] + counts["idle"] + counts["error"],
            "filters": {"status": status, "source": source, "framework": framework},
            "frameworks": frameworks,
            "filtered": bool(status or source or framework),
        },
    )


@require_safe
@role_required("viewer")
def agent_detail(request: HttpRequest, name: str) -> HttpResponse:
    live_seq_for(request)
    agent = get_object_or_404(Agent.objects.select_related("gateway"), name=name)
    usage = UsageRecord.objects.filter(agent=agent)
    recent = list(usage.order_by("-occurred_at")[:20])
    return render(
        request,
        "agents/detail.html",
        {
            "agent": agent,
            "history": agent.status_changes.all()[:50],
            "messages_": agent.messages.all()[:30],
            "tasks": Task.objects.on_board()
            .filter(assignee_agent=agent)
            .exclude(status="done")
            .order_by("priority", "position")[:50],
            "usage": recent,
            # What it reported last: heartbeats carry the model, bulk usage reports do too.
            "model": agent.model or (recent[0].model if recent else ""),
            "usage_total": usage.count(),
            "keys": agent.keys.all(),
        },
    )


@require_http_methods(["GET", "POST"])
@role_required("admin")
def key_list(request: HttpRequest) -> HttpResponse:
    form = KeyForm(request.POST or None, initial={"agent": request.GET.get("agent")})
    new_key = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        _key, new_key = actions.issue_key(
            Actor.user(request.user),
            kind=data["kind"],
            agent=data.get("agent"),
            name=data.get("name") or "",
            max_uses=data.get("max_uses"),
            expires_at=data.get("expires_at"),
        )
        form = KeyForm()
    show_revoked = request.GET.get("revoked") == "1"
    qs = AgentKey.objects.select_related("agent", "created_by")
    if not show_revoked:
        qs = qs.filter(revoked_at__isnull=True)
    return render(
        request,
        "agents/keys.html",
        {
            "form": form,
            "keys": qs[:500],
            "new_key": new_key,
            "show_revoked": show_revoked,
            "now": timezone.now(),
        },
        status=422 if request.method == "POST" and new_key is None else 200,
    )


@require_POST
@role_required("admin")
def key_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(AgentKey, pk=pk)
    actions.revoke_key(Actor.user(request.user), key.pk)
    messages.success(request, f"Revoked {key}. It stops working now.")
    return redirect("agents:keys")
