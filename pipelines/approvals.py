"""Approval gates: a step that must be approved before it runs (or a gate with no agent) asks
the people its definition names; the first answer wins. Approved: the step runs (a gate
succeeds). Rejected: the step fails, and the run follows its `if` rules. Changes requested: the
steps the gate waits for are handed back to their agents with the comment, and the gate asks
again when they are done. Unanswered past its timeout: its `on_timeout` outcome."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal, TypedDict

from django.db import transaction
from django.utils import timezone

from agents.models import Agent
from missioncontrol import audit, live
from missioncontrol.audit import Actor, ActorData
from missioncontrol.errors import Conflict, Forbidden, Invalid, NotFound
from missioncontrol.roles import has_role
from pipelines import actions as engine
from pipelines import definition as defs
from pipelines import events
from pipelines.models import AgentAsk, Approval, PipelineRun, StepRun
from runs import actions as runs
from tasks.models import Task

ApprovalEventType = Literal["approval.requested", "approval.resolved"]
Answer = Literal["approved", "rejected", "changes_requested"]
MAX_COMMENT = 5000


class ApprovalData(TypedDict):
    id: int
    run_id: int
    pipeline: str
    run_number: int
    step: str
    who: str  # who may answer, in words
    instructions: str
    requested_at: str
    deadline_at: str | None
    on_timeout: str
    outcome: str
    answered_by: str
    comment: str
    answered_at: str | None
    url: str


class ApprovalEvent(TypedDict):
    """An approval was asked for, or answered (by a person, or by its timeout)."""

    type: ApprovalEventType
    actor: ActorData
    approval: ApprovalData


def who_text(approval: Approval) -> str:
    if approval.by_users:
        return ", ".join(approval.by_users)
    return "admins" if approval.by_role == "admin" else "operators"


def approval_data(approval: Approval, run: PipelineRun) -> ApprovalData:
    return {
        "id": approval.pk,
        "run_id": run.pk,
        "pipeline": run.pipeline.name,
        "run_number": run.number,
        "step": approval.step.step_id,
        "who": who_text(approval),
        "instructions": approval.instructions,
        "requested_at": approval.requested_at.isoformat(),
        "deadline_at": approval.deadline_at.isoformat() if approval.deadline_at else None,
        "on_timeout": approval.on_timeout,
        "outcome": approval.outcome,
        "answered_by": approval.answered_label,
        "comment": approval.comment,
        "answered_at": approval.answered_at.isoformat() if approval.answered_at else None,
        "url": f"/pipelines/runs/{run.pk}/#step-{run.pk}-{approval.step.step_id}",
    }


def _publish(
    event_type: ApprovalEventType, actor: Actor, approval: Approval, run: PipelineRun
) -> None:
    live.publish(
        events.TOPIC,
        {"type": event_type, "actor": actor.as_dict(), "approval": approval_data(approval, run)},
    )


def ask(
    actor: Actor, run: PipelineRun, steps: list[StepRun], step: StepRun, spec: defs.StepSpec
) -> Approval:
    """The step waits for an answer (in the advancing transaction)."""
    assert spec.approval is not None
    gate = spec.approval
    now = timezone.now()
    step.state = StepRun.State.AWAITING_APPROVAL
    step.started_at = step.started_at or now
    step.save(update_fields=["state", "started_at"])
    approval = Approval.objects.create(
        step=step,
        by_role=gate.by_role,
        by_users=list(gate.by_users),
        instructions=gate.instructions,
        deadline_at=now + timedelta(seconds=gate.timeout_s) if gate.timeout_s else None,
        on_timeout=gate.on_timeout,
    )
    audit.record(
        actor,
        "approval.requested",
        run.pipeline,
        after={"run": run.number, "step": step.step_id, "who": who_text(approval)},
    )
    _publish("approval.requested", actor, approval, run)
    engine.publish_run("pipeline.run_changed", actor, run, steps, step)
    return approval


def may_answer(user: Any, approval: Approval) -> bool:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if approval.by_users:
        return bool(user.get_username() in approval.by_users and has_role(user, "viewer"))
    return has_role(user, "admin" if approval.by_role == "admin" else "operator")


def _comment(comment: str) -> str:
    """An answer's comment, checked (both kinds of approval)."""
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT:
        raise Invalid({"comment": [f"Keep the comment under {MAX_COMMENT:,} characters."]})
    if "\x00" in comment:
        raise Invalid({"comment": ["The comment contains a NUL character."]})
    return comment


def _record_answer(row: Approval | AgentAsk, actor: Actor, outcome: str, comment: str) -> None:
    """Who answered what, when, on a pending approval or question (locked by the caller)."""
    row.outcome = outcome
    row.answered_by_id = actor.user_id
    row.answered_label = actor.label[:150]
    row.comment = comment
    row.answered_at = timezone.now()
    row.save()


def answer(
    actor: Actor, user: Any, approval_id: int, outcome: Answer, comment: str = ""
) -> Approval:
    """Answer a pending approval (`user` None: the system, on its timeout). Refused: someone
    answered first (Conflict naming their answer), the person may not answer, a request for
    changes without a comment."""
    if outcome not in ("approved", "rejected", "changes_requested"):
        raise Invalid({"outcome": ["Approve, reject or request changes."]})
    comment = _comment(comment)
    if outcome == "changes_requested" and not comment:
        raise Invalid({"comment": ["Say what should change."]})
    found = Approval.objects.filter(pk=approval_id).values_list("step__run_id", flat=True).first()
    if found is None:
        raise NotFound("That approval does not exist.")
    with transaction.atomic():
        if outcome == "changes_requested":
            engine.lock_tasks_of(found)  # handed back to their agents: the lock order
        run = engine.lock_run(found)
        approval = (
            Approval.objects.select_for_update(no_key=True, of=("self",))
            .select_related("step")
            .get(pk=approval_id)
        )
        if not approval.pending:
            raise Conflict(
                f"{approval.answered_label or 'Someone'} answered first: "
                f"{approval.get_outcome_display().lower()}.",
                approval=approval_data(approval, run),
            )
        if user is not None and not may_answer(user, approval):
            raise Forbidden(f"Only {who_text(approval)} may answer this approval.")
        _record_answer(approval, actor, outcome, comment)
        audit.record(
            actor,
            "approval.resolved",
            run.pipeline,
            after={"run": run.number, "step": approval.step.step_id, "outcome": outcome}
            | ({"comment": comment[:200]} if comment else {}),
        )
        _publish("approval.resolved", actor, approval, run)
        steps = engine.steps_of(run)
        step = next(s for s in steps if s.pk == approval.step_id)
        if run.state != PipelineRun.State.RUNNING or step.state != StepRun.State.AWAITING_APPROVAL:
            return approval
        definition = run.version.definition
        if outcome == "approved":
            step.state, step.approved = StepRun.State.WAITING, True
            step.save(update_fields=["state", "approved"])
        elif outcome == "rejected":
            said = f": {comment}" if comment else "."
            engine.end_step(
                actor,
                run,
                steps,
                step,
                StepRun.State.FAILED,
                error=f"Rejected by {actor.label}{said}",
            )
        else:
            # Back to the agents of the steps it waits for, with the comment as instructions.
            step.state = StepRun.State.WAITING
            step.save(update_fields=["state"])
            for need in steps:
                if need.step_id not in definition.step(step.step_id).needs or need.task_id is None:
                    continue
                spec = definition.step(need.step_id)
                need.state, need.ended_at, need.output, need.error = (
                    StepRun.State.RUNNING,
                    None,
                    "",
                    "",
                )
                need.attempts, need.deadline_at = 1, engine.deadline(spec)
                need.save()
                runs.dispatch(
                    actor,
                    runs.Dispatch(task_id=need.task_id, instructions=comment, land_in=spec.lands),
                )
                engine.publish_run("pipeline.step_started", actor, run, steps, need)
        engine.publish_run("pipeline.run_changed", actor, run, steps, step)
        engine.advance(actor, run, steps)
    return approval


def time_out(now: datetime | None = None) -> int:
    """Pending approvals past their deadline get their `on_timeout` outcome."""
    now = now or timezone.now()
    due = list(
        Approval.objects.pending()
        .filter(deadline_at__lte=now)
        .values_list("pk", "on_timeout")[:100]
    )
    for approval_id, on_timeout in due:
        outcome: Answer = "approved" if on_timeout == "approve" else "rejected"
        try:
            answer(
                Actor.system("approval timeout"), None, approval_id, outcome, "No answer in time."
            )
        except Conflict:
            continue  # answered meanwhile
    return len(due)


# --- An agent asks (MCP's request_approval) ------------------------------------------------------

AgentAskEventType = Literal["agent_ask.requested", "agent_ask.resolved"]
AgentAnswer = Literal["approved", "rejected", "expired"]  # expired: by its deadline only
MAX_QUESTION, MAX_DETAILS = 500, 20000
ASK_TIMEOUT_S = (10, 86400)  # the shortest and longest deadline an agent may set


class AgentAskData(TypedDict):
    id: int
    agent: str
    gateway_id: int | None
    task_id: int | None
    task_title: str
    question: str
    details: str
    requested_at: str
    deadline_at: str
    outcome: str
    answered_by: str
    comment: str
    answered_at: str | None
    url: str


class AgentAskEvent(TypedDict):
    """An agent asked a person before going on, or the question was answered (or expired)."""

    type: AgentAskEventType
    actor: ActorData
    ask: AgentAskData


def agent_ask_data(ask: AgentAsk, gateway_id: int | None = None) -> AgentAskData:
    return {
        "id": ask.pk,
        "agent": ask.agent_name,
        "gateway_id": gateway_id,
        "task_id": ask.task_id,
        "task_title": ask.task.title if ask.task_id and ask.task else "",
        "question": ask.question,
        "details": ask.details,
        "requested_at": ask.requested_at.isoformat(),
        "deadline_at": ask.deadline_at.isoformat(),
        "outcome": ask.outcome,
        "answered_by": ask.answered_label,
        "comment": ask.comment,
        "answered_at": ask.answered_at.isoformat() if ask.answered_at else None,
        "url": f"/pipelines/approvals/#agent-ask-{ask.pk}",
    }


def _publish_ask(event_type: AgentAskEventType, actor: Actor, ask: AgentAsk) -> None:
    gateway_id = Agent.objects.filter(pk=ask.agent_id).values_list("gateway_id", flat=True).first()
    event: AgentAskEvent = {
        "type": event_type,
        "actor": actor.as_dict(),
        "ask": agent_ask_data(ask, gateway_id),
    }
    live.publish(events.TOPIC, event, gateway_id=gateway_id)


def ask_agent(
    agent_id: int,
    question: str,
    details: str = "",
    task_id: int | None = None,
    timeout_s: int = 900,
) -> AgentAsk:
    """An agent's question for a person, waiting until `timeout_s` for an answer. `task_id`:
    one of its own tasks, which the question is about (shown with it)."""
    question, details = " ".join((question or "").split()), (details or "").strip()
    problems: dict[str, list[str]] = {}
    if not question:
        problems["question"] = ["Ask something."]
    elif len(question) > MAX_QUESTION:
        problems["question"] = [f"Keep the question under {MAX_QUESTION} characters."]
    if len(details) > MAX_DETAILS:
        problems["details"] = [f"Keep the details under {MAX_DETAILS:,} characters."]
    if not ASK_TIMEOUT_S[0] <= timeout_s <= ASK_TIMEOUT_S[1]:
        problems["timeout_s"] = [f"Between {ASK_TIMEOUT_S[0]} and {ASK_TIMEOUT_S[1]} seconds."]
    if "\x00" in question + details:
        problems["question"] = ["The text contains a NUL character."]
    if problems:
        raise Invalid(problems)
    with transaction.atomic():
        agent = Agent.objects.get(pk=agent_id)
        if task_id is not None:
            task = Task.objects.on_board().filter(pk=task_id).first()
            if task is None:
                raise NotFound(f"Task #{task_id} does not exist (any more).")
            if task.assignee_agent_id != agent_id:
                raise Forbidden(f"Task #{task_id} is not yours: ask about your own tasks.")
        ask = AgentAsk.objects.create(
            agent=agent,
            agent_name=agent.name,
            task_id=task_id,
            question=question,
            details=details,
            deadline_at=timezone.now() + timedelta(seconds=timeout_s),
        )
        actor = Actor.agent(agent.name)
        audit.record(actor, "agent_ask.requested", ask, after={"question": question[:200]})
        _publish_ask("agent_ask.requested", actor, ask)
    return ask


def may_answer_ask(user: Any, ask: AgentAsk) -> bool:
    """An operator who may act on the agent's gateway (the ask's agent: no query when the
    caller loaded it, as the overview's list does)."""
    from gateways import access

    gateway_id = ask.agent.gateway_id
    return (
        getattr(user, "is_authenticated", False)
        and user.is_active
        and has_role(user, "operator")
        and access.can_operate(user, gateway_id)
    )


def answer_agent(
    actor: Actor, user: Any, ask_id: int, outcome: AgentAnswer, comment: str = ""
) -> AgentAsk:
    """Answer an agent's question (`user` None: the system, on its deadline: expired). Refused:
    someone answered first (Conflict naming their answer), the person may not act on the
    agent's gateway."""
    if outcome not in ("approved", "rejected") and not (user is None and outcome == "expired"):
        raise Invalid({"outcome": ["Approve or reject."]})
    comment = _comment(comment)
    with transaction.atomic():
        ask = (
            AgentAsk.objects.select_for_update(no_key=True, of=("self",))
            .select_related("task")
            .filter(pk=ask_id)
            .first()
        )
        if ask is None:
            raise NotFound("That question does not exist.")
        if user is not None and not may_answer_ask(user, ask):
            raise Forbidden("Answering needs the operator role and operate on the agent's gateway.")
        if not ask.pending:
            raise Conflict(
                f"{ask.answered_label or 'Someone'} answered first: "
                f"{ask.get_outcome_display().lower()}.",
                ask=agent_ask_data(ask),
            )
        _record_answer(ask, actor, outcome, comment)
        audit.record(
            actor,
            "agent_ask.resolved",
            ask,
            after={"outcome": outcome} | ({"comment": comment[:200]} if comment else {}),
        )
        _publish_ask("agent_ask.resolved", actor, ask)
    return ask


def expire_agent_asks(now: datetime | None = None) -> int:
    """Questions past their deadline, unanswered: expired (the waiting agent is told)."""
    now = now or timezone.now()
    due = list(
        AgentAsk.objects.filter(outcome=AgentAsk.Outcome.PENDING, deadline_at__lte=now).values_list(
            "pk", flat=True
        )[:100]
    )
    for ask_id in due:
        try:
            answer_agent(
                Actor.system("question timeout"), None, ask_id, "expired", "No answer in time."
            )
        except Conflict:
            continue  # answered meanwhile
    return len(due)
