"""The pipeline editor as a form (#28): an admin adds, moves and removes steps and inputs with
its buttons (no script), and saves; each problem the parser finds lands on its field (step 2's
agent), nothing is saved until it is right; editing an existing pipeline shows its definition
and saves a new version."""

from __future__ import annotations

import pytest

from agents.models import Agent
from missioncontrol.audit import Actor
from pipelines import actions
from pipelines.models import Pipeline, PipelineVersion

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def agents(transactional_db) -> None:
    for name in ("ann", "bo"):
        Agent.objects.create(name=name)


def row(n: int, **values: object) -> dict[str, object]:
    base = {
        "id": f"s{n}",
        "kind": "agent",
        "agent": "ann",
        "condition": "success",
        "retries": "0",
        "lands": "review",
        "done_when": "run",
        "approval_by": "operator",
        "on_timeout": "reject",
    }
    return {f"s{n}-{k}": v for k, v in {**base, **values}.items()}


def post(client, path: str, *rows: dict[str, object], action: str = "save", **head: object):
    data: dict[str, object] = {
        "name": "Form made",
        "overlap": "skip",
        "timezone": "UTC",
        "s_count": len(rows),
        "i_count": 0,
        "action": action,
    }
    data.update(head)
    for r in rows:
        data.update(r)
    return client.post(path, data)


def test_add_move_remove_and_save(agents, admin):
    page = admin.get("/pipelines/new/form/")
    assert page.status_code == 200
    r = post(admin, "/pipelines/new/form/", row(0, id="write"), action="add_s")
    assert r.status_code == 200
    assert 'name="s1-id"' in r.content.decode()
    r = post(
        admin,
        "/pipelines/new/form/",
        row(0, id="write"),
        row(1, id="review", agent="bo", needs="write"),
        action="up_s:1",
    )
    text = r.content.decode()
    assert text.index('value="review"') < text.index('value="write"')  # moved up
    r = post(
        admin, "/pipelines/new/form/", row(0, id="write"), row(1, id="extra"), action="remove_s:1"
    )
    assert 'name="s1-id"' not in r.content.decode()
    assert Pipeline.objects.count() == 0
    r = post(
        admin,
        "/pipelines/new/form/",
        row(0, id="write", brief="Write it"),
        row(1, id="review", agent="bo", needs="write", approval="on", approval_instructions="Look"),
    )
    assert r.status_code == 302, r.content.decode()[:2000]
    definition = Pipeline.objects.get().current.definition
    assert [s.id for s in definition.steps] == ["write", "review"]
    assert definition.step("review").needs == ("write",)
    assert definition.step("review").approval is not None


def test_a_problem_lands_on_its_field_and_nothing_is_saved(agents, admin):
    r = post(
        admin,
        "/pipelines/new/form/",
        row(0, id="write"),
        row(1, id="review", kind="pool", pool="no such label!", needs="nowhere"),
    )
    assert r.status_code == 400
    text = r.content.decode()
    assert "No step has the id “nowhere”." in text
    assert "A pool is one label" in text
    assert Pipeline.objects.count() == 0


def test_editing_shows_the_definition_and_saves_a_new_version(agents, admin, operator):
    version = actions.save(
        Actor.system("t"), "name: Old\nsteps:\n  - id: a\n    agent: ann\n    brief: Hi\n"
    )
    path = f"/pipelines/{version.pipeline_id}/form/"
    page = admin.get(path).content.decode()
    assert 'value="Old"' in page
    assert ">\nHi</textarea>" in page
    r = post(admin, path, row(0, id="a", brief="Hello"), name="Old")
    assert r.status_code == 302
    assert PipelineVersion.objects.filter(pipeline_id=version.pipeline_id).count() == 2
    assert operator.get(path).status_code == 403
