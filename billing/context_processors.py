from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils import timezone

from billing import reports
from gateways import access
from gateways.context_processors import chosen_gateway_id
from missioncontrol.roles import has_role


def spend(request: HttpRequest) -> dict[str, Any]:
    """Today's spend in the shell, for operators and admins, over the gateways they see."""
    user = getattr(request, "user", None)  # absent on an error page before authentication
    if not has_role(user, "operator") or request.headers.get("HX-Request"):
        return {"spend_today": None, "budget_alerts": None}
    ids = access.visible_ids(user)
    # The gateway switch too: one gateway's spend (0: the direct agents'), or all they see.
    chosen = chosen_gateway_id(request)

    def today() -> Any:
        return reports.spend_today(
            timezone.now(),
            timezone.get_current_timezone(),
            reports.Filters(gateway_id=chosen, visible_gateways=None if ids is None else set(ids)),
        )

    def alerts() -> Any:
        from billing.models import BudgetAlert

        return list(BudgetAlert.objects.visible_to(user).standing().select_related("budget")[:20])

    # Lazy: evaluated only where the shell renders them.
    return {"spend_today": today, "budget_alerts": alerts}
