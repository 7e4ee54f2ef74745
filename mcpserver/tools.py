"""The MCP server's tools: thin edges over the apps' actions, the same ones the pages and the API
call (audited, live on the board, webhooks), refused the same way (an `ActionError` becomes a
tool error with the API's code and detail: mcpserver/server.py).

Each tool's docstring is what a model reads to choose it: what it does, when to use it, what it
returns. Its parameters (typed, with descriptions) are its input schema; its return type (a
TypedDict) its output schema. Synchronous tools run in a thread of the request's own with a
database connection closed after (server.py wraps them); `ACCESS` says who sees each one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, TypedDict

from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from pydantic import Field

from agents.models import Agent
from mcpserver.principal import Access, current
from missioncontrol.errors import Forbidden, Invalid, NotFound
from runs import actions as runs
from runs import events as run_events
from runs.models import Run
from tasks import actions as tasks
from tasks.models import Task

TaskId = Annotated[int, Field(ge=1, le=2**62, description="The task's number (#12 is 12).")]
Status = Literal["inbox", "backlog", "todo", "in_progress", "review", "done"]


# --- What tools return ---------------------------------------------------------------------------


class TaskBrief(TypedDict):
    id: int
    title: str
    status: str
    priority: str
    assignee: str | None
    blocked: bool
    blocked_reason: str
    run_state: str  # the latest run's state ("" when never dispatched)
    url: str


class Blocker(TypedDict):
    id: int
    title: str
    status: str


class CommentItem(TypedDict):
    author: str
    by_agent: bool
    body: str
    created_at: str


class Attempt(TypedDict):
    id: int
    attempt: int
    agent: str
    state: str
    progress: str
    error: str
    reply: str
    started_at: str | None
    ended_at: str | None


class TaskFull(TypedDict):
    id: int
    title: str
    description: str
    status: str
    priority: str
    labels: list[str]
    assignee: str | None
    blocked: bool
    blocked_reason: str
    waits_for: list[Blocker]
    comments: list[CommentItem]
    runs: list[Attempt]
    url: str


class TaskList(TypedDict):
    tasks: list[TaskBrief]


class TaskAnswer(TypedDict):
    task: TaskFull


class RunAnswer(TypedDict):
    run: run_events.RunData
    prompt: str  # the brief to work from


class ChangedTask(TypedDict):
    task: TaskBrief


class Commented(TypedDict):
    comment_id: int
    task_id: int


class AgentSelf(TypedDict):
    name: str
    status: str
    source: str
    gateway: str | None
    framework: str
    role: str
    max_runs: int
    auto_dispatch: bool
    heartbeat_interval_s: int
    lease_s: int
    paused: str | None
    running: list[run_events.RunData]


# --- Shared reading ------------------------------------------------------------------------------


def _priority(task: Task) -> str:
    return Task.Priority(task.priority).label.lower()


def task_brief(task: Task) -> TaskBrief:
    return {
        "id": task.pk,
        "title": task.title,
        "status": task.status,
        "priority": _priority(task),
        "assignee": task.assignee_display or None,
        "blocked": task.blocked,
        "blocked_reason": task.blocked_reason,
        "run_state": task.run_state,
        "url": f"/tasks/{task.pk}/",
    }


def task_full(task: Task) -> TaskFull:
    """A task with its thread (the last 100 comments, oldest first), its attempts and what it
    waits for (rows read as values: this is the read tools' hot path)."""
    comments = [
        CommentItem(author=author, by_agent=agent is not None, body=body, created_at=at.isoformat())
        for author, agent, body, at in task.comments.order_by("-created_at", "-id").values_list(
            "author_label", "author_agent_id", "body", "created_at"
        )[:100]
    ][::-1]
    attempts = [
        Attempt(
            id=pk,
            attempt=attempt,
            agent=agent,
            state=state,
            progress=progress,
            error=error,
            reply=reply[:4000],
            started_at=started.isoformat() if started else None,
            ended_at=ended.isoformat() if ended else None,
        )
        for pk, attempt, agent, state, progress, error, reply, started, ended in task.runs.order_by(
            "-attempt"
        ).values_list(
            "pk",
            "attempt",
            "agent_name",
            "state",
            "progress",
            "error",
            "reply",
            "started_at",
            "ended_at",
        )[:20]
    ]
    return {
        "id": task.pk,
        "title": task.title,
        "description": task.description,
        "status": task.status,
        "priority": _priority(task),
        "labels": task.label_list,
        "assignee": task.assignee_display or None,
        "blocked": task.blocked,
        "blocked_reason": task.blocked_reason,
        "waits_for": [
            Blocker(id=pk, title=title, status=status)
            for pk, title, status in task.blocked_by.order_by("pk").values_list(
                "pk", "title", "status"
            )[:50]
        ],
        "comments": comments,
        "runs": attempts,
        "url": f"/tasks/{task.pk}/",
    }


def _board() -> Any:
    """Tasks on the board with their assignee's name joined in (`assignee_name`: what
    `assignee_display` shows), not the assignee's whole row: the read tools' hot path."""
    name = Coalesce(F("assignee_agent__name"), F("assignee_user__username"), Value(""))
    return Task.objects.on_board().annotate(assignee_name=name)


def _task(task_id: int) -> Task:
    task = _board().filter(pk=task_id).first()
    if task is None:
        raise NotFound(f"Task #{task_id} does not exist (any more).")
    return task


def _agents_task(agent_id: int, task_id: int) -> Task:
    """A task an agent may read and comment on: its own, or an unassigned one."""
    task = _task(task_id)
    if task.assignee_agent_id != agent_id and (task.assignee_agent_id or task.assignee_user_id):
        raise Forbidden(
            f"Task #{task_id} is {task.assignee_display}'s: you may read your own tasks and unassigned ones."
        )
    return task


def _run_answer(run: Run) -> RunAnswer:
    return {"run": run_events.run_data(run), "prompt": run.prompt}


# --- Agents' tools -------------------------------------------------------------------------------


def whoami() -> AgentSelf:
    """Who you are to Mission Control and how you are set up: your agent's name, status, gateway
    (none for an agent that reports directly), how many runs you may hold at once, how long a run's
    lease lasts without a progress report or heartbeat (report progress more often than that), whether
    a budget pauses you, and the runs you hold now. Call it first in a session."""
    from billing import budgets

    me = current()
    agent = Agent.objects.select_related("gateway").get(pk=me.agent_id)
    pause = budgets.paused({agent.pk}).get(agent.pk)
    running = Run.objects.of_agent(agent.pk).filter(state__in=Run.ACTIVE).order_by("created_at")
    return {
        "name": agent.name,
        "status": agent.status,
        "source": agent.source,
        "gateway": agent.gateway.name if agent.gateway else None,
        "framework": agent.framework,
        "role": agent.role,
        "max_runs": agent.max_runs,
        "auto_dispatch": agent.auto_dispatch,
        "heartbeat_interval_s": agent.heartbeat_interval_s,
        "lease_s": runs.lease_s(agent),
        "paused": pause.reason if pause is not None else None,
        "running": [run_events.run_data(r) for r in running[:20]],
    }


def my_tasks(
    status: Annotated[Status | None, Field(description="Only tasks in this column.")] = None,
    include_unassigned: Annotated[
        bool, Field(description="Also list open tasks nobody holds, which you may claim.")
    ] = False,
    include_done: Annotated[bool, Field(description="Also list your tasks in Done.")] = False,
) -> TaskList:
    """The tasks assigned to you (most urgent first), each with its column, whether it is blocked and
    its latest run's state; optionally the unassigned ones you could claim. Use it to find what to
    work on; then get_task for the details and claim_task to start."""
    me = current()
    mine = Q(assignee_agent_id=me.agent_id)
    if include_unassigned:
        mine |= Q(assignee_agent__isnull=True, assignee_user__isnull=True)
    qs = _board().filter(mine)
    if status:
        qs = qs.filter(status=status)
    elif not include_done:
        qs = qs.exclude(status=Task.Status.DONE)
    return {"tasks": [task_brief(t) for t in qs.order_by("priority", "position", "pk")[:200]]}


def get_task(task_id: TaskId) -> TaskAnswer:
    """One task in full: its description, labels, the tasks it waits for (they must be Done before it
    can run), its comment thread (oldest first, the last 100) and every run attempt with its progress,
    error and reply. Your own tasks and unassigned ones."""
    return {"task": task_full(_agents_task(current().agent_id, task_id))}


def claim_task(task_id: TaskId) -> RunAnswer:
    """Start working on a task now: it becomes yours if nobody holds it, moves to In progress, and you
    hold its run (a lease, renewed by report_progress and heartbeats). Returns the run and the brief to
    work from. Claiming a task you already run returns the same run. Refused (conflict) when another
    agent or person holds the task, when it waits for other tasks, when you already run your limit,
    or when a budget pauses you. When done, call finish_run."""
    return _run_answer(runs.take(current().agent_id, task_id))


def update_task(
    task_id: TaskId,
    status: Annotated[Status | None, Field(description="Move the task to this column.")] = None,
    blocked: Annotated[
        bool | None, Field(description="True: mark it blocked (say why); false: unblock it.")
    ] = None,
    blocked_reason: Annotated[
        str, Field(max_length=500, description="Why it is blocked (shown on the card).")
    ] = "",
) -> ChangedTask:
    """Move one of your tasks to another column and/or mark it blocked (with the reason a person should
    read) or unblocked; both together or neither. To end a run, use finish_run instead: it posts your
    reply and moves the task where the dispatch said."""
    me = current()
    change = tasks.OwnTaskChange(
        agent_id=me.agent_id,
        task_id=task_id,
        status=status,
        blocked=blocked,
        blocked_reason=blocked_reason,
    )
    task = tasks.change_own_task(me.actor, change)
    return {"task": task_brief(_task(task.pk))}


def comment(
    task_id: TaskId,
    body: Annotated[str, Field(min_length=1, max_length=20000, description="Markdown.")],
) -> Commented:
    """Post a comment (markdown) on one of your tasks or an unassigned one: a question for the
    operator, a note on what you found. People see it live on the task."""
    me = current()
    task = _agents_task(me.agent_id, task_id)
    agent = Agent.objects.get(pk=me.agent_id)
    made = tasks.add_comment(me.actor, task.pk, body, agent=agent)
    return {"comment_id": made.pk, "task_id": task.pk}


RunTask = Annotated[
    int | None,
    Field(
        ge=1, le=2**62, description="The task whose run this is; needed only when you run several."
    ),
]


def report_progress(
    text: Annotated[
        str, Field(min_length=1, max_length=2000, description="What you are doing now, in a line.")
    ],
    task_id: RunTask = None,
) -> RunAnswer:
    """Say what you are doing now on your current run (shown live on the task's card) and renew its
    lease. Call it at each step of the work, and at least once per lease period (see whoami):
    a run whose lease runs out is lost and handed back to the operator."""
    me = current()
    run = runs.current(me.agent_id, task_id)
    return _run_answer(runs.report_progress(me.agent_id, run.pk, text))


def finish_run(
    outcome: Annotated[
        Literal["succeeded", "failed"], Field(description="Whether the work is done.")
    ],
    reply: Annotated[
        str,
        Field(
            max_length=runs.MAX_REPLY,
            description="Your final answer (markdown): posted on the task as your comment.",
        ),
    ] = "",
    error: Annotated[
        str, Field(max_length=1000, description="When failed: why, for the operator.")
    ] = "",
    task_id: RunTask = None,
) -> RunAnswer:
    """End your current run: the explicit "done" signal. Succeeded: your reply is posted on the task
    and the task moves on (to Review, or Done if the dispatch said so; a pipeline waiting on it
    advances). Failed: the task is blocked with your reason for the operator. Finishing again the
    same way returns the same run."""
    me = current()
    run = runs.current(me.agent_id, task_id)
    return _run_answer(runs.finish(me.agent_id, run.pk, outcome, reply, error))


class UsageRecord(TypedDict, total=False):
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: str
    task_id: int
    session_id: str
    occurred_at: str
    idempotency_key: str


class UsageAnswer(TypedDict):
    recorded: int
    duplicates: int
    refused: list[Any]


async def report_usage(
    records: Annotated[
        list[dict[str, Any]],
        Field(
            min_length=1,
            max_length=500,
            description=(
                "Usage records, as the API's POST /api/v1/usage takes them: each with `model` and "
                "`input_tokens` / `output_tokens` (and optionally `cache_read_tokens`, "
                "`cache_write_tokens`, `cost_usd` when you know it, `task_id`, `session_id`, "
                "`occurred_at` ISO time, `idempotency_key` so a retry is not counted twice)."
            ),
        ),
    ],
) -> UsageAnswer:
    """Report the tokens you used (cost is priced from the model when you do not give it), for the
    operator's cost pages and budgets. Report as you go, per step or per run, with an
    idempotency_key on each record: a record sent twice is counted once."""
    from agents import ingest
    from billing import validation
    from missioncontrol.errors import Unavailable
    from missioncontrol.fastpath import writer as fastwriter

    me = current()
    assert me.key is not None
    now = timezone.now()
    items, errors = validation.usage_list(
        records, me.agent_id, now, "records", validation.MAX_BULK_USAGE
    )
    if errors:
        raise Invalid(errors)
    job = ingest.Job(kind="usage", key=me.key, cleaned={"usage": items}, received_at=now)
    try:
        result = await fastwriter.writer("ingest", ingest.IngestWriter).submit(job)
    except fastwriter.WriteFailed:
        raise Unavailable("Could not store this; nothing was recorded. Try again.") from None
    assert result is not None
    return {
        "recorded": result["recorded"],
        "duplicates": result["duplicates"],
        "refused": list(result.get("refused", [])),
    }


class AskAnswer(TypedDict):
    approval_id: int
    outcome: Literal["pending", "approved", "rejected", "expired"]
    comment: str
    answered_by: str
    deadline_at: str


WaitS = Annotated[
    int,
    Field(
        ge=0,
        le=240,
        description="How long to wait here for the answer (seconds); still pending then: "
        "call check_approval.",
    ),
]


def _ask_state(agent_id: int, ask_id: int) -> AskAnswer:
    from pipelines.models import AgentAsk

    ask = AgentAsk.objects.filter(pk=ask_id, agent_id=agent_id).first()
    if ask is None:
        raise NotFound("No question of yours has that id.")
    return {
        "approval_id": ask.pk,
        "outcome": ask.outcome,  # type: ignore[typeddict-item]
        "comment": ask.comment,
        "answered_by": ask.answered_label,
        "deadline_at": ask.deadline_at.isoformat(),
    }


async def _wait_for(agent_id: int, ask_id: int, wait_s: int) -> AskAnswer:
    from mcpserver import threads

    loop = asyncio.get_running_loop()
    until = loop.time() + wait_s
    while True:
        state = await threads.run(_ask_state, agent_id, ask_id)
        if state["outcome"] != "pending" or loop.time() >= until:
            return state
        await asyncio.sleep(min(POLL_S, max(0.0, until - loop.time())))


POLL_S = 1.0


async def request_approval(
    question: Annotated[
        str, Field(min_length=1, max_length=500, description="What you want to do, as a yes/no.")
    ],
    details: Annotated[
        str, Field(max_length=20000, description="Why, and what it changes (markdown).")
    ] = "",
    task_id: RunTask = None,
    timeout_s: Annotated[
        int,
        Field(ge=10, le=86400, description="How long a person has to answer before it expires."),
    ] = 900,
    wait_s: WaitS = 120,
) -> AskAnswer:
    """Ask a person before you do something risky or irreversible (deleting data, deploying,
    spending), and wait for the answer: it appears on the operators' Approvals page and Overview.
    Returns the outcome — approved, rejected (with the person's comment: read it) or expired — or
    pending when it is not answered within wait_s: then call check_approval with its id. Only
    approved means go ahead."""
    from mcpserver import threads
    from pipelines import approvals

    me = current()
    ask = await threads.run(approvals.ask_agent, me.agent_id, question, details, task_id, timeout_s)
    return await _wait_for(me.agent_id, ask.pk, wait_s)


async def check_approval(
    approval_id: Annotated[int, Field(ge=1, le=2**62, description="From request_approval.")],
    wait_s: WaitS = 60,
) -> AskAnswer:
    """Where a question you asked with request_approval stands, waiting up to wait_s for the
    answer: pending, approved, rejected (read the comment) or expired."""
    me = current()
    return await _wait_for(me.agent_id, approval_id, wait_s)


# --- Operators' tools (people's API tokens) ------------------------------------------------------


class AttentionItem(TypedDict):
    kind: str
    severity: Literal["critical", "stuck", "degraded", "waiting"]
    title: str
    detail: str
    since: str | None
    gateway: str | None
    url: str


class AttentionAnswer(TypedDict):
    items: list[AttentionItem]
    summary: str


SEVERITIES: tuple[Literal["critical", "stuck", "degraded", "waiting"], ...] = (
    "critical",
    "stuck",
    "degraded",
    "waiting",
)


def _viewer() -> Any:
    from missioncontrol import overview, subscriptions

    me = current()
    return overview.Viewer(me.user, me.role, subscriptions.gateway_scope(me.user), None)  # type: ignore[arg-type]


def needs_attention() -> AttentionAnswer:
    """What needs a person now, most urgent first: exactly the Overview's "Needs attention" list for
    you (gateways cut off, budgets spent, runs lost or failed, tasks blocked or waiting for review,
    approvals waiting, late cron jobs …), within your gateway grants. Answers "what needs me?"."""
    from missioncontrol import overview

    items: list[AttentionItem] = [
        {
            "kind": item.kind,
            "severity": SEVERITIES[min(item.severity, 3)],
            "title": item.title,
            "detail": item.detail,
            "since": item.since.isoformat() if item.since else None,
            "gateway": getattr(item.gateway, "name", None),
            "url": item.url,
        }
        for item in overview.attention(_viewer())
    ]
    counts: dict[str, int] = {}
    for item in items:
        counts[item["severity"]] = counts.get(item["severity"], 0) + 1
    summary = (
        ", ".join(f"{n} {s}" for s, n in counts.items()) if items else "Nothing needs you now."
    )
    return {"items": items, "summary": summary}


class FleetGroup(TypedDict):
    gateway: str | None  # None: agents reporting directly
    busy: int
    idle: int
    error: int
    stale: int
    offline: int
    agents: list[dict[str, str]]


class FleetAnswer(TypedDict):
    groups: list[FleetGroup]
    total: int


def fleet_status() -> FleetAnswer:
    """Every agent you may see, grouped by gateway (and the ones reporting directly), counted by
    status, each with its status and what it is doing now. Use it for "is the fleet healthy?"."""
    from gateways import access as gateway_access

    me = current()
    agents = (
        Agent.objects.filter(gateway_access.narrowing(me.user))
        .select_related("gateway")
        .order_by("gateway__name", "name")
    )
    groups: dict[str | None, FleetGroup] = {}
    total = 0
    for agent in agents[:2000]:
        name = agent.gateway.name if agent.gateway else None
        group = groups.setdefault(
            name,
            {
                "gateway": name,
                "busy": 0,
                "idle": 0,
                "error": 0,
                "stale": 0,
                "offline": 0,
                "agents": [],
            },
        )
        if agent.status in Agent.Status.values:
            group[agent.status] += 1  # type: ignore[literal-required]
        group["agents"].append(
            {"name": agent.name, "status": agent.status, "doing": agent.last_message}
        )
        total += 1
    return {"groups": list(groups.values()), "total": total}


class RunningItem(TypedDict):
    run: run_events.RunData
    task_title: str


class RunningAnswer(TypedDict):
    runs: list[RunningItem]


def running_now() -> RunningAnswer:
    """The runs queued, being sent or running now (oldest first), each with its task, agent, state,
    what the agent is doing and its tokens and cost so far — within your gateway grants."""
    from gateways import access as gateway_access

    me = current()
    rows = (
        Run.objects.filter(state__in=Run.ACTIVE)
        .filter(gateway_access.narrowing(me.user, "agent__gateway"))
        .select_related("task")
        .order_by("created_at", "id")[:200]
    )
    return {"runs": [{"run": run_events.run_data(r), "task_title": r.task.title} for r in rows]}


class SpendLine(TypedDict):
    name: str
    cost_usd: str
    input_tokens: int
    output_tokens: int


class SpendAnswer(TypedDict):
    period: str
    since: str
    cost_usd: str
    top_agents: list[SpendLine]
    top_models: list[SpendLine]


def spend(
    period: Annotated[
        Literal["today", "week"], Field(description="Today, or the last 7 days.")
    ] = "today",
) -> SpendAnswer:
    """What the fleet spent today or over the last 7 days (USD, from reported and gateway usage),
    with the top 5 agents and models by cost — within your gateway grants."""
    from django.db.models import Sum

    from billing.models import UsageRecord as Usage
    from gateways import access as gateway_access

    me = current()
    now = timezone.localtime()
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        start -= timedelta(days=6)
    qs = Usage.objects.filter(occurred_at__gte=start).filter(
        gateway_access.narrowing(me.user, "agent__gateway")
    )

    def top(field: str) -> list[SpendLine]:
        rows = (
            qs.values(field)
            .annotate(c=Sum("cost_usd"), i=Sum("input_tokens"), o=Sum("output_tokens"))
            .order_by("-c")[:5]
        )
        return [
            {
                "name": str(r[field] or "—"),
                "cost_usd": f"{(r['c'] or Decimal(0)):.4f}",
                "input_tokens": r["i"] or 0,
                "output_tokens": r["o"] or 0,
            }
            for r in rows
        ]

    total = qs.aggregate(c=Sum("cost_usd"))["c"] or Decimal(0)
    return {
        "period": period,
        "since": start.isoformat(),
        "cost_usd": f"{total:.4f}",
        "top_agents": top("agent__name"),
        "top_models": top("model"),
    }


def search_tasks(
    text: Annotated[
        str, Field(max_length=200, description="Words in the title or description; empty: any.")
    ] = "",
    status: Annotated[Status | None, Field(description="Only tasks in this column.")] = None,
    assignee: Annotated[
        str,
        Field(max_length=150, description="An agent's name, a username, or 'me'; empty: anyone."),
    ] = "",
    blocked: Annotated[bool | None, Field(description="Only blocked (or unblocked) tasks.")] = None,
) -> TaskList:
    """Find tasks on the board (not archived): by words, column, assignee, blocked. At most 100,
    most urgent first. Use get_task_details for one task's thread and runs."""
    from tasks.api import _assignee

    me = current()
    qs = _board()
    for word in text.split()[:10]:
        qs = qs.filter(Q(title__icontains=word) | Q(description__icontains=word))
    if status:
        qs = qs.filter(status=status)
    if blocked is not None:
        qs = qs.filter(blocked=blocked)
    if assignee:
        who = _assignee(me.label if assignee == "me" else assignee)
        qs = qs.filter(assignee_agent_id=who.agent_id, assignee_user_id=who.user_id)
    return {"tasks": [task_brief(t) for t in qs.order_by("priority", "status", "position")[:100]]}


def get_task_details(task_id: TaskId) -> TaskAnswer:
    """One task in full, as its page shows it: description, labels, the tasks it waits for, its
    comment thread and every run attempt with progress, error and reply."""
    return {"task": task_full(_task(task_id))}


def create_task(
    title: Annotated[str, Field(min_length=1, max_length=200)],
    description: Annotated[str, Field(max_length=20000, description="Markdown.")] = "",
    status: Annotated[Status, Field(description="The column it starts in.")] = "inbox",
    priority: Literal["urgent", "high", "normal", "low"] = "normal",
    labels: Annotated[list[Annotated[str, Field(max_length=40)]], Field(max_length=20)] = [],  # noqa: B006 - pydantic copies defaults
    assignee: Annotated[
        str, Field(max_length=150, description="An agent's name or a username; empty: nobody.")
    ] = "",
    waits_for: Annotated[
        list[Annotated[int, Field(ge=1, le=2**62)]],
        Field(max_length=50, description="Tasks that must be Done before this one runs."),
    ] = [],  # noqa: B006
) -> ChangedTask:
    """Create a task on the board, as the board's New task does (operators): title, description,
    column, priority, labels, assignee and the tasks it waits for. To start an agent on it, call
    dispatch_task next."""
    from tasks.api import _assignee

    me = current()
    task = tasks.create_task(
        me.actor,
        title=title,
        description=description,
        status=status,
        priority=Task.Priority[priority.upper()].value,
        labels=labels,
        assignee=_assignee(assignee),
        blocked_by=waits_for,
    )
    return {"task": task_brief(_task(task.pk))}


def dispatch_task(
    task_id: TaskId,
    agent: Annotated[
        str,
        Field(
            max_length=64,
            description="Assign the task to this agent first; empty: the agent it is assigned to.",
        ),
    ] = "",
    instructions: Annotated[
        str, Field(max_length=20000, description="Extra words for the agent, after the task.")
    ] = "",
    land_in: Annotated[
        Literal["review", "done"], Field(description="Where the task goes when the run succeeds.")
    ] = "review",
) -> RunAnswer:
    """Hand a task to an agent now (operators): optionally assign it first, then dispatch it — a run
    is queued and the agent (a gateway's or one reporting directly) starts it; it shows live on the
    task's card. Refused when the task already has an active run, the agent is paused by a budget,
    or you may not operate the agent's gateway."""
    from runs import access

    me = current()
    if agent:
        found = Agent.objects.filter(name=agent).values_list("pk", flat=True).first()
        if found is None:
            raise Invalid({"agent": [f"No agent is called {agent!r}."]})
        access.check_dispatch(me.user, task_id)
        tasks.edit_task(
            me.actor,
            tasks.TaskEdit(task_id=task_id, changes={"assignee": tasks.Assignee(agent_id=found)}),
        )
    access.check_dispatch(me.user, task_id)
    run, _created = runs.dispatch(me.actor, runs.Dispatch(task_id, instructions, land_in))
    return _run_answer(run)


class ApprovalItem(TypedDict):
    id: int
    kind: Literal["agent", "pipeline", "exec"]
    title: str
    detail: str
    requested_at: str
    gateway: str | None
    url: str


class ApprovalsAnswer(TypedDict):
    approvals: list[ApprovalItem]


def pending_approvals() -> ApprovalsAnswer:
    """What waits for a person's yes or no, oldest first, within your gateway grants: agents'
    questions (kind agent) and pipeline approval gates (kind pipeline) — answer either with
    answer_approval, its id and kind — and the commands gateways' agents ask to run (kind exec:
    answered on the Approvals page)."""
    from pipelines import approvals as gates
    from pipelines.models import Approval
    from pipelines.views import _exec_approvals, agent_asks

    me = current()
    found: list[ApprovalItem] = [
        {
            "id": ask["id"],
            "kind": "agent",
            "title": f"{ask['agent']} asks: {ask['question']}",
            "detail": ask["details"][:2000],
            "requested_at": ask["requested_at"],
            "gateway": None,
            "url": ask["url"],
        }
        for ask in agent_asks(me.user, pending=True)[:100]
    ]
    for approval in (
        Approval.objects.pending()
        .select_related("step__run__pipeline")
        .order_by("requested_at")[:100]
    ):
        data = gates.approval_data(approval, approval.step.run)
        found.append(
            {
                "id": approval.pk,
                "kind": "pipeline",
                "title": f"{data['pipeline']} #{data['run_number']}: {data['step']}",
                "detail": data["instructions"],
                "requested_at": data["requested_at"],
                "gateway": None,
                "url": data["url"],
            }
        )
    for item in _exec_approvals(me.user, pending=True)[:100]:
        found.append(
            {
                "id": item["id"],
                "kind": "exec",
                "title": f"{item['agent']} asks to run: {item['command'][:200]}",
                "detail": item["cwd"],
                "requested_at": item["requested_at"],
                "gateway": item["gateway"],
                "url": "/pipelines/approvals/",
            }
        )
    return {"approvals": sorted(found, key=lambda a: a["requested_at"])}


class AnsweredApproval(TypedDict):
    id: int
    outcome: str
    answered_by: str


def answer_approval(
    approval_id: Annotated[int, Field(ge=1, le=2**62, description="From pending_approvals.")],
    outcome: Literal["approved", "rejected", "changes_requested"],
    comment: Annotated[str, Field(max_length=5000, description="Why; shown with it.")] = "",
    kind: Annotated[
        Literal["pipeline", "agent"], Field(description="As pending_approvals lists it.")
    ] = "pipeline",
) -> AnsweredApproval:
    """Answer what waits for a yes or no. A pipeline's approval gate (the people it names, or its
    role): approved (the step runs), rejected (the step fails) or changes_requested (the steps
    before it are handed back with your comment). An agent's question (operators who may act on
    its gateway): approved or rejected, the comment read by the agent. The first answer wins; a
    later one is refused."""
    from pipelines import approvals as gates

    me = current()
    if kind == "agent":
        if outcome == "changes_requested":
            raise Invalid({"outcome": ["An agent's question is approved or rejected."]})
        ask = gates.answer_agent(me.actor, me.user, approval_id, outcome, comment)
        return {"id": ask.pk, "outcome": ask.outcome, "answered_by": ask.answered_label}
    approval = gates.answer(me.actor, me.user, approval_id, outcome, comment)
    return {
        "id": approval.pk,
        "outcome": approval.outcome,
        "answered_by": approval.answered_label,
    }


class PipelineStarted(TypedDict):
    run_id: int
    number: int
    state: str
    url: str


def start_pipeline(
    pipeline: Annotated[str, Field(min_length=1, max_length=100, description="Its name.")],
    inputs: Annotated[
        dict[str, str | int | float | bool],
        Field(description="The pipeline's inputs by name (see its page)."),
    ] = {},  # noqa: B006
) -> PipelineStarted:
    """Start a run of a pipeline with its inputs (operators), as its page's Run button does: its
    steps are dispatched as they become ready and advance by themselves."""
    from pipelines import access as pipeline_access
    from pipelines import actions as pipeline_actions
    from pipelines.models import Pipeline

    me = current()
    found = Pipeline.objects.filter(name=pipeline, archived_at__isnull=True).first()
    if found is None:
        raise NotFound(f"No pipeline is called {pipeline!r}.")
    pipeline_access.check_start(me.user, found.current.definition)
    run, _created = pipeline_actions.start(
        me.actor, pipeline_actions.Start(pipeline_id=found.pk, inputs=dict(inputs), trigger="api")
    )
    return {
        "run_id": run.pk,
        "number": run.number,
        "state": run.state,
        "url": f"/pipelines/runs/{run.pk}/",
    }


# --- Resources ---------------------------------------------------------------------------------


def task_markdown(task_id: str) -> str:
    """A task with its thread, as markdown for a client to attach to its context (`task://12`):
    an agent's own tasks and unassigned ones; any task on the board for a person."""
    me = current()
    if not task_id.isdigit() or not 1 <= int(task_id) <= 2**62:
        raise Invalid({"task_id": ["A task's number, e.g. task://12."]})
    number = int(task_id)
    task = _agents_task(me.agent_id, number) if me.kind == "agent" else _task(number)
    full = task_full(task)
    lines = [
        f"# Task #{full['id']}: {full['title']}",
        "",
        f"- Column: {full['status']}; priority: {full['priority']}",
        f"- Assignee: {full['assignee'] or 'nobody'}",
    ]
    if full["labels"]:
        lines.append(f"- Labels: {', '.join(full['labels'])}")
    if full["blocked"]:
        lines.append(f"- Blocked: {full['blocked_reason'] or 'yes'}")
    if full["waits_for"]:
        waits = ", ".join(f"#{b['id']} {b['title']} ({b['status']})" for b in full["waits_for"])
        lines.append(f"- Waits for: {waits}")
    lines += ["", full["description"] or "(No description.)"]
    if full["comments"]:
        lines += ["", "## Comments"]
        for c in full["comments"]:
            lines += ["", f"**{c['author']}** ({c['created_at']}):", "", c["body"]]
    if full["runs"]:
        lines += ["", "## Runs"]
        for r in full["runs"]:
            said = r["error"] or r["reply"][:500] or r["progress"]
            lines.append(f"- Attempt {r['attempt']} by {r['agent']}: {r['state']}. {said}".rstrip())
    return "\n".join(lines) + "\n"


def task_resources() -> list[tuple[int, str, str]]:
    """The tasks a client lists as resources (to attach one to its context): an agent's own
    open tasks; for a person, the open tasks assigned to them. (id, title, status), most urgent
    first, at most 50."""
    me = current()
    mine = (
        Q(assignee_agent_id=me.agent_id) if me.kind == "agent" else Q(assignee_user_id=me.user.pk)
    )
    rows = (
        Task.objects.open()
        .filter(mine)
        .order_by("priority", "position", "pk")
        .values_list("pk", "title", "status")[:50]
    )
    return list(rows)


# Who sees which tool (an agent's key; a person's token of at least this role).
ACCESS: dict[str, Access] = {
    "whoami": "agent",
    "my_tasks": "agent",
    "get_task": "agent",
    "claim_task": "agent",
    "update_task": "agent",
    "comment": "agent",
    "report_progress": "agent",
    "finish_run": "agent",
    "report_usage": "agent",
    "request_approval": "agent",
    "check_approval": "agent",
    "needs_attention": "viewer",
    "fleet_status": "viewer",
    "running_now": "viewer",
    "spend": "viewer",
    "search_tasks": "viewer",
    "get_task_details": "viewer",
    "pending_approvals": "viewer",
    "create_task": "operator",
    "dispatch_task": "operator",
    "answer_approval": "viewer",  # the gate names who may answer (a role or people): it checks
    "start_pipeline": "operator",
}
READ_ONLY = {
    "whoami",
    "check_approval",
    "my_tasks",
    "get_task",
    "needs_attention",
    "fleet_status",
    "running_now",
    "spend",
    "search_tasks",
    "get_task_details",
    "pending_approvals",
}
TOOLS: list[Callable[..., Any]] = [
    whoami,
    my_tasks,
    get_task,
    claim_task,
    update_task,
    comment,
    report_progress,
    finish_run,
    report_usage,
    request_approval,
    check_approval,
    needs_attention,
    fleet_status,
    running_now,
    spend,
    search_tasks,
    get_task_details,
    pending_approvals,
    create_task,
    dispatch_task,
    answer_approval,
    start_pipeline,
]
