"""Starting a pipeline from another system (#28), through the real ASGI application: an
inbound webhook signed per Standard Webhooks with the pipeline's secret starts a run with its
payload's inputs; a forged or stale signature is refused (401) and starts nothing, the same
delivery again is refused (409); the pipeline's trigger token starts it and nothing else; an
admin makes (and rotates) the token and secret on the pipeline's page, shown once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async
from standardwebhooks.webhooks import Webhook

from agents.models import Agent
from missioncontrol.audit import Actor
from pipelines import actions, triggers
from pipelines.models import Pipeline, PipelineRun

pytestmark = pytest.mark.django_db(transaction=True)

ADMIN = Actor.system("test")
TEXT = """name: Build
overlap: allow
inputs:
  - {name: branch, type: text, required: true}
steps:
  - id: build
    agent: ann
    brief: "Build {{ inputs.branch }}"
"""


@pytest.fixture
def made(transactional_db) -> tuple[int, triggers.Triggers]:
    Agent.objects.create(name="ann")
    pipeline_id = actions.save(ADMIN, TEXT).pipeline_id
    return pipeline_id, triggers.rotate(ADMIN, pipeline_id)


def signed(
    secret: str, body: dict[str, object], delivery: str, when: datetime | None = None
) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body)
    when = when or datetime.now(UTC)
    signature = Webhook(secret).sign(delivery, when, raw)
    headers = {
        "webhook-id": delivery,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
        "Content-Type": "application/json",
    }
    return raw.encode(), headers


async def post(api, path: str, body: bytes, headers: dict[str, str]):
    async with api() as client:
        return await client.post(path, content=body, headers=headers)


async def test_a_signed_webhook_starts_a_run_once_and_a_forged_one_nothing(api, made):
    pipeline_id, made_triggers = made
    path = f"/api/v1/pipelines/{pipeline_id}/webhook"
    body, headers = signed(made_triggers.webhook_secret, {"branch": "main", "pusher": "x"}, "msg_1")
    r = await post(api, path, body, headers)
    assert r.status_code == 202, r.text
    run = await PipelineRun.objects.aget()
    assert (run.trigger, run.inputs) == ("webhook", {"branch": "main"})
    # The same delivery again (a replay): refused, no second run.
    r = await post(api, path, body, headers)
    assert r.status_code == 409, r.text
    # Forged: another secret; stale: a timestamp an hour old; unsigned; garbage signature.
    forged_body, forged = signed("whsec_" + "QUJD" * 8, {"branch": "evil"}, "msg_2")
    stale_body, stale = signed(
        made_triggers.webhook_secret,
        {"branch": "old"},
        "msg_3",
        datetime.now(UTC) - timedelta(hours=1),
    )
    garbage = {**headers, "webhook-id": "msg_4", "webhook-signature": "v1,not base64!!"}
    for raw, sent in (
        (forged_body, forged),
        (stale_body, stale),
        (body, {"Content-Type": "application/json"}),
        (body, garbage),
    ):
        r = await post(api, path, raw, sent)
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "unauthenticated"
    assert await PipelineRun.objects.acount() == 1
    # A body that is signed but not JSON, or lacks a required input: 400, nothing started.
    r = await post(api, path, *signed(made_triggers.webhook_secret, {"inputs": {}}, "msg_5"))
    assert r.status_code == 400, r.text
    assert r.json()["detail"] == {"inputs.branch": ["Required."]}
    assert await PipelineRun.objects.acount() == 1
    async with api() as client:
        assert (await client.get(path)).status_code == 405


async def test_the_trigger_token_starts_its_pipeline_only(api, made):
    pipeline_id, made_triggers = made
    other = (
        await sync_to_async(actions.save)(ADMIN, TEXT.replace("name: Build", "name: Other"))
    ).pipeline_id
    body = {"inputs": {"branch": "dev"}}
    async with api(made_triggers.token) as client:
        r = await client.post(f"/api/v1/pipelines/{pipeline_id}/runs", json=body)
        assert r.status_code == 202, r.text
        r = await client.post(f"/api/v1/pipelines/{other}/runs", json=body)
        assert r.status_code == 403, r.text
        r = await client.get(f"/api/v1/pipelines/{pipeline_id}")
        assert r.status_code == 401, r.text  # it starts runs; it reads nothing
    async with api(made_triggers.token[:-1] + "x") as client:
        r = await client.post(f"/api/v1/pipelines/{pipeline_id}/runs", json=body)
        assert r.status_code == 401, r.text
    run = await PipelineRun.objects.aget()
    assert (run.trigger, run.requested_label) == ("api", "trigger token (Build)")


def test_an_admin_makes_them_on_the_page_shown_once(made, admin, operator):
    pipeline_id, first = made
    page = admin.post(f"/pipelines/{pipeline_id}/triggers/")
    assert page.status_code == 200
    text = page.content.decode()
    pipeline = Pipeline.objects.get()
    assert f"mcp_{pipeline_id}_" in text
    assert "whsec_" in text
    assert triggers.token_pipeline(first.token) is None  # the old one stopped working
    again = admin.get(f"/pipelines/{pipeline_id}/").content.decode()
    assert "whsec_" not in again
    assert pipeline.trigger_token_hint in again
    assert operator.post(f"/pipelines/{pipeline_id}/triggers/").status_code == 403


async def test_a_services_own_payload_fills_inputs_by_their_webhook_paths(api, made):
    """#28's payload mapping: an input's `webhook` path reads another service's own JSON
    (GitHub's pull request payload here); the delivery's `inputs` object still wins."""
    pipeline_id, made_triggers = made
    text = TEXT.replace(
        "  - {name: branch, type: text, required: true}\n",
        "  - {name: branch, type: text, required: true, webhook: pull_request.head.ref}\n"
        "  - {name: number, type: number, webhook: number}\n"
        "  - {name: first, type: text, webhook: commits.0.id}\n"
        "  - {name: labels, type: text, webhook: pull_request.labels}\n",
    )
    await sync_to_async(actions.save)(ADMIN, text, pipeline_id)
    path = f"/api/v1/pipelines/{pipeline_id}/webhook"
    github = {
        "action": "opened",
        "number": 42,
        "pull_request": {"head": {"ref": "fix/login"}, "labels": [{"name": "bug"}]},
        "commits": [{"id": "abc123"}],
    }
    body, headers = signed(made_triggers.webhook_secret, github, "msg_gh_1")
    r = await post(api, path, body, headers)
    assert r.status_code == 202, r.text
    run = await PipelineRun.objects.aget()
    assert run.inputs == {
        "branch": "fix/login",
        "number": 42,
        "first": "abc123",
        "labels": '[{"name": "bug"}]',
    }
    # A path that finds nothing: the required input is missing, named; nothing starts.
    body, headers = signed(made_triggers.webhook_secret, {"action": "closed"}, "msg_gh_2")
    r = await post(api, path, body, headers)
    assert r.status_code == 400, r.text
    assert "branch" in r.text
    assert await PipelineRun.objects.acount() == 1


def test_a_webhook_path_is_checked_where_it_is_written() -> None:
    from pipelines import definition as defs

    bad = TEXT.replace(
        "{name: branch, type: text, required: true}",
        "{name: branch, type: text, required: true, webhook: 'pull request..ref'}",
    )
    with pytest.raises(defs.DefinitionError) as refused:
        defs.parse(bad)
    assert "dotted path" in str(refused.value)
    good = defs.parse(TEXT.replace("required: true}", "required: true, webhook: a.b.0}"))
    assert good.inputs[0].webhook == "a.b.0"
    assert defs.stored(good.as_data()).inputs[0].webhook == "a.b.0"  # saved and read back
