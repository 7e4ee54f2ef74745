"""The pipelines' presenters: a run's events redraw its page's graph and its row in the runs
lists; an approval's events its entry in the Approvals page — from the event's data alone (a
replay equals the live push)."""

from __future__ import annotations

from typing import Any, get_args

from django.template.loader import render_to_string

from missioncontrol import live
from pipelines import approvals, events


@live.presents(*get_args(events.RunEventType))
def run_changed(event: dict[str, Any]) -> live.BrowserPayload:
    """A step's event redraws that step and the run's head (a 50-step graph drawn for every
    step's change was most of a step's end: docs/benchmarks.md, #28); the run's own events the
    whole graph."""
    run: events.RunData = event["run"]
    step: events.StepData | None = event.get("step")
    ops: list[live.Op]
    if step is not None and event["type"] != "pipeline.run_started":
        ops = [
            {
                "op": "upsert",
                "id": f"step-{run['id']}-{step['id']}",
                "html": render_to_string("pipelines/_step.html", {"run": run, "step": step}),
            },
            {
                "op": "upsert",
                "id": f"prun-head-{run['id']}",
                "html": render_to_string("pipelines/_run_head.html", {"run": run}),
            },
            {
                "op": "attr",
                "id": f"pipeline-run-{run['id']}",
                "name": "data-state",
                "value": run["state"],
            },
        ]
    else:
        ops = [
            {
                "op": "upsert",
                "id": f"pipeline-run-{run['id']}",
                "html": render_to_string("pipelines/_run_graph.html", {"run": run}),
            }
        ]
    # A new run goes on top of the lists; a run's later changes redraw its row where it is.
    new = event["type"] == "pipeline.run_started" or run["state"] == "queued"
    for prefix, parent in (
        ("prun-row", f"pipeline-runs-{run['pipeline_id']}"),
        ("prun-all", "pipeline-runs-all"),
    ):
        html = render_to_string(
            "pipelines/_run_row.html",
            {"r": run, "with_pipeline": prefix == "prun-all", "prefix": prefix},
        )
        op: live.Op = {"op": "upsert", "id": f"{prefix}-{run['id']}", "html": html}
        if new:
            op |= {"parent": parent, "first": True, "limit": 50}
        ops.append(op)
    return {"ops": ops}


@live.presents(*get_args(approvals.ApprovalEventType))
def approval_changed(event: dict[str, Any]) -> live.BrowserPayload:
    """The approval in the Approvals page's lists, and in its run's page."""
    approval: approvals.ApprovalData = event["approval"]
    pending = approval["outcome"] == "pending"
    ops: list[live.Op] = []
    for prefix, parent in (
        ("approval", "approvals-pending" if pending else "approvals-answered"),
        ("run-approval", f"run-{'approvals' if pending else 'answers'}-{approval['run_id']}"),
    ):
        html = render_to_string("pipelines/_approval.html", {"a": approval, "prefix": prefix})
        ops.append(
            {
                "op": "upsert",
                "id": f"{prefix}-{approval['id']}",
                "parent": parent,
                "first": True,
                "html": html,
            }
        )
    return {"ops": ops}


@live.presents(*get_args(events.PipelineEventType))
def pipeline_saved(event: dict[str, Any]) -> live.BrowserPayload:
    return {"ops": []}


@live.presents(*get_args(approvals.AgentAskEventType))
def agent_ask_changed(event: dict[str, Any]) -> live.BrowserPayload:
    """An agent's question in the Approvals page's lists."""
    ask: approvals.AgentAskData = event["ask"]
    parent = "agent-asks-pending" if ask["outcome"] == "pending" else "agent-asks-answered"
    html = render_to_string("pipelines/_agent_ask.html", {"q": ask})
    return {
        "ops": [
            {
                "op": "upsert",
                "id": f"agent-ask-{ask['id']}",
                "parent": parent,
                "first": True,
                "html": html,
            }
        ]
    }


@live.presents("exec_approval.requested", "exec_approval.resolved")
def exec_approval_changed(event: dict[str, Any]) -> live.BrowserPayload:
    """A gateway's exec approval in the Approvals page's lists."""
    approval = event["approval"]
    parent = (
        "exec-approvals-pending" if approval["status"] == "pending" else "exec-approvals-answered"
    )
    html = render_to_string("pipelines/_exec_approval.html", {"x": approval})
    return {
        "ops": [
            {
                "op": "upsert",
                "id": f"exec-approval-{approval['id']}",
                "parent": parent,
                "first": True,
                "html": html,
            }
        ]
    }
