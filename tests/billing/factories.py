"""Billing's test data, made through its actions (rollups, budgets' spend and events stay
consistent with the records)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing.actions import UsageItem, record_usage, save_budget
from billing.models import Budget
from missioncontrol.audit import Actor


def spend(
    agent_id: int,
    model: str = "gpt-4o",
    n: int = 1000,
    at: datetime | None = None,
    provider: str = "openai",
    **kwargs: Any,
) -> None:
    """One call of n input + n/2 output tokens (gpt-4o: $0.0075 for n=1000), recorded."""
    with transaction.atomic():
        record_usage(
            [
                UsageItem(
                    agent_id, model, n, n // 2, at or timezone.now(), provider=provider, **kwargs
                )
            ]
        )


def make_budget(**fields: Any) -> Budget:
    """A budget saved as an admin saves one (defaults: $0.02 over everything, alerts at 50/100 %)."""
    values: dict[str, Any] = {
        "name": "Everything",
        "amount_usd": Decimal("0.02"),
        "thresholds": [50, 100],
    }
    values.update(fields)
    return save_budget(Actor.system("test"), Budget(**values))
