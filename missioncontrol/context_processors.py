from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

from missioncontrol import live, nav
from missioncontrol.roles import has_role, role_of


def shell(request: HttpRequest) -> dict[str, Any]:
    """What the application shell needs: role, navigation, theme, the page's live seq."""
    user = getattr(request, "user", None)
    role = role_of(user)
    if role is None:
        return {"mc_role": None, "mc_nav": [], "mc_menu": [], "mc_theme": _theme(request)}
    path = request.path
    entries: list[dict[str, Any]] = []
    menu: list[dict[str, Any]] = []
    for item in nav.items():
        if not has_role(user, item.role):
            continue
        url = reverse(item.url_name)
        prefix = item.prefix or url
        current = path == url if prefix == "/" else path.startswith(prefix)
        (menu if item.menu else entries).append(
            {"label": item.label, "url": url, "current": current}
        )
    seq = getattr(request, "_mc_live_seq", None)
    return {
        "mc_role": role,
        "mc_nav": entries,
        "mc_menu": menu,
        "mc_theme": _theme(request),
        "mc_live_seq": seq if seq is not None else live_seq_for(request),
        "mc_live_grace_ms": settings.MC_LIVE_GRACE_MS,
    }


def live_seq_for(request: HttpRequest) -> int:
    """The log position a page shows; read it before the page's data (views call this first)."""
    seq = getattr(request, "_mc_live_seq", None)
    if seq is None:
        seq = live.current_seq()
        request._mc_live_seq = seq  # type: ignore[attr-defined]
    return seq


def _theme(request: HttpRequest) -> str:
    theme = request.COOKIES.get("mc_theme", "")
    return theme if theme in {"light", "dark"} else ""
