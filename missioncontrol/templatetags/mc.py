from __future__ import annotations

from typing import Any

import nh3
from django import template
from django.utils.safestring import mark_safe
from markdown_it import MarkdownIt

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


_md = (
    MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True})
    .enable("table")
    .enable("strikethrough")
)
_ALLOWED_TAGS = {
    "p",
    "br",
    "strong",
    "em",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "a",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "del",
    "s",
}


@register.filter(is_safe=True)
def markdown(text: str) -> str:
    """Markdown rendered and then sanitised (no raw HTML, no scripts, safe links only)."""
    html = _md.render(text or "")
    return mark_safe(  # noqa: S308 - nh3 has sanitised it
        nh3.clean(
            html,
            tags=_ALLOWED_TAGS,
            attributes={"a": {"href", "title"}, "code": {"class"}},
            url_schemes={"http", "https", "mailto"},
            link_rel="noopener noreferrer nofollow",
        )
    )


@register.filter
def get_item(mapping: Any, key: str) -> Any:
    """`{{ dict|get_item:key }}`; None when absent."""
    if isinstance(mapping, dict):
        return mapping.get(key)
    return None
