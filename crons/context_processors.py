from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from django.http import HttpRequest

from gateways import access
from missioncontrol.cached import Reloaded
from missioncontrol.roles import role_of


def _load() -> list[SimpleNamespace]:
    from crons.models import Job

    rows = Job.objects.needing_attention().select_related("gateway").order_by("health_since", "pk")
    found = []
    for job in rows[:200]:
        gateway = job.gateway
        found.append(
            SimpleNamespace(
                pk=job.pk,
                name=job.name,
                health=job.health,
                health_reason=job.health_reason,
                health_since=job.health_since,
                gateway=SimpleNamespace(pk=gateway.pk, name=gateway.name, colour=gateway.colour)
                if gateway is not None
                else None,
            )
        )
    return found


# Late and failing jobs, for the banner on every page: forgotten at once when a job changes in
# this process, re-read by others within a second — so a page costs no query for it.
_attention = Reloaded("jobs needing attention", _load, ttl_s=1.0)


def attention(request: HttpRequest) -> dict[str, Any]:
    """Late and failing jobs (of the gateways this user sees, and direct checks): a banner on
    every page for everyone with a role, until they recover or are paused."""
    user = getattr(request, "user", None)
    if user is None or role_of(user) is None or request.headers.get("HX-Request"):
        return {"cron_alerts": None}

    def jobs() -> Any:
        ids = access.visible_ids(user)
        rows = [
            job
            for job in _attention.get()
            if ids is None or job.gateway is None or job.gateway.pk in ids
        ]
        return {"jobs": rows[:3], "more": len(rows) > 3}

    return {"cron_alerts": jobs}
