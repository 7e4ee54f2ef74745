"""Pipelines over the API (#28), through the real ASGI application: an admin's token creates
a pipeline from the export's JSON shape (problems named by where they are), an operator's
token starts it — the same Idempotency-Key twice makes one run —, a CLI agent works each step
over HTTP (heartbeat, claim, finish) and the run advances by itself to its approval gate,
answered over the API; a viewer's token reads but starts nothing."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async

from missioncontrol import tokens
from missioncontrol.audit import Actor
from pipelines.models import Approval, PipelineRun
from tests.runs.test_runs import call

pytestmark = pytest.mark.django_db(transaction=True)

ADMIN = Actor.system("test")

DEFINITION = {
    "name": "Changelog",
    "inputs": [{"name": "version", "type": "text", "required": True}],
    "steps": [
        {"id": "draft", "agent": "ada", "brief": "Draft the changelog for {{ inputs.version }}"},
        {
            "id": "polish",
            "agent": "ada",
            "needs": ["draft"],
            "brief": "Polish this: {{ steps.draft.output }}",
        },
        {"id": "ship", "needs": ["polish"], "approval": {"by": "operator"}},
    ],
}


def token_for(user: Any) -> str:
    return tokens.issue(ADMIN, user)[1]


async def work_one(api, key: str, reply: str) -> dict[str, Any]:
    """ada's heartbeat answer offers a run; she claims it and finishes it with `reply`."""
    r = await call(api, key, "POST", "/api/v1/agents/ada/heartbeat", {"status": "idle"})
    assert r.status_code == 200, r.text
    [offered] = r.json()["work"]["runs"]
    r = await call(api, key, "POST", f"/api/v1/runs/{offered['id']}/claim")
    assert r.status_code == 200, r.text
    r = await call(
        api,
        key,
        "POST",
        f"/api/v1/runs/{offered['id']}/finish",
        {"outcome": "succeeded", "reply": reply},
    )
    assert r.status_code == 200, r.text
    return offered


async def test_create_start_once_work_and_approve_over_the_api(
    api, ada, ada_key, carol_admin, bob_operator, alice_viewer
):
    admin = await sync_to_async(token_for)(carol_admin)
    operator = await sync_to_async(token_for)(bob_operator)
    viewer = await sync_to_async(token_for)(alice_viewer)

    bad = {**DEFINITION, "steps": [{"id": "x", "agent": "nobody"}]}
    r = await call(api, admin, "POST", "/api/v1/pipelines", bad)
    assert r.status_code == 400, r.text
    assert r.json()["detail"] == {"steps[0].agent": ["No agent is called “nobody”."]}
    r = await call(api, operator, "POST", "/api/v1/pipelines", DEFINITION)
    assert r.status_code == 403, r.text
    r = await call(api, admin, "POST", "/api/v1/pipelines", DEFINITION)
    assert r.status_code == 201, r.text
    pipeline = r.json()
    assert (pipeline["version"], pipeline["definition"]["steps"][1]["needs"]) == (1, ["draft"])

    path = f"/api/v1/pipelines/{pipeline['id']}/runs"
    r = await call(api, viewer, "POST", path, {"inputs": {"version": "1.4"}})
    assert r.status_code == 403, r.text
    r = await call(api, operator, "POST", path, {"inputs": {}}, **{"Idempotency-Key": "a"})
    assert r.status_code == 400, r.text
    assert r.json()["detail"] == {"inputs.version": ["Required."]}
    first = await call(
        api, operator, "POST", path, {"inputs": {"version": "1.4"}}, **{"Idempotency-Key": "b"}
    )
    again = await call(
        api, operator, "POST", path, {"inputs": {"version": "1.4"}}, **{"Idempotency-Key": "b"}
    )
    assert (first.status_code, again.status_code) == (202, 200), (first.text, again.text)
    run = first.json()["run"]
    assert again.json()["run"]["id"] == run["id"]
    assert await PipelineRun.objects.acount() == 1
    assert [s["state"] for s in run["steps"]] == ["running", "waiting", "waiting"]

    offered = await work_one(api, ada_key, "Added: dark mode.")
    assert "Draft the changelog for 1.4" in offered["prompt"]
    offered = await work_one(api, ada_key, "Polished.")
    assert "Polish this: Added: dark mode." in offered["prompt"]

    r = await call(api, viewer, "GET", f"/api/v1/pipeline-runs/{run['id']}")
    assert r.status_code == 200, r.text
    steps = {s["id"]: s for s in r.json()["run"]["steps"]}
    assert (steps["draft"]["output"], steps["ship"]["state"]) == (
        "Added: dark mode.",
        "awaiting_approval",
    )

    approval_id = (await Approval.objects.aget()).pk
    r = await call(api, viewer, "POST", f"/api/v1/approvals/{approval_id}", {"outcome": "approved"})
    assert r.status_code == 403, r.text
    r = await call(
        api, operator, "POST", f"/api/v1/approvals/{approval_id}", {"outcome": "approved"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["approval"]["outcome"] == "approved"
    r = await call(
        api, operator, "POST", f"/api/v1/approvals/{approval_id}", {"outcome": "rejected"}
    )
    assert r.status_code == 409, r.text
    assert r.json()["approval"]["answered_by"] == "bob"
    r = await call(api, viewer, "GET", f"/api/v1/pipeline-runs/{run['id']}")
    assert r.json()["run"]["state"] == "succeeded"
