from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.http import HttpRequest

from gateways import access
from missioncontrol.roles import role_of


def attention(request: HttpRequest) -> dict[str, Any]:
    """Late and failing jobs (of the gateways this user sees, and direct checks): a banner on
    every page for everyone with a role, until they recover or are paused. Lazy: queried only
    where the shell renders it."""
    user = getattr(request, "user", None)
    if user is None or role_of(user) is None or request.headers.get("HX-Request"):
        return {"cron_alerts": None}
    ids = access.visible_ids(user)

    def jobs() -> Any:
        from crons.models import Job

        found = Job.objects.needing_attention().select_related("gateway")
        if ids is not None:
            found = found.filter(Q(gateway__isnull=True) | Q(gateway_id__in=ids))
        rows = list(found.order_by("health_since", "pk")[:4])
        return {"jobs": rows[:3], "more": len(rows) > 3}

    return {"cron_alerts": jobs}
