from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from missioncontrol.roles import has_role


def disabled(request: HttpRequest) -> dict[str, Any]:
    """Endpoints the dispatcher disabled because they kept failing: a banner for admins on every
    page until one is re-enabled (lazy: queried only where the shell renders it)."""
    user = getattr(request, "user", None)
    if not has_role(user, "admin") or request.headers.get("HX-Request"):
        return {"webhooks_disabled": ()}

    def endpoints() -> Any:
        from webhooks.models import Endpoint

        return list(Endpoint.objects.filter(enabled=False).exclude(disabled_reason="")[:3])

    return {"webhooks_disabled": endpoints}
