"""The runs' presenter: run events as DOM ops, from the event's data alone (a replay equals the
live push): the card (its run chip), what the agent is doing now, and the run's entry on the
task page."""

from __future__ import annotations

from typing import Any, get_args

from django.template.loader import render_to_string

from missioncontrol import live
from runs import events
from tasks.presenters import card_ops

RUN_STATE_TEXT = {
    "queued": "waiting for {agent} to take it",
    "sending": "being sent to {agent}'s gateway",
    "running": "{agent} is working on it",
}


def run_state_text(state: str, agent: str) -> str:
    """What a pipeline step's run is doing, in words (the step's node on its run page)."""
    return RUN_STATE_TEXT.get(state, "").format(agent=agent or "its agent")


def run_html(run: events.RunData) -> str:
    return render_to_string("runs/_run.html", {"run": run})


@live.presents(*get_args(events.RunEventType))
def run_changed(event: dict[str, Any]) -> live.BrowserPayload:
    run: events.RunData = event["run"]
    ops: list[live.Op] = [
        {
            "op": "upsert",
            "id": f"run-{run['id']}",
            "parent": f"runs-{run['task_id']}",
            "first": True,
            "html": run_html(run),
        }
    ]
    if event["type"] == "run.progress":
        ops.append({"op": "text", "id": f"run-progress-{run['task_id']}", "text": run["progress"]})
        return {"ops": ops}
    # A pipeline step's node says what its run is doing (absent elsewhere: a no-op).
    ops.append(
        {
            "op": "text",
            "id": f"step-run-{run['task_id']}",
            "text": run_state_text(run["state"], run["agent"]),
        }
    )
    return {"ops": ops + card_ops(event["task"], event["board"])}
