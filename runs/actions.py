"""Runs: dispatch a task to its agent, follow the attempt, end it once.

Every function here is one transaction (the run row, the task's change, the audit row and the
events together) and never holds one across a call to an agent or a gateway. A CLI agent takes
a queued run with `claim` (its heartbeats' answer offers it), reports with `report_progress`
and ends it with `finish`; an operator may `abort` it; the sweep loses runs whose lease ran out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max, Q, Sum
from django.utils import timezone

from agents.models import Agent
from billing import budgets
from billing.models import UsageRecord
from missioncontrol import audit, live
from missioncontrol.audit import Actor
from missioncontrol.errors import (
    ActionError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RunActive,
    RunEnded,
)
from runs import events
from runs.models import Run
from tasks import actions as tasks
from tasks import events as task_events
from tasks.models import Task

MAX_INSTRUCTIONS = 20000
MAX_REPLY = 100_000
# run.progress reaches browsers at most this often per run (the latest text always lands with
# the run's next change).
PROGRESS_EVERY_S = 0.25


@dataclass(frozen=True)
class Dispatch:
    """Hand `task_id` to the agent it is assigned to. `idempotency_key`: a retry of the same
    request (same person, same key) returns the run the first one made."""

    task_id: int
    instructions: str = ""
    land_in: str = Run.LandIn.REVIEW
    idempotency_key: str = ""


def lease_s(agent: Agent) -> int:
    """How long a run's lease lasts: the setting, and never under three heartbeat intervals."""
    return max(settings.MC_RUN_LEASE_S, 3 * (agent.heartbeat_interval_s or 30))


def brief(task: Task, instructions: str) -> str:
    """What the agent is asked: the task as the board has it, and the operator's words."""
    parts = [f"Task #{task.pk}: {task.title}"]
    if task.description.strip():
        parts.append(task.description.strip())
    if instructions.strip():
        parts.append(f"Instructions: {instructions.strip()}")
    parts.append("When you are done, answer with what you did; your answer is posted on the task.")
    return "\n\n".join(parts)


def _publish(event_type: events.RunEventType, actor: Actor, run: Run, task: Task) -> None:
    live.publish(
        "board",
        events.changed(event_type, actor, run, task_events.task_data(task), tasks.board_data(task)),
    )


def dispatch(actor: Actor, order: Dispatch) -> tuple[Run, bool]:
    """The run (queued) of `order` and whether it is new. Refused: the task has no agent, its
    agent is paused by a budget (AgentPaused, naming it), it already has an active run."""
    instructions = (order.instructions or "").strip()
    if len(instructions) > MAX_INSTRUCTIONS:
        raise Invalid(
            {"instructions": [f"Keep instructions under {MAX_INSTRUCTIONS:,} characters."]}
        )
    if order.land_in not in Run.LandIn.values:
        raise Invalid({"land_in": ["Choose review or done."]})
    key = (order.idempotency_key or "").strip()
    if len(key) > 100:
        raise Invalid({"idempotency_key": ["Keep the Idempotency-Key under 100 characters."]})
    try:
        with transaction.atomic():
            return _dispatch(actor, order, instructions, key)
    except IntegrityError:
        # Two requests with one key for two tasks at once: the other one won.
        raise Conflict("That Idempotency-Key was used for another run.") from None


def dispatch_many(
    orders: list[tuple[Callable[[], Actor], Dispatch]],
) -> list[tuple[Run, bool] | ActionError]:
    """Many dispatches in one transaction (the fast route's group commit: one commit for all),
    each answered as `dispatch` answers it. An order's `admit` names who asks (the token, role
    and grants, read here in the same transaction) or refuses; a refused order — by its admit
    or by the dispatch — leaves nothing (the dispatch's own savepoint) and the others stand."""
    results: list[tuple[Run, bool] | ActionError] = []
    with transaction.atomic():
        for admit, order in orders:
            try:
                results.append(dispatch(admit(), order))
            except ActionError as refused:
                results.append(refused)
    return results


def _dispatch(actor: Actor, order: Dispatch, instructions: str, key: str) -> tuple[Run, bool]:
    task = tasks.lock_task(order.task_id)
    if key and actor.user_id is not None:
        earlier = Run.objects.filter(requested_by_id=actor.user_id, idempotency_key=key).first()
        if earlier is not None:
            if earlier.task_id != task.pk:
                raise Conflict("That Idempotency-Key was used for another task's run.")
            return earlier, False
    if task.archived_at is not None:
        raise NotFound("That task is archived.")
    if task.assignee_agent_id is None:
        raise Invalid({"assignee": ["Assign the task to an agent first."]})
    # The task's attempts, one query: is one still active, and the next attempt's number.
    attempts = list(Run.objects.filter(task=task).values_list("pk", "state", "attempt"))
    active_pk = next((pk for pk, state, _n in attempts if state in Run.ACTIVE), None)
    if active_pk is not None:
        active = Run.objects.get(pk=active_pk)
        raise RunActive(
            f"Task #{task.pk} already has a run {active.get_state_display().lower()} "
            f"(attempt {active.attempt}).",
            run=events.run_data(active),
        )
    agent = Agent.objects.get(pk=task.assignee_agent_id)
    tasks.refuse_new_work(agent.pk, "Not dispatched")
    attempt = max((n for _pk, _state, n in attempts), default=0) + 1
    run = Run.objects.create(
        task=task,
        agent=agent,
        agent_name=agent.name,
        attempt=attempt,
        instructions=instructions,
        prompt=brief(task, instructions),
        land_in=order.land_in,
        requested_by_id=actor.user_id,
        requested_label=actor.label[:150],
        idempotency_key=key if actor.user_id is not None else "",
    )
    if task.blocked:
        # A new attempt is the answer to what blocked it.
        task = tasks.set_blocked(actor, task.pk, blocked=False)
    task = tasks.set_run_state(task.pk, run.state)
    audit.record(
        actor,
        "task.dispatched",
        task,
        after={"run": run.pk, "attempt": attempt, "agent": agent.name, "land_in": run.land_in},
    )
    _publish("task.dispatched", actor, run, task)
    return run, True


def retry(actor: Actor, run_id: int, idempotency_key: str = "") -> tuple[Run, bool]:
    """A new attempt of the task whose latest run `run_id` failed, timed out, was aborted or
    lost: dispatched again with that attempt's instructions and landing column, to the agent
    the task is assigned to now; the earlier attempts stay in its history."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        raise NotFound("That run does not exist.")
    if run.state == Run.State.SUCCEEDED:
        raise Invalid({"run": ["That attempt succeeded: dispatch the task again instead."]})
    if run.state not in Run.ENDED:
        raise RunActive(
            f"Attempt {run.attempt} is still {run.get_state_display().lower()}: abort it first.",
            run=events.run_data(run),
        )
    key = (idempotency_key or "").strip()
    if key and actor.user_id is not None:
        earlier = Run.objects.filter(requested_by_id=actor.user_id, idempotency_key=key).first()
        if earlier is not None and earlier.task_id == run.task_id:
            return earlier, False  # the same retry, asked again
    latest = Run.objects.filter(task_id=run.task_id).aggregate(n=Max("attempt"))["n"]
    if latest != run.attempt:
        raise Conflict(f"Attempt {run.attempt} is not the latest: retry attempt {latest}.")
    return dispatch(
        actor,
        Dispatch(
            task_id=run.task_id,
            instructions=run.instructions,
            land_in=run.land_in,
            idempotency_key=idempotency_key,
        ),
    )


def _tasks_text(ids: list[int]) -> str:
    return ", ".join(f"#{n}" for n in sorted(ids))


def auto_dispatch(actor: Actor, task: Task, old_status: str) -> None:
    """A task that entered To do, assigned to an agent set to auto-dispatch, is dispatched
    (tasks' column hook, in the move's transaction). Declined quietly when it cannot go now:
    blocked, already running, its agent paused (the card and the agent's page say why)."""
    if task.status != Task.Status.TODO or task.assignee_agent_id is None or task.blocked:
        return
    if not Agent.objects.filter(pk=task.assignee_agent_id, auto_dispatch=True).exists():
        return
    try:
        dispatch(Actor.system(f"auto-dispatch ({actor.label})"), Dispatch(task.pk))
    except (Conflict, Invalid, NotFound):
        return


def blockers_moved(actor: Actor, task: Task, old_status: str) -> None:
    """A task entered or left Done (tasks' column hook): the queued runs of the tasks waiting
    for it say again what they wait for (`run.waiting_changed`; empty: it goes out now)."""
    if old_status == task.status or Task.Status.DONE not in (old_status, task.status):
        return
    waiting = Task.blocked_by.through.objects.filter(to_task_id=task.pk).values("from_task_id")
    for run in Run.objects.filter(task_id__in=waiting, state=Run.State.QUEUED):
        _publish("run.waiting_changed", actor, run, Task.objects.for_cards().get(pk=run.task_id))


def _lock_run(run_id: int) -> Run:
    run = Run.objects.select_for_update(of=("self",), no_key=True).filter(pk=run_id).first()
    if run is None:
        raise NotFound("That run does not exist.")
    return run


def _own(run: Run, agent_id: int) -> None:
    if run.agent_id != agent_id:
        raise Forbidden("That run was given to another agent.")


def _ended(run: Run) -> RunEnded:
    return RunEnded(
        f"This run has ended: {run.get_state_display().lower()}.", run=events.run_data(run)
    )


def busy_slots(agent_id: int) -> int:
    return (
        Run.objects.of_agent(agent_id)
        .filter(state__in=(Run.State.SENDING, Run.State.RUNNING))
        .count()
    )


def claim(agent_id: int, run_id: int) -> Run:
    """A CLI agent takes a run offered to it: running, with a lease, the task In progress.
    Claiming a run it already holds returns it (a retried request)."""
    with transaction.atomic():
        run = _lock_run(run_id)
        _own(run, agent_id)
        if run.state == Run.State.RUNNING:
            return run
        if run.state != Run.State.QUEUED:
            raise _ended(run)
        agent = Agent.objects.get(pk=agent_id)
        if busy_slots(agent_id) >= agent.max_runs:
            raise Conflict(
                f"You already run {agent.max_runs} at once (your limit): finish one first."
            )
        tasks.refuse_new_work(agent_id, "Not started")
        if waiting := list(Task.objects.waiting_on(run.task_id).values_list("pk", flat=True)):
            raise Conflict(f"It waits for {_tasks_text(waiting)} to be done first.")
        now = timezone.now()
        run.state, run.started_at = Run.State.RUNNING, now
        run.lease_expires_at = now + timedelta(seconds=lease_s(agent))
        run.version += 1
        run.save(update_fields=["state", "started_at", "lease_expires_at", "version"])
        actor = Actor.agent(agent.name)
        task = Task.objects.get(pk=run.task_id)
        if task.status != Task.Status.IN_PROGRESS:
            task = tasks.move_task(actor, task.pk, to_status=Task.Status.IN_PROGRESS)
        task = tasks.set_run_state(task.pk, run.state)
        audit.record(actor, "run.started", task, after={"run": run.pk, "attempt": run.attempt})
        _publish("run.started", actor, run, task)
    return run


def take(agent_id: int, task_id: int) -> Run:
    """An agent takes a task to work on it now (the MCP server's claim): an unassigned task
    becomes its own, and the run offered to it for the task is claimed — or, when the task has
    no active run, one is started for it (queued and claimed in one transaction). Taking a task
    it already runs returns that run (a retried call). Refused (409): the task is someone
    else's, its active run is another agent's, the agent runs its limit or is paused, or the
    task waits for others."""
    with transaction.atomic():
        active = Run.objects.filter(task_id=task_id, state__in=Run.ACTIVE).first()
        if active is not None:
            if active.agent_id != agent_id:
                raise Conflict(
                    f"Task #{task_id} is being worked on by {active.agent_name} "
                    f"(attempt {active.attempt}, {active.get_state_display().lower()})."
                )
            # Run before task, as claim() locks them.
            return claim(agent_id, active.pk)
        agent = Agent.objects.get(pk=agent_id)
        actor = Actor.agent(agent.name)
        tasks.claim_task(actor, task_id, agent_id=agent_id)
        run, _created = dispatch(actor, Dispatch(task_id))
        return claim(agent_id, run.pk)


def current(agent_id: int, task_id: int | None = None) -> Run:
    """The run an agent is working on now (the one it holds, or the one on `task_id`)."""
    runs = Run.objects.of_agent(agent_id).filter(state=Run.State.RUNNING).order_by("started_at")
    if task_id is not None:
        runs = runs.filter(task_id=task_id)
    held = list(runs[:20])
    if not held:
        on = f" on task #{task_id}" if task_id is not None else ""
        raise Conflict(f"You have no run going{on}: claim a task first.")
    if len(held) > 1:
        raise Invalid(
            {
                "task_id": [
                    f"You run several tasks ({_tasks_text([r.task_id for r in held])}): name one."
                ]
            }
        )
    return held[0]


_progress_sent: dict[int, float] = {}
_progress_held: set[int] = set()  # runs whose latest words were held back (too soon)
_progress_lock = threading.Lock()
_held_listeners: list[Callable[[], None]] = []


def _progress_due(run_id: int) -> bool:
    """Whether a run's progress may go out now (≤ 4 a second); if not, it is held and goes out
    when due (flush_progress: the last words must land, not wait for the run's next change).
    A process where no progress loop runs to flush (a scale-out web process: `serve
    --no-workers`) holds nothing back: its reports go out as they come (the API's per-key rate
    limit bounds them)."""
    now = time.monotonic()
    with _progress_lock:
        if _held_listeners and now - _progress_sent.get(run_id, 0.0) < PROGRESS_EVERY_S:
            first = not _progress_held
            _progress_held.add(run_id)
        else:
            _progress_sent[run_id] = now
            _progress_held.discard(run_id)
            if len(_progress_sent) > 10_000:
                _progress_sent.clear()
            return True
    if first:
        transaction.on_commit(_progress_was_held)
    return False


def on_progress_held(listener: Callable[[], None]) -> Callable[[], None]:
    """Call `listener` (any thread; quick) after a commit that held progress back; returns
    what stops it. The runs' progress loop listens and flushes after PROGRESS_EVERY_S."""
    _held_listeners.append(listener)
    return lambda: _held_listeners.remove(listener)


def _progress_was_held() -> None:
    for listener in list(_held_listeners):
        listener()


def flush_progress() -> int:
    """Publish the held-back progress of runs still running (their latest words, as stored),
    each when due; returns how many went out (the rest stay held)."""
    with _progress_lock:
        held = set(_progress_held)
        _progress_held.clear()
    sent = 0
    for run_id in sorted(held):
        with transaction.atomic():
            run = Run.objects.filter(pk=run_id, state=Run.State.RUNNING).first()
            if run is None or not _progress_due(run_id):
                continue
            task = Task.objects.for_cards().get(pk=run.task_id)
            actor = _gateway_actor(run) if run.external_run_id else Actor.agent(run.agent_name)
            _publish("run.progress", actor, run, task)
            sent += 1
    return sent


def report_progress(agent_id: int, run_id: int, text: str) -> Run:
    """What the agent is doing now (renews its lease). Shown live, at most 4 times a second."""
    text = " ".join((text or "").split())[:500]
    with transaction.atomic():
        run = _lock_run(run_id)
        _own(run, agent_id)
        if run.state != Run.State.RUNNING:
            raise _ended(run) if run.state in Run.ENDED else Conflict("Claim the run first.")
        agent = Agent.objects.get(pk=agent_id)
        run.progress = text
        run.lease_expires_at = timezone.now() + timedelta(seconds=lease_s(agent))
        run.save(update_fields=["progress", "lease_expires_at"])
        tasks.set_run_progress(run.task_id, text)
        if _progress_due(run.pk):
            task = Task.objects.for_cards().get(pk=run.task_id)
            _publish("run.progress", Actor.agent(agent.name), run, task)
    return run


def release(agent_id: int, run_id: int) -> Run:
    """The agent gives a run back before it ends (a worker stopped with Ctrl-C): queued again,
    same attempt, for the next free worker. Releasing a run not held is a no-op."""
    with transaction.atomic():
        run = _lock_run(run_id)
        _own(run, agent_id)
        if run.state in Run.ENDED:
            raise _ended(run)
        if run.state == Run.State.QUEUED:
            return run
        run.state, run.started_at, run.lease_expires_at = Run.State.QUEUED, None, None
        run.progress = ""
        run.version += 1
        run.save(update_fields=["state", "started_at", "lease_expires_at", "progress", "version"])
        agent = Agent.objects.get(pk=agent_id)
        actor = Actor.agent(agent.name)
        task = tasks.set_run_state(run.task_id, run.state)
        audit.record(actor, "run.released", task, after={"run": run.pk, "attempt": run.attempt})
        _publish("run.released", actor, run, task)
    return run


Outcome = Literal["succeeded", "failed"]


def _usage(run: Run, until: datetime) -> None:
    """The run's tokens and cost: its agent's usage reported for its task while it ran."""
    if run.agent_id is None or run.started_at is None:
        return
    totals = UsageRecord.objects.filter(
        agent_id=run.agent_id,
        task_id=run.task_id,
        occurred_at__gte=run.started_at,
        occurred_at__lte=until,
    ).aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"), c=Sum("cost_usd"))
    run.input_tokens, run.output_tokens = totals["i"] or 0, totals["o"] or 0
    run.cost_nanos = int((totals["c"] or Decimal(0)).scaleb(9))


def finish(agent_id: int, run_id: int, outcome: Outcome, reply: str = "", error: str = "") -> Run:
    """The agent ends its run. Succeeded: its reply is posted on the task as its comment and
    the task moves where the dispatch said (Review or Done). Failed: the task is blocked with
    the agent's reason. Finishing again the same way returns the run (a retried request)."""
    reply, error = (reply or "").strip(), (error or "").strip()
    if len(reply) > MAX_REPLY:
        raise Invalid({"reply": [f"Keep the reply under {MAX_REPLY:,} characters."]})
    with transaction.atomic():
        run = _lock_run(run_id)
        _own(run, agent_id)
        if run.state == outcome:
            return run
        if run.state in Run.ENDED:
            raise _ended(run)
        if run.state == Run.State.QUEUED:
            raise Conflict("Claim the run first.")
        agent = Agent.objects.get(pk=agent_id)
        return _end(
            Actor.agent(agent.name),
            run,
            Run.State.SUCCEEDED if outcome == "succeeded" else Run.State.FAILED,
            reply=reply,
            error=error[:1000],
            agent=agent,
        )


# What a higher app does when a run ends (pipelines advance their step), in the same
# transaction, after the run and its task have changed: `hook(actor, run)`.
EndHook = Callable[[Actor, Run], None]
_end_hooks: dict[str, EndHook] = {}


def register_end_hook(name: str, hook: EndHook) -> None:
    _end_hooks[name] = hook


def _end(
    actor: Actor,
    run: Run,
    state: str,
    *,
    reply: str = "",
    error: str = "",
    error_kind: str = "",
    agent: Agent | None = None,
    to_status: str | None = None,
    blocked_reason: str = "",
) -> Run:
    """End `run` (locked, active) as `state`, with the task's side of it; in the caller's
    transaction."""
    now = timezone.now()
    _usage(run, now)
    run.state, run.ended_at, run.lease_expires_at = state, now, None
    run.reply, run.error, run.error_kind = reply, error, error_kind
    run.version += 1
    run.save()
    task = Task.objects.get(pk=run.task_id)
    if state == Run.State.SUCCEEDED:
        if reply:
            tasks.add_comment(actor, task.pk, reply[:20000], agent=agent)
        if task.blocked:
            tasks.set_blocked(actor, task.pk, blocked=False)
        task = Task.objects.get(pk=task.pk)
        if task.status != run.land_in:
            tasks.move_task(actor, task.pk, to_status=run.land_in)
    else:
        reason = blocked_reason or f"Run {run.attempt} {run.get_state_display().lower()}: " + (
            error or "no reason given"
        )
        # Blocked first, then moved: an agent set to auto-dispatch is not handed it again on
        # its way back into To do (the operator decides).
        tasks.set_blocked(actor, task.pk, blocked=True, reason=reason[:500])
        if to_status is not None and task.status != to_status:
            tasks.move_task(actor, task.pk, to_status=to_status)
    task = tasks.set_run_state(task.pk, state)
    verb: events.RunEventType = {
        Run.State.SUCCEEDED: "run.succeeded",
        Run.State.FAILED: "run.failed",
        Run.State.TIMED_OUT: "run.failed",
        Run.State.ABORTED: "run.aborted",
        Run.State.LOST: "run.lost",
    }[Run.State(state)]  # type: ignore[assignment]
    audit.record(
        actor,
        verb,
        task,
        after={"run": run.pk, "attempt": run.attempt, "state": state}
        | ({"error": error[:200]} if error else {}),
    )
    _publish(verb, actor, run, task)
    with _progress_lock:
        _progress_sent.pop(run.pk, None)
    for hook in _end_hooks.values():
        hook(actor, run)
    return run


def abort(actor: Actor, run_id: int) -> Run:
    """An operator stops a run: aborted now, the task blocked saying by whom. A CLI agent
    learns it from its next heartbeat's answer (`stop`) or its next report (409)."""
    with transaction.atomic():
        run = _lock_run(run_id)
        if run.state in Run.ENDED:
            raise _ended(run)
        return _end(
            actor,
            run,
            Run.State.ABORTED,
            error=f"Aborted by {actor.label}.",
            error_kind="aborted",
            blocked_reason=f"Run {run.attempt} aborted by {actor.label}.",
        )


def time_out(actor: Actor, run_id: int, reason: str) -> Run | None:
    """A run that went past the time its dispatcher gave it (a pipeline step's `timeout_s`):
    timed out now, the task blocked with `reason`. None when it had ended already."""
    with transaction.atomic():
        run = _lock_run(run_id)
        if run.state in Run.ENDED:
            return None
        return _end(actor, run, Run.State.TIMED_OUT, error=reason[:1000], error_kind="timeout")


def sweep_leases(now: datetime | None = None) -> int:
    """Runs whose agent stopped reporting past their lease: lost, the task back in To do
    (blocked, saying so: it needs the operator). The number lost."""
    now = now or timezone.now()
    lost = 0
    for run_id in list(Run.objects.lease_expired(now).values_list("pk", flat=True)[:100]):
        with transaction.atomic():
            run = _lock_run(run_id)
            if run.state not in (Run.State.SENDING, Run.State.RUNNING):
                continue
            if run.lease_expires_at is None or run.lease_expires_at >= now:
                continue
            reason = f"{run.agent_name} stopped reporting on it (its lease ran out)."
            _end(
                Actor.system(),
                run,
                Run.State.LOST,
                error=reason,
                error_kind="lease_expired",
                to_status=Task.Status.TODO,
                blocked_reason=f"Run {run.attempt} lost: {reason}"[:500],
            )
            lost += 1
    return lost


def stop_paused_runs() -> list[Run]:
    """Runs whose agent a spent budget now pauses: aborted, the task blocked naming the budget
    (the budget counts usage as it arrives, so a run is stopped mid-way, not when it ends). A
    CLI agent learns it from its heartbeat (`stop`) or its next report; a gateway's run is
    stopped there by the caller (runs/loops.py)."""
    going = dict(
        Run.objects.filter(state__in=(Run.State.SENDING, Run.State.RUNNING)).values_list(
            "pk", "agent_id"
        )
    )
    if not going:
        return []
    held = budgets.paused({a for a in going.values() if a is not None})
    stopped: list[Run] = []
    for run_id, agent_id in going.items():
        pause = held.get(agent_id) if agent_id is not None else None
        if pause is None:
            continue
        with transaction.atomic():
            run = _lock_run(run_id)
            if run.state not in (Run.State.SENDING, Run.State.RUNNING):
                continue
            why = f"the budget {pause.budget} is spent. {pause.reason}"
            stopped.append(
                _end(
                    Actor.system("budget"),
                    run,
                    Run.State.ABORTED,
                    error=f"Stopped: {why}"[:1000],
                    error_kind="budget",
                    blocked_reason=f"Run {run.attempt} stopped: {why}"[:500],
                )
            )
    return stopped


# --- What a CLI agent's heartbeat answer carries ---------------------------------------------


def _renew(agent_ids: set[int], now: datetime) -> None:
    """The leases of the runs these agents hold, renewed (their heartbeat arrived)."""
    by_lease: dict[int, list[int]] = {}
    for agent in Agent.objects.filter(pk__in=agent_ids).only("pk", "heartbeat_interval_s"):
        by_lease.setdefault(lease_s(agent), []).append(agent.pk)
    with transaction.atomic():
        for seconds, ids in by_lease.items():
            Run.objects.filter(agent_id__in=ids, state=Run.State.RUNNING).update(
                lease_expires_at=now + timedelta(seconds=seconds)
            )


def offered(run: Run) -> dict[str, Any]:
    return {
        "id": run.pk,
        "task_id": run.task_id,
        "title": run.task.title,
        "attempt": run.attempt,
        "state": run.state,
        "prompt": run.prompt,
        "land_in": run.land_in,
        "lease_expires_at": run.lease_expires_at.isoformat() if run.lease_expires_at else None,
        "claim_url": f"/api/v1/runs/{run.pk}/claim",
    }


def work_for(agent_ids: set[int], now: datetime) -> dict[int, dict[str, Any]]:
    """What heartbeating agents are told of runs, per agent: `runs` (the ones it holds — their
    leases renewed by this heartbeat — then the queued ones it has room for, oldest first) and
    `stop` (runs it held that an operator ended in the last lease period). Agents with none are
    left out (one query for a batch with no runs at all: the heartbeat's hot path)."""
    if not agent_ids:
        return {}
    rows = list(
        Run.objects.filter(agent_id__in=agent_ids)
        .filter(
            Q(state__in=Run.ACTIVE)
            | Q(
                state=Run.State.ABORTED,
                started_at__isnull=False,
                ended_at__gte=now - timedelta(seconds=settings.MC_RUN_LEASE_S),
            )
        )
        .select_related("task")
        .with_waiting()
        .order_by("created_at", "id")
    )
    if not rows:
        return {}
    if holding := {r.agent_id for r in rows if r.state == Run.State.RUNNING and r.agent_id}:
        _renew(holding, now)
    out: dict[int, dict[str, Any]] = {
        r.agent_id: {"runs": [], "stop": []} for r in rows if r.agent_id
    }
    limits: dict[int, int] = {}
    if any(r.state == Run.State.QUEUED for r in rows):
        limits = dict(Agent.objects.filter(pk__in=out).values_list("pk", "max_runs"))
    held: dict[int, int] = {}
    queued: list[Run] = []
    for run in rows:
        assert run.agent_id is not None
        if run.state == Run.State.ABORTED:
            out[run.agent_id]["stop"].append(run.pk)
        elif run.state == Run.State.QUEUED:
            if not run.waits:  # type: ignore[attr-defined]
                queued.append(run)
        else:
            out[run.agent_id]["runs"].append(offered(run))
            held[run.agent_id] = held.get(run.agent_id, 0) + 1
    for run in queued:
        assert run.agent_id is not None
        if held.get(run.agent_id, 0) < (limits.get(run.agent_id) or 1):
            out[run.agent_id]["runs"].append(offered(run))
            held[run.agent_id] = held.get(run.agent_id, 0) + 1
    return out


# --- Gateway agents: the sender loop hands runs to the connector; its events end them ----------


@dataclass(frozen=True)
class GatewaySend:
    """A run to start on a gateway with its `agent` method (a session of its own per task)."""

    run_id: int
    gateway_id: int
    agent_external_id: str
    session_key: str
    prompt: str
    idempotency_key: str


def gateway_idempotency_key(run: Run) -> str:
    """Our durable run id, as the gateway's idempotency key (it keeps keys ~5 minutes only:
    exactly once is ours to keep) and, as the gateway names runs by it, the run's id there."""
    return f"mc-run-{run.pk}"


def take_gateway_runs(limit: int = 20) -> list[GatewaySend]:
    """Queued runs of connected gateways' agents that have a free slot, oldest first: now
    `sending` (with a lease), each once — whoever takes it sends it."""
    from gateways.models import Gateway

    sends: list[GatewaySend] = []
    with transaction.atomic():
        queued = list(
            Run.objects.queued_in_order()
            .ready()
            .filter(
                agent__source=Agent.Source.GATEWAY, agent__gateway__state=Gateway.State.CONNECTED
            )
            .select_related("agent")
            .select_for_update(of=("self",), no_key=True)[:limit]
        )
        if not queued:
            return []
        busy: dict[int, int] = {}
        for agent_id in {r.agent_id for r in queued}:
            assert agent_id is not None
            busy[agent_id] = busy_slots(agent_id)
        now = timezone.now()
        for run in queued:
            agent = run.agent
            assert agent is not None
            assert agent.gateway_id is not None
            if busy[agent.pk] >= agent.max_runs:
                continue
            busy[agent.pk] += 1
            run.state = Run.State.SENDING
            run.session_key = f"agent:{agent.external_id}:mc-task-{run.task_id}"[:300]
            run.external_run_id = gateway_idempotency_key(run)
            run.lease_expires_at = now + timedelta(seconds=lease_s(agent))
            run.version += 1
            run.save(
                update_fields=[
                    "state", "session_key", "external_run_id", "lease_expires_at", "version"
                ]
            )  # fmt: skip
            sends.append(
                GatewaySend(
                    run_id=run.pk,
                    gateway_id=agent.gateway_id,
                    agent_external_id=agent.external_id,
                    session_key=run.session_key,
                    prompt=run.prompt,
                    idempotency_key=run.external_run_id,
                )
            )
    return sends


def _gateway_actor(run: Run) -> Actor:
    from gateways.models import Gateway

    name = (
        Gateway.objects.filter(agents__runs=run).values_list("name", flat=True).first() or "gateway"
    )
    return Actor.gateway(name)


def _start(run: Run, actor: Actor) -> None:
    """sending → running: the task In progress, run.started (in the caller's transaction)."""
    now = timezone.now()
    run.state, run.started_at = Run.State.RUNNING, run.started_at or now
    run.version += 1
    run.save(update_fields=["state", "started_at", "external_run_id", "version"])
    task = Task.objects.get(pk=run.task_id)
    if task.status != Task.Status.IN_PROGRESS:
        task = tasks.move_task(actor, task.pk, to_status=Task.Status.IN_PROGRESS)
    task = tasks.set_run_state(task.pk, run.state)
    audit.record(actor, "run.started", task, after={"run": run.pk, "attempt": run.attempt})
    _publish("run.started", actor, run, task)


def gateway_accepted(run_id: int, external_run_id: str) -> Run:
    """The gateway took the run (its `agent` answer): running."""
    with transaction.atomic():
        run = _lock_run(run_id)
        if run.state != Run.State.SENDING:
            return run  # its end already arrived, or an operator aborted it
        if external_run_id:
            run.external_run_id = external_run_id[:100]
        _start(run, _gateway_actor(run))
    return run


def gateway_refused(run_id: int, error: str, kind: str = "") -> Run:
    """The gateway refused to start the run: failed, in its words; the task blocked."""
    with transaction.atomic():
        run = _lock_run(run_id)
        if run.state not in (Run.State.SENDING, Run.State.QUEUED):
            return run
        return _end(
            _gateway_actor(run), run, Run.State.FAILED, error=error[:1000], error_kind=kind[:64]
        )


def gateway_unsent(run_id: int) -> Run:
    """The gateway could not be reached: queued again (the next send carries the same key, so
    a request that did arrive is not started twice)."""
    with transaction.atomic():
        run = _lock_run(run_id)
        if run.state == Run.State.SENDING:
            run.state, run.lease_expires_at = Run.State.QUEUED, None
            run.save(update_fields=["state", "lease_expires_at"])
    return run


GatewayOutcome = Literal["final", "error", "aborted"]


def gateway_run_ended(
    gateway_id: int,
    external_run_id: str,
    outcome: GatewayOutcome,
    reply: str = "",
    error: str = "",
    error_kind: str = "",
    session_key: str = "",
) -> Run | None:
    """A gateway run of ours ended (its final `chat` event): succeeded with the agent's reply,
    failed with the gateway's reason, or aborted. Ours: by the gateway's run id, our key, or
    the task's own session (`session_key`). None when it is not one of our runs (or it had
    ended already: its end is kept once)."""
    with transaction.atomic():
        # The gateway's id for the run, or ours (the idempotency key: the gateway names a run
        # it was given one for by it).
        ours = Q(external_run_id=external_run_id[:100])
        if external_run_id.startswith("mc-run-") and external_run_id[7:].isdigit():
            ours |= Q(pk=int(external_run_id[7:]))
        if ":mc-task-" in session_key:
            # A run in a task's own session is that task's run, whatever id the gateway gave it
            # (a gateway that restarted mid-run resumes it under a new one).
            ours |= Q(session_key=session_key[:300])
        run = (
            Run.objects.select_for_update(of=("self",), no_key=True)
            .filter(ours, agent__gateway_id=gateway_id)
            .first()
        )
        if run is None or run.state not in (Run.State.SENDING, Run.State.RUNNING):
            return None
        agent = Agent.objects.get(pk=run.agent_id) if run.agent_id else None
        # The agent ends its own run (its reply is its comment); the gateway if it is gone.
        actor = Actor.agent(agent.name) if agent is not None else _gateway_actor(run)
        if run.state == Run.State.SENDING:
            _start(run, actor)  # the answer to `agent` is still on its way
        if outcome == "final":
            return _end(actor, run, Run.State.SUCCEEDED, reply=reply[:MAX_REPLY], agent=agent)
        if outcome == "aborted":
            return _end(
                actor, run, Run.State.ABORTED, error=error or "Aborted on the gateway.",
                error_kind="aborted",
            )  # fmt: skip
        return _end(
            actor, run, Run.State.FAILED, error=error or "The gateway reported an error.",
            error_kind=error_kind,
        )  # fmt: skip


def renew_gateway_leases() -> int:
    """The runs of connected gateways are alive while their gateway is: leases renewed (a
    gateway lost for longer than a lease loses its runs)."""
    from gateways.models import Gateway

    now = timezone.now()
    return Run.objects.filter(
        state__in=(Run.State.SENDING, Run.State.RUNNING),
        agent__gateway__state=Gateway.State.CONNECTED,
    ).update(lease_expires_at=now + timedelta(seconds=settings.MC_RUN_LEASE_S))


def requeue_unsent() -> int:
    """At the sender's start: runs left `sending` by a process that stopped before it heard the
    gateway's answer go out again, with the same key (the gateway starts a key once)."""
    with transaction.atomic():
        return Run.objects.filter(state=Run.State.SENDING).update(
            state=Run.State.QUEUED, lease_expires_at=None
        )


@dataclass(frozen=True)
class GatewayCheck:
    """A gateway run to ask about: its end may have come while no one was listening."""

    run_id: int
    gateway_id: int
    external_run_id: str
    session_key: str
    started_ms: float = 0.0  # when it started (ms since the epoch): later replies are its


def gateway_connections() -> dict[int, datetime | None]:
    """The connected gateways, each with when it connected (a new time: it connected again)."""
    from gateways.models import Gateway

    return dict(
        Gateway.objects.filter(state=Gateway.State.CONNECTED).values_list("pk", "connected_at")
    )


def gateway_runs_to_check(
    older_than_s: float, gateway_ids: set[int] | None = None
) -> list[GatewayCheck]:
    """Running runs of connected gateways' agents started more than `older_than_s` ago (of
    these gateways only, if given)."""
    from gateways.models import Gateway

    since = timezone.now() - timedelta(seconds=older_than_s)
    runs = Run.objects.filter(
        state=Run.State.RUNNING,
        started_at__lt=since,
        agent__gateway__state=Gateway.State.CONNECTED,
    )
    if gateway_ids is not None:
        runs = runs.filter(agent__gateway_id__in=gateway_ids)
    rows = runs.values_list(
        "pk", "agent__gateway_id", "external_run_id", "session_key", "started_at"
    )
    return [
        GatewayCheck(pk, gid, ext, key, started.timestamp() * 1000 if started else 0.0)
        for pk, gid, ext, key, started in rows
        if gid is not None
    ]


def gateway_run_lost(run_id: int, reason: str) -> Run | None:
    """A gateway run the gateway no longer has (it restarted, or dropped it) and that left no
    reply: lost, the task back in To do, blocked saying so. None if it had ended meanwhile."""
    with transaction.atomic():
        run = _lock_run(run_id)
        if run.state not in (Run.State.SENDING, Run.State.RUNNING):
            return None
        return _end(
            _gateway_actor(run),
            run,
            Run.State.LOST,
            error=reason[:1000],
            error_kind="gateway_lost",
            to_status=Task.Status.TODO,
            blocked_reason=f"Run {run.attempt} lost: {reason}"[:500],
        )


def gateway_run_resumed(run_id: int, external_run_id: str) -> None:
    """The gateway resumed the run under an id of its own (after its restart): the run follows
    that id, so the resumed run's end ends it."""
    with transaction.atomic():
        run = _lock_run(run_id)
        if run.state in (Run.State.SENDING, Run.State.RUNNING):
            run.external_run_id = external_run_id[:100]
            run.save(update_fields=["external_run_id"])


def gateway_progress(gateway_id: int, session_key: str, text: str) -> bool:
    """A gateway run's streaming reply (the connector's writer, ≤ 4 times a second a run): its
    last words are what the agent is doing now, on the card and the task's page. False when
    the session is no task's running run."""
    if ":mc-task-" not in session_key:
        return False
    shown = " ".join(text.split())[-500:]
    with transaction.atomic():
        run = (
            Run.objects.select_for_update(of=("self",), no_key=True)
            .filter(
                session_key=session_key[:300],
                agent__gateway_id=gateway_id,
                state__in=(Run.State.SENDING, Run.State.RUNNING),
            )
            .first()
        )
        if run is None or run.progress == shown:
            return False
        run.progress = shown
        run.save(update_fields=["progress"])
        tasks.set_run_progress(run.task_id, shown)
        if _progress_due(run.pk):
            task = Task.objects.for_cards().get(pk=run.task_id)
            _publish("run.progress", _gateway_actor(run), run, task)
    return True
