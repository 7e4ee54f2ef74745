"""The pipeline editor as a form (admins): the pipeline's fields, its inputs and its steps, each
a row that can be added, removed and moved — no script needed (buttons post the form back).
What it makes is the export's shape, checked by the one parser (pipelines/definition.py):
each problem lands on the field it names (`steps[1].agent` → step 2's agent)."""

from __future__ import annotations

import contextlib
from typing import Any

from django import forms

from pipelines import definition as defs

CONDITIONS = [
    ("success", "its needs succeeded"),
    ("failure", "one of its needs failed"),
    ("always", "always"),
]
LANDS = [("review", "Review"), ("done", "Done")]
DONE_WHEN = [
    ("run", "its run succeeds"),
    ("review", "its task reaches Review"),
    ("done", "its task reaches Done"),
]
KINDS = [("agent", "An agent"), ("pool", "Any agent with a label"), ("gate", "An approval gate")]


class PipelineForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(
        max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    overlap = forms.ChoiceField(
        choices=[("skip", "refuse it (skip)"), ("queue", "queue it"), ("allow", "run both")],
        label="A run asked for while one is going",
    )
    cron = forms.CharField(max_length=100, required=False, label="Schedule (cron, optional)")
    timezone = forms.CharField(max_length=64, required=False, initial="UTC", label="Time zone")


class InputForm(forms.Form):
    name = forms.CharField(max_length=40)
    type = forms.ChoiceField(choices=[(t, t) for t in defs.INPUT_TYPES])
    required = forms.BooleanField(required=False)
    default = forms.CharField(max_length=10_000, required=False)
    choices = forms.CharField(
        max_length=2000, required=False, help_text="For a choice: comma-separated"
    )
    description = forms.CharField(max_length=500, required=False)
    webhook = forms.CharField(
        max_length=300,
        required=False,
        help_text="Where a webhook's JSON holds it, e.g. pull_request.number",
    )


class StepForm(forms.Form):
    id = forms.CharField(max_length=40, label="Id")
    kind = forms.ChoiceField(choices=KINDS, label="Who does it")
    agent = forms.ChoiceField(choices=[], required=False)
    pool = forms.CharField(max_length=64, required=False, label="Label")
    brief = forms.CharField(
        max_length=defs.MAX_BRIEF,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        strip=False,
    )
    needs = forms.CharField(max_length=2000, required=False, help_text="Step ids, comma-separated")
    condition = forms.ChoiceField(choices=CONDITIONS, label="Runs when")
    retries = forms.IntegerField(min_value=0, max_value=defs.MAX_RETRIES, initial=0)
    timeout_s = forms.IntegerField(
        min_value=0, max_value=defs.MAX_TIMEOUT_S, required=False, label="Timeout (s)"
    )
    lands = forms.ChoiceField(choices=LANDS, label="Its task lands in")
    done_when = forms.ChoiceField(choices=DONE_WHEN, label="Done when")
    approval = forms.BooleanField(required=False, label="Ask for approval before it runs")
    approval_by = forms.CharField(
        max_length=1000,
        required=False,
        initial="operator",
        label="Who approves",
        help_text="operator, admin, or user names, comma-separated",
    )
    approval_instructions = forms.CharField(max_length=2000, required=False, label="What to check")
    approval_timeout_s = forms.IntegerField(
        min_value=0, max_value=defs.MAX_TIMEOUT_S, required=False, label="Answer within (s)"
    )
    on_timeout = forms.ChoiceField(
        choices=[("reject", "reject"), ("approve", "approve")], label="Then"
    )

    def __init__(self, *args: Any, agents: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agent"].choices = [("", "—")] + [(a, a) for a in agents or []]  # type: ignore[attr-defined]


def _list(text: str) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def step_data(cleaned: dict[str, Any]) -> dict[str, Any]:
    step: dict[str, Any] = {"id": cleaned["id"].strip()}
    kind = cleaned["kind"]
    if kind == "agent":
        step["agent"] = cleaned.get("agent") or ""
    elif kind == "pool":
        step["pool"] = cleaned.get("pool") or ""
    if kind != "gate" and cleaned.get("brief"):
        step["brief"] = cleaned["brief"]
    step["needs"] = _list(cleaned.get("needs", ""))
    step["if"] = cleaned["condition"]
    step["retries"] = cleaned.get("retries") or 0
    if cleaned.get("timeout_s"):
        step["timeout_s"] = cleaned["timeout_s"]
    step["lands"] = cleaned["lands"]
    step["done_when"] = cleaned["done_when"]
    if cleaned.get("approval") or kind == "gate":
        by = _list(cleaned.get("approval_by") or "operator")
        approval: dict[str, Any] = {"by": by[0] if by in (["operator"], ["admin"]) else by}
        if cleaned.get("approval_instructions"):
            approval["instructions"] = cleaned["approval_instructions"]
        if cleaned.get("approval_timeout_s"):
            approval["timeout_s"] = cleaned["approval_timeout_s"]
        approval["on_timeout"] = cleaned["on_timeout"]
        step["approval"] = approval
    return step


def input_data(cleaned: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {
        "name": cleaned["name"].strip(),
        "type": cleaned["type"],
        "required": bool(cleaned.get("required")),
    }
    if cleaned.get("choices"):
        item["choices"] = _list(cleaned["choices"])
    default = cleaned.get("default")
    if default not in (None, ""):
        if item["type"] == "number":
            with contextlib.suppress(ValueError):  # not a number: the parser names it
                default = float(default) if "." in default else int(default)
        elif item["type"] == "boolean":
            default = str(default).lower() in ("true", "yes", "1", "on")
        item["default"] = default
    if cleaned.get("description"):
        item["description"] = cleaned["description"]
    if cleaned.get("webhook"):
        item["webhook"] = cleaned["webhook"].strip()
    return item


def initial_step(spec: defs.StepSpec) -> dict[str, Any]:
    approval = spec.approval
    return {
        "id": spec.id,
        "kind": "agent" if spec.agent else ("pool" if spec.pool else "gate"),
        "agent": spec.agent,
        "pool": spec.pool,
        "brief": spec.brief,
        "needs": ", ".join(spec.needs),
        "condition": spec.condition,
        "retries": spec.retries,
        "timeout_s": spec.timeout_s or None,
        "lands": spec.lands,
        "done_when": spec.done_when,
        "approval": approval is not None,
        "approval_by": ", ".join(approval.by_users)
        if approval and approval.by_users
        else (approval.by_role if approval else "operator"),
        "approval_instructions": approval.instructions if approval else "",
        "approval_timeout_s": (approval.timeout_s or None) if approval else None,
        "on_timeout": approval.on_timeout if approval else "reject",
    }


def initial_input(spec: defs.InputSpec) -> dict[str, Any]:
    default = spec.default
    if isinstance(default, bool):
        default = "true" if default else "false"
    return {
        "name": spec.name,
        "type": spec.type,
        "required": spec.required,
        "default": "" if default is None else str(default),
        "choices": ", ".join(spec.choices),
        "description": spec.description,
        "webhook": spec.webhook,
    }


NEW_STEP = {
    "kind": "agent",
    "condition": "success",
    "retries": 0,
    "lands": "review",
    "done_when": "run",
    "approval_by": "operator",
    "on_timeout": "reject",
}
NEW_INPUT = {"type": "text"}
