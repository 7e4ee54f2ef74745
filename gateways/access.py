"""Per-gateway grants (django-guardian): an admin may narrow a user to some gateways.

A user with **no** grant on any gateway sees every gateway's data and acts as their role
allows. A user with grants sees only the gateways granted (`view_gateway`) and acts only on
those granted `operate_gateway` — whatever their role (a viewer granted `operate_gateway` on
one gateway may message its sessions; an operator granted only `view_gateway` may not).
Admins always see and act on everything. Pages, actions and live events all ask here; grants
are written by gateways.actions.set_grant.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from guardian.models import UserObjectPermission

from gateways.models import Gateway
from missioncontrol.http import parse_int
from missioncontrol.roles import has_role

VIEW, OPERATE = "view_gateway", "operate_gateway"

# Guardian's rows about gateways, by the content type's natural key in the same query (not
# ContentType's per-process id cache, which a long-lived stream would keep reading if the
# content types were ever re-created, as a flushed test database does).
_GATEWAY_ROWS = {
    "content_type__app_label": Gateway._meta.app_label,
    "content_type__model": Gateway._meta.model_name,
}


def forget(user: Any) -> None:
    """Drop the grants cached on this user object (they just changed)."""
    if hasattr(user, "_mc_gateway_grants"):
        del user._mc_gateway_grants


def grants(user: Any) -> dict[int, set[str]] | None:
    """{gateway id: {codenames}} granted to the user, or None when not narrowed (cached on the
    user object for the request)."""
    if getattr(user, "pk", None) is None or has_role(user, "admin"):
        return None  # anonymous, not a person (an agent key), or an admin
    if hasattr(user, "_mc_gateway_grants"):
        cached: dict[int, set[str]] | None = user._mc_gateway_grants
        return cached
    rows = UserObjectPermission.objects.filter(user_id=user.pk, **_GATEWAY_ROWS).values_list(
        "object_pk", "permission__codename"
    )
    found: dict[int, set[str]] = {}
    for object_pk, codename in rows:
        if (pk := parse_int(str(object_pk))) is not None:
            found.setdefault(pk, set()).add(codename)
    result = found or None
    user._mc_gateway_grants = result
    return result


def prime_grants(users: list[Any]) -> None:
    """grants() for many people at once (the People page): one query, then each answers from
    its cache."""
    rows = UserObjectPermission.objects.filter(
        user_id__in=[u.pk for u in users], **_GATEWAY_ROWS
    ).values_list("user_id", "object_pk", "permission__codename")
    found: dict[int, dict[int, set[str]]] = {}
    for user_id, object_pk, codename in rows:
        if (pk := parse_int(str(object_pk))) is not None:
            found.setdefault(user_id, {}).setdefault(pk, set()).add(codename)
    for user in users:
        user._mc_gateway_grants = found.get(user.pk) or None


def visible_ids(user: Any) -> frozenset[int] | None:
    """The gateways whose data the user sees (None: all)."""
    granted = grants(user)
    return None if granted is None else frozenset(granted)


def narrowing(user: Any, gateway: str = "gateway", *, direct: bool = True) -> Q:
    """The filter that keeps to what `user` may see, for rows reaching a gateway through the
    path `gateway` (a ForeignKey path, e.g. "gateway", "agent__gateway", "budget__gateway").
    `direct`: rows with no gateway there (directly registered agents) are everyone's. Every
    list, select, banner and feed that shows gateway data narrows through here (or through a
    model's `visible_to(user)`, which calls it); an empty Q when the user is not narrowed."""
    ids = visible_ids(user)
    if ids is None:
        return Q()
    q = Q(**{f"{gateway}__in": ids})
    return q | Q(**{f"{gateway}__isnull": True}) if direct else q


def can_view(user: Any, gateway_id: int | None) -> bool:
    if gateway_id is None:
        return True
    granted = grants(user)
    return granted is None or gateway_id in granted


def can_operate(user: Any, gateway_id: int | None) -> bool:
    """May message, abort and run things on this gateway's agents and sessions."""
    if has_role(user, "admin"):
        return True
    granted = grants(user)
    if granted is None:
        return has_role(user, "operator")
    return gateway_id is not None and OPERATE in granted.get(gateway_id, set())


def granted_users(gateway: Gateway) -> list[tuple[Any, str]]:
    """(user, "view" | "operate") for every user with a grant on the gateway."""
    rows = UserObjectPermission.objects.filter(
        object_pk=str(gateway.pk), **_GATEWAY_ROWS
    ).select_related("user", "permission")
    levels: dict[int, tuple[Any, str]] = {}
    for row in rows:
        user, current = levels.get(row.user_id, (row.user, "view"))
        levels[row.user_id] = (user, "operate" if row.permission.codename == OPERATE else current)
    return sorted(levels.values(), key=lambda pair: pair[0].get_username())
