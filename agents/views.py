from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from agents import actions, events, rows
from agents import sessions as agent_sessions
from agents.forms import KeyForm
from agents.models import Agent, AgentKey, AgentQuerySet, AgentSession, AgentSessionQuerySet
from billing import budgets, reports
from billing.models import UsageRecord
from gateways import access, commands, frames
from gateways.context_processors import chosen_gateway_id
from gateways.models import Gateway
from gateways.protocol import GatewayError
from missioncontrol.audit import Actor
from missioncontrol.context_processors import live_seq_for
from missioncontrol.errors import Invalid
from missioncontrol.http import parse_int, safe_next
from missioncontrol.roles import role_required
from tasks.models import Task

STATUS_ORDER = ["error", "busy", "idle", "stale", "offline"]


def _visible_agents(request: HttpRequest, qs: AgentQuerySet) -> AgentQuerySet:
    """Direct agents, and those of the gateways this user may see (grants narrow it)."""
    return qs.visible_to(request.user)


def _visible_sessions(request: HttpRequest, qs: AgentSessionQuerySet) -> AgentSessionQuerySet:
    return qs.visible_to(request.user)


def _visible_gateways(request: HttpRequest) -> QuerySet[Gateway]:
    ids = access.visible_ids(request.user)
    return Gateway.objects.all() if ids is None else Gateway.objects.filter(pk__in=ids)


def _operate(request: HttpRequest, gateway_id: int | None) -> None:
    """Acting on a gateway's agents and sessions: the operator role, or an operate grant."""
    if not access.can_operate(request.user, gateway_id):
        raise PermissionDenied(
            "This needs the operator role (or an operate grant on this gateway)."
        )


@require_safe
@role_required("viewer")
def agent_list(request: HttpRequest) -> HttpResponse:
    live_seq_for(request)
    status = request.GET.get("status", "")
    source = request.GET.get("source", "")
    framework = request.GET.get("framework", "")
    qs = _visible_agents(request, Agent.objects.by_attention().select_related("gateway"))
    chosen = chosen_gateway_id(request)
    if chosen is not None:
        # One gateway chosen in the shell: its agents, and the direct ones (labelled so).
        qs = qs.filter(Q(gateway__isnull=True) | Q(gateway_id=chosen))
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
    agents = list(qs[:1000])
    facts = events.row_facts(agents)
    pauses = budgets.paused({a.pk for a in agents}, {a.pk: a.gateway_id for a in agents})
    paused_by: dict[int, dict[str, Any]] = {}  # budget → its pause and the agents it holds
    for agent in agents:
        rows.with_facts(agent, facts[agent.pk])
        if (pause := pauses.get(agent.pk)) is not None:
            held = paused_by.setdefault(pause.budget_id, {"pause": pause, "agents": []})
            held["agents"].append(agent)
    return render(
        request,
        "agents/list.html",
        {
            "agents": agents,
            "counts": [(s, Agent.Status(s).label, counts[s]) for s in STATUS_ORDER],
            "online": counts["busy"] + counts["idle"] + counts["error"],
            "filters": {"status": status, "source": source, "framework": framework},
            "frameworks": frameworks,
            "filtered": bool(status or source or framework or chosen),
            "paused_by": list(paused_by.values()),
        },
    )


def fold_messages(messages: list[Any]) -> list[dict[str, Any]]:
    """Heartbeat messages, newest first, with runs of the same status and words folded into
    one line (#31.16: a run sent the same line 50 times)."""
    folded: list[dict[str, Any]] = []
    for m in messages:
        last = folded[-1] if folded else None
        if last is not None and (last["status"], last["message"]) == (m.status, m.message):
            last["count"] += 1
            last["since"] = m.created_at
            continue
        folded.append(
            {
                "status": m.status,
                "message": m.message,
                "at": m.created_at,
                "since": m.created_at,
                "count": 1,
            }
        )
    return folded


@require_safe
@role_required("viewer")
def agent_detail(request: HttpRequest, name: str) -> HttpResponse:
    live_seq_for(request)
    agent = get_object_or_404(
        _visible_agents(request, Agent.objects.select_related("gateway")), name=name
    )
    usage = UsageRecord.objects.filter(agent=agent)
    recent = list(usage.order_by("-occurred_at")[:20])
    spend = reports.agent_summary(agent.pk, timezone.now(), timezone.get_current_timezone())
    pause = budgets.paused({agent.pk}, {agent.pk: agent.gateway_id}).get(agent.pk)
    return render(
        request,
        "agents/detail.html",
        {
            "agent": agent,
            "history": agent.status_changes.all()[:50],
            "messages_": fold_messages(list(agent.messages.all()[:300]))[:30],
            "tasks": Task.objects.on_board()
            .filter(assignee_agent=agent)
            .exclude(status="done")
            .order_by("priority", "position")[:50],
            "usage": recent,
            # What it reported last: heartbeats carry the model, bulk usage reports do too.
            "model": agent.model or (recent[0].model if recent else ""),
            "usage_total": usage.count(),
            "spend": spend,
            "keys": agent.keys.all(),
            "sessions": agent.sessions.filter(gone=False).by_activity()[:20],
            "nonce": uuid.uuid4().hex,
            "may_operate": access.can_operate(request.user, agent.gateway_id),
            "pause": pause,
            "running": list(agent.sessions.filter(gone=False).running()[:20]) if pause else [],
        },
    )


@require_http_methods(["GET", "POST"])
@role_required("admin")
def key_list(request: HttpRequest) -> HttpResponse:
    form = KeyForm(request.POST or None, initial={"agent": request.GET.get("agent")})
    new_key = None
    issued: AgentKey | None = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        issued, new_key = actions.issue_key(
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
            "issued": issued,
            # For the snippets shown with a new key: this server as the agent reaches it.
            "mc_url": request.build_absolute_uri("/").rstrip("/"),
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


# --- Sessions (from the gateways) ---------------------------------------------------------------

SESSION_LIST_LIMIT = 500


def transcript_lines(messages: Any) -> list[dict[str, Any]]:
    """`chat.history` messages as the transcript shows them (role, text, time, id)."""
    return [
        {"id": line.message_id, "role": line.role, "text": line.text, "at": line.at}
        for line in frames.transcript(messages)
    ]


@require_safe
@role_required("viewer")
def session_list(request: HttpRequest) -> HttpResponse:
    live_seq_for(request)
    qs = _visible_sessions(
        request, AgentSession.objects.by_activity().select_related("gateway", "agent")
    )
    # The shell's gateway switch, unless the page's own filter says otherwise.
    chosen = chosen_gateway_id(request)
    gateway = request.GET.get("gateway", str(chosen) if chosen else "")
    status = request.GET.get("status", "")
    agent = request.GET.get("agent", "")
    if (gateway_id := parse_int(gateway)) is not None:
        qs = qs.filter(gateway_id=gateway_id)
    if status == "running":
        qs = qs.filter(has_active_run=True, gone=False)
    elif status == "gone":
        qs = qs.filter(gone=True)
    elif status:
        qs = qs.filter(status=status, gone=False)
    else:
        qs = qs.filter(gone=False)
    if agent:
        qs = qs.filter(agent__name=agent)
    return render(
        request,
        "agents/sessions.html",
        {
            "rows": [rows.row(s) for s in qs[:SESSION_LIST_LIMIT]],
            "gateways": _visible_gateways(request),
            "filters": {"gateway": gateway, "status": status, "agent": agent},
            "filtered": bool(gateway or status or agent),
            "statuses": sorted(
                set(AgentSession.objects.exclude(status="").values_list("status", flat=True))
            ),
        },
    )


@require_safe
@role_required("viewer")
def session_detail(request: HttpRequest, pk: int) -> HttpResponse:
    live_seq_for(request)
    session = get_object_or_404(
        _visible_sessions(request, AgentSession.objects.select_related("gateway", "agent")), pk=pk
    )
    lines: list[dict[str, Any]] = []
    problem = ""
    try:
        history = commands.call(
            session.gateway_id,
            "chat.history",
            {"sessionKey": session.key, "limit": 200},
            timeout=HISTORY_TIMEOUT_S,
        )
        lines = transcript_lines(history.get("messages") if isinstance(history, dict) else None)
    except commands.Unavailable as unavailable:
        problem = f"The transcript lives on the gateway, which cannot be asked now: {unavailable}"
    except GatewayError as refused:
        problem = f"The gateway refused the transcript: {refused.message}"
    return render(
        request,
        "agents/session.html",
        {
            "session": session,
            "head": rows.head(session),
            "lines": lines,
            "problem": problem,
            "nonce": uuid.uuid4().hex,
            "may_operate": access.can_operate(request.user, session.gateway_id),
            "spend": _session_spend(session),
        },
    )


@require_safe
@role_required("viewer")
def session_facts(request: HttpRequest, pk: int) -> HttpResponse:
    """The session page's Cost and Details cards alone: the page fetches them again when its
    session changes or usage is recorded (at most once a second; live.js data-live-fetch)."""
    session = get_object_or_404(
        _visible_sessions(request, AgentSession.objects.select_related("gateway", "agent")), pk=pk
    )
    return render(
        request,
        "agents/session.html#session_facts",
        {"session": session, "spend": _session_spend(session)},
    )


def _session_spend(session: AgentSession) -> dict[str, Any] | None:
    """What the session cost by our prices (usage records keep its key, cut to 128)."""
    if session.agent is None:
        return None
    key = (session.agent.pk, session.key[:128])
    found = reports.session_costs([key]).get(key)
    return {
        "t": found or reports.Totals(),
        "href": reverse("billing:costs")
        + "?"
        + urlencode(
            {"range": "all", "agent": session.agent.name, "session": key[1], "by": "model"}
        ),
    }


HISTORY_TIMEOUT_S = 5.0


def _session_command(
    request: HttpRequest,
    pk: int,
    method: str,
    params: dict[str, Any],
    verb: str,
    done: str,
    *,
    key_param: str = "sessionKey",
) -> HttpResponse:
    """Send `method` about a session, naming it by `key_param` (the chat methods take
    `sessionKey`, the session methods `key`: the gateway refuses any other name)."""
    session = get_object_or_404(
        _visible_sessions(request, AgentSession.objects.select_related("gateway")), pk=pk
    )
    if verb != "session.reset":
        _operate(request, session.gateway_id)
    try:
        answer = commands.call(session.gateway_id, method, {key_param: session.key, **params})
    except commands.Unavailable as unavailable:
        messages.error(request, f"Not sent: {unavailable}")
    except GatewayError as refused:
        messages.error(request, f"The gateway refused it: {refused.message} ({refused.code})")
    else:
        if frames.aborted_nothing(answer):
            # Said as it is, and nothing audited: no run was stopped.
            messages.info(request, "Nothing to abort: no run of this session was going.")
            return redirect(safe_next(request, reverse("agents:session", args=[session.pk])))
        shown = {
            k: (v[:500] if isinstance(v, str) else v)
            for k, v in params.items()
            if k != "idempotencyKey"
        }
        if run := frames.run_id(answer):
            shown["run_id"] = run
        agent_sessions.record_session_action(Actor.user(request.user), session, verb, shown)
        messages.success(request, done)
    return redirect(safe_next(request, reverse("agents:session", args=[session.pk])))


@require_POST
@role_required("viewer")
def session_send(request: HttpRequest, pk: int) -> HttpResponse:
    text = (request.POST.get("message") or "").strip()
    if not text:
        messages.error(request, "Type a message to send.")
        return redirect("agents:session", pk=pk)
    if len(text) > MAX_MESSAGE:
        messages.error(request, f"Keep the message under {MAX_MESSAGE:,} characters.")
        return redirect("agents:session", pk=pk)
    return _session_command(
        request,
        pk,
        "chat.send",
        # A retried POST (double click) sends once: the key is the form's own nonce.
        {"message": text, "idempotencyKey": request.POST.get("nonce") or uuid.uuid4().hex},
        "session.message_sent",
        "Sent. The reply appears below as the agent writes it.",
    )


MAX_MESSAGE = 20000


@require_POST
@role_required("operator")
def agent_runs(request: HttpRequest, name: str) -> HttpResponse:
    """The agent's run settings: runs at once, auto-dispatch."""
    agent = get_object_or_404(_visible_agents(request, Agent.objects.all()), name=name)
    _operate(request, agent.gateway_id)
    max_runs = parse_int(request.POST.get("max_runs"), low=1, high=20)
    if max_runs is None:
        messages.error(request, "Runs at once: a whole number from 1 to 20.")
    else:
        try:
            actions.set_run_settings(
                Actor.user(request.user),
                agent.pk,
                max_runs=max_runs,
                auto_dispatch=request.POST.get("auto_dispatch") == "1",
                labels=actions.parse_labels(request.POST.get("labels", "")),
            )
        except Invalid as refused:
            for message in refused.messages:
                messages.error(request, message)
        else:
            messages.success(request, "Saved.")
    return redirect(reverse("agents:detail", args=[agent.name]) + "#agent-runs")


@require_POST
@role_required("viewer")
def agent_message(request: HttpRequest, name: str) -> HttpResponse:
    """Message a gateway agent in its main session (`agent:<id>:main`), then watch it there."""
    agent = get_object_or_404(
        _visible_agents(request, Agent.objects.select_related("gateway")), name=name
    )
    _operate(request, agent.gateway_id)
    if agent.gateway_id is None or not agent.external_id:
        messages.error(request, "Only an agent of a connected gateway can be messaged here.")
        return redirect("agents:detail", name=agent.name)
    text = (request.POST.get("message") or "").strip()
    if not text or len(text) > MAX_MESSAGE:
        messages.error(request, f"Type a message (up to {MAX_MESSAGE:,} characters).")
        return redirect("agents:detail", name=agent.name)
    key = f"agent:{agent.external_id}:main"
    # The row first: the gateway's echo of the message (its `session.message`) can reach the
    # connector before chat.send's answer reaches us, and a line of an unknown session is
    # dropped (the page then showed neither it nor, from the history it read, the reply).
    session = agent_sessions.ensure_gateway_session(agent.gateway_id, key, agent)
    try:
        answer = commands.call(
            agent.gateway_id,
            "chat.send",
            {
                "sessionKey": key,
                "message": text,
                "idempotencyKey": request.POST.get("nonce") or uuid.uuid4().hex,
            },
        )
    except commands.Unavailable as unavailable:
        messages.error(request, f"Not sent: {unavailable}")
        return redirect("agents:detail", name=agent.name)
    except GatewayError as refused:
        messages.error(request, f"The gateway refused it: {refused.message} ({refused.code})")
        return redirect("agents:detail", name=agent.name)
    detail: dict[str, Any] = {"message": text[:500]}
    if run := frames.run_id(answer):
        detail["run_id"] = run
    agent_sessions.record_session_action(
        Actor.user(request.user), session, "session.message_sent", detail
    )
    messages.success(request, "Sent. The reply appears below as the agent writes it.")
    return redirect("agents:session", pk=session.pk)


@require_POST
@role_required("viewer")
def session_abort(request: HttpRequest, pk: int) -> HttpResponse:
    return _session_command(request, pk, "chat.abort", {}, "session.aborted", "Abort sent.")


@require_POST
@role_required("admin")
def session_reset(request: HttpRequest, pk: int) -> HttpResponse:
    session = get_object_or_404(AgentSession, pk=pk)
    params = {"expectedSessionId": session.session_id} if session.session_id else {}
    return _session_command(
        request, pk, "sessions.reset", params, "session.reset", "Session reset.", key_param="key"
    )
