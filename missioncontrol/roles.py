"""Roles: viewer < operator < admin, carried by Django groups and their permissions.

Views use `@role_required("operator")`; templates use `{% if request.user|has_role:"operator" %}`.
Superusers are admins. A signed-in user in no role group is an outsider: refused everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, Literal

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.dispatch import Signal

# Sent with `user` and `role` when a user's role changes (set_role).
role_changed = Signal()

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")
RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES, start=1)}

# Apps whose models the roles see, and what an operator may change on top of viewing them
# ((app label, model) → actions: the fleet's work): registered by the apps in their ready(),
# as navigation is, so this module knows no app.
PRODUCT_APPS: set[str] = {"missioncontrol"}
OPERATOR_MODELS: dict[tuple[str, str], tuple[str, ...]] = {}


def register_app(app_label: str, operator_may: dict[str, tuple[str, ...]] | None = None) -> None:
    """Viewers see this app's models; operators may also do `operator_may[model]` to them."""
    PRODUCT_APPS.add(app_label)
    for model, actions in (operator_may or {}).items():
        OPERATOR_MODELS[(app_label, model)] = actions


def role_of(user: Any) -> Role | None:
    """The user's highest role, or None (anonymous, inactive or in no role group)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    if not hasattr(user, "groups"):
        return None  # not a person (an agent key reading the API docs): no role
    if hasattr(user, "_mc_role"):
        cached: Role | None = user._mc_role
        return cached
    role: Role | None
    if user.is_superuser:
        role = "admin"
    else:
        names = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        role = next((r for r in reversed(ROLES) if r in names), None)
    user._mc_role = role
    return role


def prime_roles(users: list[Any]) -> None:
    """role_of() for many people at once (a list page): one query, then each answers from
    its cache."""
    from django.contrib.auth import get_user_model

    through = get_user_model().groups.through
    names: dict[int, set[str]] = {}
    rows = through.objects.filter(
        user_id__in=[u.pk for u in users], group__name__in=ROLES
    ).values_list("user_id", "group__name")
    for user_id, name in rows:
        names.setdefault(user_id, set()).add(name)
    for user in users:
        found = names.get(user.pk, set())
        user._mc_role = (
            "admin" if user.is_superuser else next((r for r in reversed(ROLES) if r in found), None)
        )


def has_role(user: Any, role: Role) -> bool:
    """True if the user holds `role` or a higher one."""
    actual = role_of(user)
    return actual is not None and RANK[actual] >= RANK[role]


def role_required(role: Role) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """View decorator: sign-in required (redirect), then the role (403)."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(request: Any, *args: Any, **kwargs: Any) -> Any:
            if not has_role(request.user, role):
                raise PermissionDenied(f"This needs the {role} role.")
            return view(request, *args, **kwargs)

        return login_required(wrapped)

    return decorator


def set_role(user: Any, role: Role | None) -> None:
    """Put the user in exactly one role group (or none)."""
    from django.contrib.auth.models import Group

    user.groups.remove(*Group.objects.filter(name__in=ROLES))
    if role is not None:
        group, _ = Group.objects.get_or_create(name=role)
        user.groups.add(group)
    if hasattr(user, "_mc_role"):
        del user._mc_role
    # Whoever caches roles (the fast path's session cache) forgets them.
    role_changed.send(sender=set_role, user=user, role=role)


def _role_permissions() -> dict[str, list[Any]]:
    from django.contrib.auth.models import Permission

    perms = list(
        Permission.objects.select_related("content_type").filter(
            content_type__app_label__in=sorted(PRODUCT_APPS)
        )
    )
    viewer = [p for p in perms if p.codename.startswith("view_")]
    operator = viewer + [
        p
        for p in perms
        if (p.content_type.app_label, p.content_type.model) in OPERATOR_MODELS
        and p.codename.split("_", 1)[0]
        in OPERATOR_MODELS[(p.content_type.app_label, p.content_type.model)]
    ]
    return {"viewer": viewer, "operator": operator, "admin": list(Permission.objects.all())}


def sync_role_permissions(**kwargs: Any) -> None:
    """Create the role groups if missing and give each exactly its permissions (idempotent)."""
    from django.contrib.auth.models import Group

    for name, perms in _role_permissions().items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(perms)
