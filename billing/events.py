"""Billing's configuration events (docs/events.md, "Budgets"): a budget added, changed or
deleted, so a webhook subscriber can follow an organisation's limits. Alerts and pauses are typed
in billing/budgets.py and billing/actions.py."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from missioncontrol.audit import ActorData


class BudgetSaved(TypedDict):
    type: Literal["budget.saved"]
    actor: ActorData
    budget: dict[str, Any]
    created: bool


class BudgetDeleted(TypedDict):
    type: Literal["budget.deleted"]
    actor: ActorData
    budget: dict[str, Any]
