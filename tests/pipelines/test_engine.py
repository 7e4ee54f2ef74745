"""Pipelines advance by themselves (#28): each step a task dispatched to its agent, the next
step started in the transaction that ended the one before it; `if`, retries, approvals,
cancel and re-run from a failed step. CLI agents driven through runs' own actions (claim,
finish) on the real database; tests/pipelines/test_api.py drives them over HTTP."""

from __future__ import annotations

import pytest

from agents.models import Agent
from missioncontrol.audit import Actor
from missioncontrol.errors import Conflict, Forbidden, Invalid
from pipelines import actions, approvals
from pipelines.models import Approval, PipelineRun, StepRun
from runs import actions as runs
from runs.models import Run
from tasks.models import Task

pytestmark = pytest.mark.django_db(transaction=True)

ADMIN = Actor.system("test")


@pytest.fixture
def agents(transactional_db) -> dict[str, Agent]:
    return {
        name: Agent.objects.create(name=name, capabilities=["writer"] if name != "cy" else [])
        for name in ("ann", "bo", "cy")
    }


def save(text: str, pipeline_id: int | None = None) -> int:
    return actions.save(ADMIN, text, pipeline_id).pipeline_id


def steps(run: PipelineRun) -> dict[str, StepRun]:
    return {s.step_id: s for s in StepRun.objects.filter(run=run)}


def work(step: StepRun, outcome: str = "succeeded", reply: str = "", error: str = "") -> Run:
    """The step's agent takes its queued run and ends it."""
    run = Run.objects.get(task=step.task, state=Run.State.QUEUED)
    assert run.agent_id is not None
    runs.claim(run.agent_id, run.pk)
    return runs.finish(run.agent_id, run.pk, outcome, reply=reply, error=error)  # type: ignore[arg-type]


def state(run: PipelineRun) -> tuple[str, dict[str, str]]:
    run.refresh_from_db()
    return run.state, {k: s.state for k, s in steps(run).items()}


CHAIN = """
name: Chain
inputs:
  - {name: topic, type: text, required: true}
steps:
  - id: research
    agent: ann
    brief: "Research {{ inputs.topic }}"
  - id: write
    agent: bo
    needs: [research]
    brief: "Write from: {{ steps.research.output }}"
  - id: review
    pool: writer
    needs: [research]
    brief: "Review {{ inputs.topic }}"
  - id: publish
    needs: [write, review]
    approval: {by: operator, instructions: Check it}
"""


def test_a_graph_runs_to_the_end_by_itself_outputs_flowing_into_briefs(agents, bob_operator):
    pipeline_id = save(CHAIN)
    run, created = actions.start(
        Actor.user(bob_operator), actions.Start(pipeline_id, {"topic": "tides"})
    )
    assert created
    assert state(run) == (
        "running",
        {"research": "running", "write": "waiting", "review": "waiting", "publish": "waiting"},
    )
    s = steps(run)
    task = s["research"].task
    assert task is not None
    assert task.assignee_agent_id == agents["ann"].pk
    assert "Research tides" in task.description
    assert Run.objects.get(task=task).state == "queued"

    work(s["research"], reply="The moon does it.")
    # Both steps that need research start at once (a graph, not a chain).
    assert state(run)[1] == {
        "research": "succeeded",
        "write": "running",
        "review": "running",
        "publish": "waiting",
    }
    s = steps(run)
    assert (
        "Write from: The moon does it." in Task.objects.get(pipeline_steps=s["write"]).description
    )
    assert s["review"].agent_name in ("ann", "bo")  # the pool: an agent labelled writer
    work(s["write"], reply="Draft.")
    work(s["review"], reply="Fine.")
    assert state(run)[1]["publish"] == "awaiting_approval"
    approval = Approval.objects.get(step=steps(run)["publish"])
    approvals.answer(Actor.user(bob_operator), bob_operator, approval.pk, "approved", "Ship it")
    assert state(run) == (
        "succeeded",
        {
            "research": "succeeded",
            "write": "succeeded",
            "review": "succeeded",
            "publish": "succeeded",
        },
    )
    # The first answer wins.
    with pytest.raises(Conflict, match="answered first"):
        approvals.answer(Actor.user(bob_operator), bob_operator, approval.pk, "rejected")


RETRY = """
name: Retry
steps:
  - id: flaky
    agent: ann
    retries: 1
  - id: after
    agent: bo
    needs: [flaky]
  - id: cleanup
    agent: cy
    needs: [flaky]
    if: failure
"""


def test_a_failing_step_retries_then_follows_its_if_rules_and_reruns_from_the_failed_step(
    agents, bob_operator
):
    run, _ = actions.start(ADMIN, actions.Start(save(RETRY)))
    flaky = steps(run)["flaky"]
    work(flaky, "failed", error="disk full")
    assert steps(run)["flaky"].state == "running"  # retried once
    assert Run.objects.filter(task=flaky.task).count() == 2
    work(steps(run)["flaky"], "failed", error="disk still full")
    assert state(run)[1] == {"flaky": "failed", "after": "skipped", "cleanup": "running"}
    work(steps(run)["cleanup"], reply="Cleaned")
    assert state(run)[0] == "failed"
    assert "disk still full" in steps(run)["flaky"].error
    # Re-run from the failed step: it and what follows it start over.
    actions.rerun_from(Actor.user(bob_operator), run.pk, "flaky")
    assert state(run)[1] == {"flaky": "running", "after": "waiting", "cleanup": "succeeded"}
    work(steps(run)["flaky"], reply="ok now")
    assert state(run)[1]["after"] == "running"
    work(steps(run)["after"])
    assert state(run)[0] == "succeeded"
    assert Run.objects.filter(task=flaky.task).count() == 3  # one task, every attempt


def test_cancel_aborts_running_steps_and_skips_the_rest(agents, bob_operator):
    run, _ = actions.start(ADMIN, actions.Start(save(RETRY)))
    flaky = steps(run)["flaky"]
    _r, aborted = actions.cancel(Actor.user(bob_operator), run.pk)
    assert [a.state for a in aborted] == ["aborted"]
    assert state(run) == (
        "cancelled",
        {"flaky": "cancelled", "after": "skipped", "cleanup": "skipped"},
    )
    assert not Run.objects.filter(task=flaky.task, state__in=Run.ACTIVE).exists()
    with pytest.raises(Conflict):
        actions.cancel(Actor.user(bob_operator), run.pk)


@pytest.mark.parametrize("repeat", range(3))
def test_cancel_and_a_steps_end_at_once_leave_one_consistent_outcome(agents, bob_operator, repeat):
    """The agent finishes the step's run while an operator cancels the pipeline run, at the same
    moment: whichever commits first, the other is refused cleanly or sees its result — never a
    deadlock, never a step started after the cancel, never an active run left behind. (On
    PostgreSQL the two really run at once: both take the run's and the task's row locks in one
    order.)"""
    import threading

    from django.db import close_old_connections

    run, _ = actions.start(ADMIN, actions.Start(save(RETRY)))
    flaky = steps(run)["flaky"]
    agent_run = Run.objects.get(task=flaky.task, state=Run.State.QUEUED)
    agent_id = agent_run.agent_id
    assert agent_id is not None
    runs.claim(agent_id, agent_run.pk)
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def finish() -> None:
        barrier.wait()
        try:
            outcomes["finish"] = runs.finish(agent_id, agent_run.pk, "succeeded", "ok").state
        except Exception as refused:
            outcomes["finish"] = refused
        finally:
            close_old_connections()

    def cancel() -> None:
        barrier.wait()
        try:
            outcomes["cancel"] = actions.cancel(Actor.user(bob_operator), run.pk)[0].state
        except Exception as refused:
            outcomes["cancel"] = refused
        finally:
            close_old_connections()

    threads = [threading.Thread(target=finish), threading.Thread(target=cancel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes["cancel"] == "cancelled", outcomes
    # The finish either won (succeeded) or found the run aborted by the cancel (run_ended).
    finished = outcomes["finish"]
    assert finished == "succeeded" or type(finished).__name__ == "RunEnded", outcomes
    final, by_step = state(run)
    assert final == "cancelled"
    assert by_step["after"] in ("skipped", "cancelled"), by_step
    assert not Run.objects.filter(state__in=Run.ACTIVE).exists()


def test_the_idempotency_key_makes_one_run_and_skip_refuses_an_overlap(agents):
    pipeline_id = save(RETRY)
    first, created = actions.start(ADMIN, actions.Start(pipeline_id, idempotency_key="k1"))
    again, created_again = actions.start(ADMIN, actions.Start(pipeline_id, idempotency_key="k1"))
    assert (created, created_again, again.pk) == (True, False, first.pk)
    with pytest.raises(actions.Overlap):
        actions.start(ADMIN, actions.Start(pipeline_id))
    assert PipelineRun.objects.count() == 1


def test_a_rejected_gate_fails_the_run_and_only_named_people_answer(
    agents, bob_operator, carol_admin
):
    text = """
name: Gate
steps:
  - id: ask
    approval: {by: [carol], instructions: Go ahead}
  - id: go
    agent: ann
    needs: [ask]
"""
    run, _ = actions.start(ADMIN, actions.Start(save(text)))
    approval = Approval.objects.get()
    with pytest.raises(Forbidden):
        approvals.answer(Actor.user(bob_operator), bob_operator, approval.pk, "approved")
    with pytest.raises(Invalid):
        approvals.answer(Actor.user(carol_admin), carol_admin, approval.pk, "changes_requested")
    approvals.answer(Actor.user(carol_admin), carol_admin, approval.pk, "rejected", "Not today")
    assert state(run) == ("failed", {"ask": "failed", "go": "skipped"})
    assert "Not today" in steps(run)["ask"].error


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name: x\nsteps:\n  - id: a\n    agent: nobody\n", "line 4: No agent is called “nobody”."),
        (
            "name: x\nsteps:\n  - id: a\n    agent: ann\n    needs: [b]\n  - id: b\n    agent: ann\n    needs: [a]\n",
            "line 5: The steps' needs make a cycle: a → b → a",
        ),
        (
            "name: x\nsteps:\n  - id: a\n    agent: ann\n  - id: b\n    agent: ann\n    brief: '{{ steps.a.output }}'\n",
            "line 7: {{ steps.a.output }}: step “b” does not depend on “a” (add it to its needs).",
        ),
        ("name: x\nsteps: [\n", "line 3: Not valid YAML or JSON"),
        (
            '{"name": "x", "steps": [{"id": "a", "agent": "ann", "retries": 9}]}',
            "line 1: “retries” must be a whole number from 0 to 5.",
        ),
    ],
)
def test_a_definition_s_problems_are_named_by_line(agents, text: str, problem: str) -> None:
    with pytest.raises(Invalid) as refused:
        actions.save(ADMIN, text)
    assert any(m.startswith(problem) for m in refused.value.messages), refused.value.messages


def test_every_save_is_a_new_version_and_a_run_keeps_its_own(agents):
    pipeline_id = save(RETRY)
    run, _ = actions.start(ADMIN, actions.Start(pipeline_id))
    version = actions.save(ADMIN, RETRY.replace("retries: 1", "retries: 0"), pipeline_id)
    assert version.number == 2
    run.refresh_from_db()
    assert run.version.number == 1
    assert run.version.definition.step("flaky").retries == 1


def test_overlap_queue_starts_the_next_run_when_the_one_before_it_ends(agents):
    pipeline_id = save("name: Q\noverlap: queue\nsteps:\n  - id: a\n    agent: ann\n")
    first, _ = actions.start(ADMIN, actions.Start(pipeline_id))
    second, _ = actions.start(ADMIN, actions.Start(pipeline_id))
    assert state(second) == ("queued", {"a": "waiting"})
    work(steps(first)["a"])
    assert state(first)[0] == "succeeded"
    assert state(second) == ("running", {"a": "running"})
    work(steps(second)["a"])
    assert state(second)[0] == "succeeded"
