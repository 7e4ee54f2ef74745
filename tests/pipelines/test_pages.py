"""The pipelines' pages (#28), through Django's test client on the real database: an admin
writes a definition in the editor (each problem shown with its line; a save is a new
version; an export reads back the same), an operator starts it from its inputs form and answers
its gate from the run's page; the gate is in the overview's Needs attention for those who may
answer it; a viewer reads every page but starts nothing."""

from __future__ import annotations

import pytest
import yaml

from agents.models import Agent
from pipelines import definition as defs
from pipelines.models import Approval, Pipeline, PipelineRun, PipelineVersion
from runs import actions as runs
from runs.models import Run

pytestmark = pytest.mark.django_db(transaction=True)

TEXT = """name: Notes
inputs:
  - {name: version, type: text, required: true}
  - {name: loud, type: boolean}
steps:
  - id: draft
    agent: ann
    brief: "Notes for {{ inputs.version }}"
  - id: ok
    needs: [draft]
    approval: {by: operator, instructions: Read them}
"""


@pytest.fixture
def ann(transactional_db) -> Agent:
    return Agent.objects.create(name="ann")


def attention(client) -> str:
    page = client.get("/").content.decode()
    return page[page.index('id="overview-attention"') : page.index('id="overview-panels"')]


def test_edit_start_answer_through_the_pages(ann, admin, operator, viewer):
    r = admin.post("/pipelines/new/", {"text": TEXT.replace("agent: ann", "agent: anne")})
    assert r.status_code == 200
    assert "line 7: No agent is called “anne”." in r.content.decode()
    assert Pipeline.objects.count() == 0
    r = admin.post("/pipelines/new/", {"text": TEXT})
    pipeline = Pipeline.objects.get()
    assert r.status_code == 302
    assert r["Location"] == f"/pipelines/{pipeline.pk}/"
    r = admin.post(f"/pipelines/{pipeline.pk}/edit/", {"text": TEXT.replace("Read them", "Read")})
    assert PipelineVersion.objects.filter(pipeline=pipeline).count() == 2
    exported = admin.get(f"/pipelines/{pipeline.pk}/export/")
    assert exported["Content-Disposition"] == 'attachment; filename="notes-v2.yaml"'
    assert defs.parse(exported.content.decode()) == defs.parse(TEXT.replace("Read them", "Read"))
    assert yaml.safe_load(exported.content)["steps"][1]["approval"]["instructions"] == "Read"
    assert operator.post(f"/pipelines/{pipeline.pk}/edit/", {"text": TEXT}).status_code == 403

    assert viewer.post(f"/pipelines/{pipeline.pk}/start/", {"version": "1"}).status_code == 403
    page = operator.get(f"/pipelines/{pipeline.pk}/").content.decode()
    assert 'name="version"' in page
    assert 'name="loud"' in page
    r = operator.post(f"/pipelines/{pipeline.pk}/start/", {"version": "2.0", "nonce": "n1"})
    run = PipelineRun.objects.get()
    assert r.status_code == 302
    assert r["Location"] == f"/pipelines/runs/{run.pk}/"
    assert run.inputs == {"version": "2.0", "loud": False}
    # A double click (the same form's nonce): one run.
    operator.post(f"/pipelines/{pipeline.pk}/start/", {"version": "2.0", "nonce": "n1"})
    assert PipelineRun.objects.count() == 1

    agent_run = Run.objects.get()
    runs.claim(ann.pk, agent_run.pk)
    runs.finish(ann.pk, agent_run.pk, "succeeded", reply="Notes written")
    approval = Approval.objects.get()
    task_page = viewer.get(f"/tasks/{agent_run.task_id}/").content.decode()
    assert "Step <strong>draft</strong> of" in task_page
    assert f'href="/pipelines/runs/{run.pk}/#step-{run.pk}-draft"' in task_page
    assert "Notes #1 · ok" in attention(operator)
    page = viewer.get(f"/pipelines/runs/{run.pk}/").content.decode()
    assert "Notes written" in page
    assert "Awaiting approval" in page
    assert "Notes #1 · ok" in viewer.get("/pipelines/approvals/").content.decode()

    here = f"http://testserver/pipelines/runs/{run.pk}/"
    r = viewer.post(f"/pipelines/approvals/{approval.pk}/answer/", {"outcome": "approved"})
    assert r.status_code == 403
    r = operator.post(
        f"/pipelines/approvals/{approval.pk}/answer/",
        {"outcome": "approved", "comment": "Fine"},
        HTTP_REFERER=here,
    )
    assert r.status_code == 302
    assert r["Location"] == f"/pipelines/runs/{run.pk}/"
    run.refresh_from_db()
    assert run.state == "succeeded"
    assert "Notes #1 · ok" not in attention(operator)
    for path in ("/pipelines/", f"/pipelines/{pipeline.pk}/", f"/pipelines/runs/{run.pk}/"):
        assert viewer.get(path).status_code == 200


def test_a_required_input_left_empty_is_a_form_error_and_starts_nothing(ann, admin, operator):
    admin.post("/pipelines/new/", {"text": TEXT})
    pipeline = Pipeline.objects.get()
    r = operator.post(f"/pipelines/{pipeline.pk}/start/", {"version": ""}, follow=True)
    assert "version: This field is required." in r.content.decode()
    assert PipelineRun.objects.count() == 0


def test_the_runs_list_filters_by_pipeline_state_and_trigger(ann, admin, viewer):
    from missioncontrol.audit import Actor
    from pipelines import actions

    first = actions.save(Actor.system("t"), TEXT).pipeline_id
    other = actions.save(Actor.system("t"), TEXT.replace("name: Notes", "name: Other")).pipeline_id
    actions.start(Actor.system("t"), actions.Start(first, {"version": "1"}))
    run, _ = actions.start(Actor.system("t"), actions.Start(other, {"version": "2"}, trigger="api"))
    actions.cancel(Actor.system("t"), run.pk)

    def rows(query: str) -> str:
        page = viewer.get(f"/pipelines/?{query}").content.decode()
        return page[page.index('id="pipeline-runs-all"') :]

    assert "Notes #1" in rows("")
    assert "Other #1" in rows("")
    assert "Notes #1" in rows(f"pipeline={first}")
    assert "Other #1" not in rows(f"pipeline={first}")
    assert "Other #1" in rows("state=cancelled")
    assert "Notes #1" not in rows("state=cancelled")
    assert "Other #1" in rows("trigger=api")
    assert "Notes #1" not in rows("trigger=api")
    assert viewer.get("/pipelines/?state=nonsense&pipeline=x").status_code == 200


def test_a_running_steps_cost_so_far_is_its_tasks_and_follows_it_live(ann, admin, viewer):
    """#28: a step shows what its work has cost while it runs (its task's running total, which
    billing's cost events keep live on the page), and what its runs cost once it ended."""
    from missioncontrol.audit import Actor
    from pipelines import actions
    from pipelines import events as pipeline_events
    from tasks import actions as tasks_actions
    from tasks.presenters import task_cost_changed

    admin.post("/pipelines/new/", {"text": TEXT})
    pipeline = Pipeline.objects.get()
    run, _ = actions.start(
        Actor.system("test"), actions.Start(pipeline.pk, inputs={"version": "1.4"})
    )
    step = run.steps.get(step_id="draft")
    assert step.task_id is not None
    tasks_actions.set_costs({step.task_id: 123_400_000})  # $0.1234 so far
    page = viewer.get(f"/pipelines/runs/{run.pk}/").content.decode()
    assert f'<span id="cost-task-{step.task_id}"' in page
    assert "$0.123</span> so far" in page
    data = pipeline_events.run_data(run)
    assert data["cost_usd"] == "0.123400000"
    # The board's cost event updates that very element.
    pushed = task_cost_changed(
        {"type": "task.cost_changed", "tasks": [{"id": step.task_id, "cost_usd": "0.5"}]}
    )
    assert {"op": "text", "id": f"cost-task-{step.task_id}", "text": "$0.500"} in pushed["ops"]
