from __future__ import annotations

from typing import Any

from django import template

from missioncontrol import roles

register = template.Library()


@register.filter
def has_role(user: Any, role: str) -> bool:
    """`{% if request.user|has_role:"operator" %}`: the one role check in templates."""
    return role in roles.RANK and roles.has_role(user, role)  # type: ignore[arg-type]


@register.filter
def duration_text(value: Any) -> str:
    """A timedelta as '15 minutes' / '2 hours'."""
    seconds = int(value.total_seconds()) if hasattr(value, "total_seconds") else int(value)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = round(seconds / size)
            return f"{n} {unit}{'' if n == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"


VERBS = {
    "signed_in": "signed in",
    "signed_out": "signed out",
}


@register.filter
def verb_text(verb: str) -> str:
    """An audit verb as words ('task.moved' → 'moved task')."""
    if verb in VERBS:
        return VERBS[verb]
    if "." in verb:
        noun, action = verb.split(".", 1)
        return f"{action.replace('_', ' ')} {noun}"
    return verb.replace("_", " ")
