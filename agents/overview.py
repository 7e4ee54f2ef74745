"""The fleet's part of the overview (an edge): agents in error, or stale/offline with work
assigned, as "Needs attention" items; the "Running now" and "Fleet health" panels."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, Subquery
from django.urls import reverse
from django.utils import timezone

from agents.models import Agent, AgentSession, AgentStatusChange
from billing import reports
from gateways.models import Gateway
from missioncontrol import overview
from missioncontrol.overview import Attention, Viewer
from missioncontrol.templatetags.mc import ago
from tasks.models import Task

OPEN = [Task.Status.TODO, Task.Status.IN_PROGRESS, Task.Status.REVIEW]


def unhealthy(viewer: Viewer) -> list[Attention]:
    """Agents in error — or gone stale or offline since an error they never recovered from (a
    failure stays until acknowledged or resolved: the sweep turning a failed agent stale made
    it vanish unseen) — and stale or offline agents that have work (a current task, or open
    tasks assigned): the work is stuck until someone looks."""
    has_work = Task.objects.filter(
        assignee_agent=OuterRef("pk"), status__in=OPEN, archived_at__isnull=True
    )
    # The agent's last verdict on itself: an error, or a healthy status since.
    verdicts = AgentStatusChange.objects.filter(
        agent=OuterRef("pk"),
        new__in=[Agent.Status.ERROR, Agent.Status.IDLE, Agent.Status.BUSY],
    ).order_by("-id")
    rows = (
        Agent.objects.filter(
            status__in=[Agent.Status.ERROR, Agent.Status.STALE, Agent.Status.OFFLINE]
        )
        .annotate(
            verdict=Subquery(verdicts.values("new")[:1]),
            verdict_at=Subquery(verdicts.values("created_at")[:1]),
        )
        .filter(
            Q(status=Agent.Status.ERROR)
            | Q(verdict=Agent.Status.ERROR)
            | Q(current_task_id__isnull=False)
            | Exists(has_work)
        )
        .filter(viewer.gateway_q("gateway"))
        .select_related("gateway")
        .order_by("-verdict_at", "pk")[: viewer.limit]
    )
    shown = [agent for agent in rows if viewer.sees(agent.gateway_id)]
    # Open tasks of the shown agents only (a count joined into the list above grouped every
    # candidate's tasks: 200 ms cold at 10,000 tasks).
    open_tasks = dict(
        Task.objects.filter(
            assignee_agent_id__in=[a.pk for a in shown], status__in=OPEN, archived_at__isnull=True
        )
        .order_by()
        .values("assignee_agent_id")
        .annotate(n=Count("pk"))
        .values_list("assignee_agent_id", "n")
    )
    found = []
    listed = reverse("agents:list")
    for agent in shown:
        tasks = open_tasks.get(agent.pk, 0)
        # An error stands (the same occurrence, whatever the sweep did since) until a
        # healthy status resolves it or someone acknowledges it.
        verdict, verdict_at = agent.verdict, agent.verdict_at
        error = agent.status == Agent.Status.ERROR or verdict == Agent.Status.ERROR
        work = f"{tasks} open task{'s' if tasks != 1 else ''}" if tasks else "a task in hand"
        since = (verdict_at or agent.last_seen_at) if error else agent.last_seen_at
        detail = agent.last_message or "reports an error"
        if error and agent.status != Agent.Status.ERROR:
            detail += f" — {agent.status} since, last seen {ago(agent.last_seen_at)}"
        found.append(
            Attention(
                key=overview.occurrence(
                    "agent.error" if error else f"agent.{agent.status}", agent.pk, since
                ),
                kind="Agent error" if error else f"Agent {agent.status}",
                severity=overview.STUCK
                if (error or tasks or agent.current_task_id)
                else overview.DEGRADED,
                title=agent.display_name,
                detail=detail if error else f"{work}; last seen {ago(agent.last_seen_at)}",
                url=reverse("agents:detail", args=[agent.name]),
                since=since,
                gateway=agent.gateway,
                action="Open agent",
                more_url=listed + f"?status={agent.status}",
                more_label=f"{agent.status} agents",
            )
        )
    return found


FAILED_RUNS_WITHIN = timedelta(hours=24)


def failed_runs(viewer: Viewer) -> list[Attention]:
    """Gateway sessions whose last run failed or was aborted in the last day (a later good run
    clears it)."""
    since = timezone.now() - FAILED_RUNS_WITHIN
    rows = (
        AgentSession.objects.filter(
            last_run_status__in=["error", "aborted"], last_run_ended_at__gte=since
        )
        .select_related("gateway")
        .order_by("last_run_ended_at", "pk")[: viewer.scan]
    )
    found = []
    for session in rows:
        if not viewer.sees(session.gateway_id):
            continue
        ended = session.last_run_ended_at
        found.append(
            Attention(
                key=overview.occurrence(f"run.{session.last_run_status}", session.pk, ended),
                kind="Run failed" if session.last_run_status == "error" else "Run aborted",
                severity=overview.DEGRADED,
                title=session.title,
                detail=session.last_run_error,
                url=reverse("agents:session", args=[session.pk]),
                since=ended,
                gateway=session.gateway,
                action="Open session",
                more_url=reverse("agents:sessions"),
                more_label="failed runs",
            )
        )
        if len(found) >= viewer.limit:
            break
    return found


RUNNING_SHOWN = 12


def running_now(viewer: Viewer) -> dict[str, Any]:
    since = AgentStatusChange.objects.filter(agent=OuterRef("pk"), new=Agent.Status.BUSY).order_by(
        "-id"
    )
    busy = [
        a
        for a in Agent.objects.filter(status=Agent.Status.BUSY)
        .filter(viewer.gateway_q("gateway"))
        .annotate(busy_since=Subquery(since.values("created_at")[:1]))
        .select_related("gateway")
        .order_by("-last_seen_at", "pk")[:RUNNING_SHOWN]
        if viewer.sees(a.gateway_id)
    ]
    # Each busy agent's spend today (one query on the rollups).
    now = timezone.now()
    tz = timezone.get_current_timezone()
    midnight = reports.local_midnight(now.astimezone(tz).date(), tz)
    spent = reports.cost_by_agent([a.pk for a in busy], midnight, now)
    for agent in busy:
        agent.cost_today = spent.get(agent.pk)  # type: ignore[attr-defined]
    titles = dict(
        Task.objects.filter(
            pk__in=[a.current_task_id for a in busy if a.current_task_id]
        ).values_list("pk", "title")
    )
    for agent in busy:
        found = titles.get(agent.current_task_id) if agent.current_task_id else None
        agent.task_title = found  # type: ignore[attr-defined]
    runs = [
        s
        for s in AgentSession.objects.running()
        .filter(viewer.gateway_q("gateway"))
        .select_related("gateway", "agent")
        .order_by("-last_activity_at", "-id")[:RUNNING_SHOWN]
        if viewer.sees(s.gateway_id)
    ]
    return {"busy": busy, "runs": runs}


STATUSES = [s for s, _label in Agent.Status.choices]


def fleet_health(viewer: Viewer) -> dict[str, Any]:
    counts: dict[int | None, dict[str, int]] = {}
    for gateway_id, status, n in (
        Agent.objects.order_by().values_list("gateway_id", "status").annotate(n=Count("pk"))
    ):
        if viewer.sees(gateway_id) or (gateway_id is None and viewer.chosen is None):
            counts.setdefault(gateway_id, dict.fromkeys(STATUSES, 0))[status] = n
    gateways = [g for g in Gateway.objects.order_by("name") if viewer.sees(g.pk)]
    rows: list[dict[str, Any]] = []
    for gateway in gateways:
        rows.append(
            {"gateway": gateway, "counts": counts.get(gateway.pk, dict.fromkeys(STATUSES, 0))}
        )
    if None in counts:
        rows.append({"gateway": None, "counts": counts[None]})
    totals = dict.fromkeys(STATUSES, 0)
    for row in rows:
        for status, n in row["counts"].items():
            totals[status] += n
    for row in rows:
        row["cells"] = [(status, row["counts"][status]) for status in STATUSES]
    return {"rows": rows, "totals": [(s, totals[s]) for s in STATUSES], "statuses": STATUSES}


def find_agents_and_sessions(viewer: Viewer, text: str) -> list[overview.Found]:
    found = [
        overview.Found(
            "Agent", a.display_name, reverse("agents:detail", args=[a.name]), a.get_status_display()
        )
        for a in Agent.objects.filter(name__icontains=text).order_by("name")[:20]
        if viewer.sees(a.gateway_id) or (a.gateway_id is None and viewer.chosen is None)
    ][:6]
    sessions = AgentSession.objects.filter(Q(label__icontains=text) | Q(key__icontains=text))
    found += [
        overview.Found("Session", s.title, reverse("agents:session", args=[s.pk]), s.status)
        for s in sessions.order_by("-last_activity_at", "-id")[:20]
        if viewer.sees(s.gateway_id)
    ][:6]
    return found


def register() -> None:
    overview.register_search("agents", find_agents_and_sessions)
    overview.register_attention("agents.unhealthy", unhealthy, topics=("fleet",), notify="agent")
    overview.register_attention(
        "agents.failed_runs", failed_runs, topics=("sessions",), notify="run"
    )
    overview.register_panel(
        overview.Panel("running", 10, "agents/_overview_running.html", running_now),
        topics=("fleet", "sessions"),
    )
    overview.register_panel(
        overview.Panel("fleet", 20, "agents/_overview_fleet.html", fleet_health),
        topics=("fleet", "gateways"),
    )
