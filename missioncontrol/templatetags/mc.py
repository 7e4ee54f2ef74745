from __future__ import annotations

import functools
from datetime import timedelta
from decimal import Decimal
from typing import Any

import nh3
from django import template
from django.utils import timezone
from django.utils.safestring import mark_safe

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


@register.filter
def num(value: Any) -> str:
    """An integer with thousands separators ('12,000'); anything else unchanged."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "" if value is None else str(value)


@register.filter
def ago(value: Any, never: str = "never") -> str:
    """'just now', '5 minutes ago', '2 hours ago' … or `never` for no time at all."""
    if not value:
        return never
    seconds = (timezone.now() - value).total_seconds()
    if seconds < 60:
        return "just now"
    return f"{duration_text(timedelta(seconds=seconds))} ago"


@register.filter
def until(value: Any, never: str = "—") -> str:
    """'in 5 minutes' for a time ahead, '5 minutes ago' for one past; `never` for none."""
    if not value:
        return never
    seconds = (value - timezone.now()).total_seconds()
    if abs(seconds) < 60:
        return "now"
    text = duration_text(timedelta(seconds=abs(seconds)))
    return f"in {text}" if seconds > 0 else f"{text} ago"


@register.filter
def due(value: Any) -> str:
    """When something is expected: 'in 5 minutes', 'now', or 'overdue by 7 minutes' (not
    '7 minutes ago', which reads as if it happened)."""
    if not value:
        return "—"
    seconds = (value - timezone.now()).total_seconds()
    if seconds <= -60:
        return f"overdue by {duration_text(timedelta(seconds=-seconds))}"
    return until(value)


@register.filter
def elapsed(value: Any) -> str:
    """How long since `value`: '12 seconds', '5 minutes' (Django's timesince says '0 minutes'
    for the first minute)."""
    if not value:
        return ""
    return duration_text(max(timedelta(0), timezone.now() - value))


@register.filter
def millis(value: Any) -> str:
    """A duration in milliseconds as '240 ms', '3.1 s', '2 min 5 s' ('—' for none)."""
    if value is None or value == "":
        return "—"
    ms = int(value)
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms // 60_000} min {ms % 60_000 // 1000} s"


VERBS = {
    "signed_in": "signed in",
    "notification.channel_added": "added notification channel",
    "notification.channel_changed": "changed notification channel",
    "notification.channel_deleted": "deleted notification channel",
    "notification.channel_disabled": "disabled notification channel",
    "notification.rule_saved": "saved the notification rule",
    "notification.test_sent": "sent a test message to",
    "signed_out": "signed out",
    "agent.status_changed": "marked agent",
    "run.succeeded": "finished run",
    "run.failed": "ended run (failed)",
    "run.released": "gave back run",
    "pipeline.run_started": "started a run of pipeline",
    "pipeline.run_finished": "ended a run of pipeline",
    "pipeline.run_cancelled": "cancelled a run of pipeline",
    "pipeline.run_rerun": "ran again from a step a run of pipeline",
    "approval.requested": "asked for an approval in pipeline",
    "approval.resolved": "answered an approval in pipeline",
    "agent_ask.requested": "asked",
    "agent_ask.resolved": "answered",
    "mcp.tool_called": "called the MCP tool",
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


@register.filter
def counted(n: Any, noun: str) -> str:
    """`{{ n|counted:"record" }}` → "1 record", "1,234 records" ("y" → "ies": deliveries)."""
    try:
        amount = int(n)
    except (TypeError, ValueError):
        return f"— {noun}s"
    if amount == 1:
        return f"1 {noun}"
    plural = noun[:-1] + "ies" if noun.endswith("y") and noun[-2:-1] not in "aeiou" else noun + "s"
    return f"{amount:,} {plural}"


# How an audit row's changed fields read in a history (the keys are the snapshot's).
FIELD_WORDS = {
    "status": "column",
    "blocked_reason": "reason",
    "due_date": "due",
    "amount_usd": "amount",
    "grace_s": "grace (s)",
    "every_s": "every (s)",
    "run_id": "run",
}
# Stored values that read better as words (column names, booleans).
VALUE_WORDS = {
    "inbox": "Inbox",
    "backlog": "Backlog",
    "todo": "To do",
    "in_progress": "In progress",
    "review": "Review",
    "done": "Done",
    True: "yes",
    False: "no",
}


def _value_text(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, bool | str) and value in VALUE_WORDS:
        return VALUE_WORDS[value]
    return str(value)


@register.filter
def change_rows(changes: Any) -> list[dict[str, str | None]]:
    """An audit row's before/after as lines a person reads: {field, old, new} in words (not
    `labels ['ci', 'eval']` or `status in_progress → review`); `old` is None when there was
    no before."""
    if not isinstance(changes, dict):
        return []
    raw_before, raw_after = changes.get("before"), changes.get("after")
    before: dict[str, Any] = raw_before if isinstance(raw_before, dict) else {}
    after: dict[str, Any] = raw_after if isinstance(raw_after, dict) else {}
    rows: list[dict[str, str | None]] = []
    for key, value in after.items():
        rows.append(
            {
                "field": FIELD_WORDS.get(key, str(key).replace("_", " ")),
                "old": _value_text(before[key]) if key in before else None,
                "new": _value_text(value),
            }
        )
    return rows


# Verbs whose feed line ends with where the thing went (#31.14: "status sweep status changed
# agent codex-2" said nothing of the new status).
GOES_TO = ("agent.status_changed", "task.moved")


def went_to_text(verb: str, changes: Any) -> str:
    """The status or column an audit row's change went to ('stale', 'Review'), or ''."""
    if verb not in GOES_TO or not isinstance(changes, dict):
        return ""
    after = changes.get("after")
    status = after.get("status") if isinstance(after, dict) else None
    return _value_text(status) if isinstance(status, str) and status else ""


@register.filter
def went_to(event: Any) -> str:
    """For a feed item: where its change went (went_to_text)."""
    return went_to_text(getattr(event, "verb", ""), getattr(event, "changes", None))


@functools.cache
def _markdown() -> Any:
    """The renderer, made when the first Markdown is shown (its ~60 modules are 6 MB a
    server need not hold while nobody reads a task)."""
    from markdown_it import MarkdownIt
    from mdit_py_plugins.tasklists import tasklists_plugin

    return (
        MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True})
        .enable("table")
        .enable("strikethrough")
        # "- [ ] to do" / "- [x] done" as (read-only) checkboxes.
        .use(tasklists_plugin)
    )


_ALLOWED_TAGS = {
    "input",
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


# Rendered markdown is a function of its text alone: the same description or reply is shown
# on every visit of its page (a task page with a long reply spent a quarter of its time here).
MARKDOWN_CACHED_CHARS = 20_000


@register.filter(is_safe=True)
def markdown(text: str) -> str:
    """Markdown rendered and then sanitised (no raw HTML, no scripts, safe links only)."""
    text = text or ""
    html = _clean_markdown(text) if len(text) <= MARKDOWN_CACHED_CHARS else _render(text)
    return mark_safe(html)  # noqa: S308 - nh3 has sanitised it


@functools.lru_cache(maxsize=256)
def _clean_markdown(text: str) -> str:
    return _render(text)


def _render(text: str) -> str:
    html = _markdown().render(text)
    return str(
        nh3.clean(
            html,
            tags=_ALLOWED_TAGS,
            attributes={
                "a": {"href", "title"},
                "code": {"class"},
                "ul": {"class"},
                "li": {"class"},
                # Only the task-list plugin makes inputs (raw HTML is off): read-only checkboxes.
                "input": {"class", "type", "checked", "disabled"},
            },
            url_schemes={"http", "https", "mailto"},
            link_rel="noopener noreferrer nofollow",
        )
    )


@register.filter
def codeticks(value: Any) -> str:
    """Plain text with `backticked` spans as <code> (remedies name commands): everything else
    escaped."""
    from django.utils.html import escape

    parts = escape(str(value or "")).split("`")
    html = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    return mark_safe(html)  # noqa: S308 - every part was escaped above


@register.filter
def money(value: Any) -> str:
    """US dollars as an operator reads them: cents from a dollar on, more digits below one
    (an agent's day can cost $0.0042), none past ten thousand."""
    if value is None or value == "":
        return "—"
    amount = Decimal(str(value))
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if amount == 0:
        return "$0.00"
    if amount >= 10_000:
        return f"{sign}${amount:,.0f}"
    if amount >= 1:
        return f"{sign}${amount:,.2f}"
    if amount >= Decimal("0.01"):
        return f"{sign}${amount:.3f}"
    return f"{sign}${amount:.4f}" if amount >= Decimal("0.0001") else f"{sign}<$0.0001"


@register.filter
def pct(value: Any) -> str:
    """A share 0–1 as a whole percentage ("<1%" for a sliver)."""
    share = float(value or 0)
    if share <= 0:
        return "0%"
    return "<1%" if share < 0.01 else f"{share * 100:.0f}%"


@register.filter
def iso(value: Any) -> Any:
    """An ISO 8601 text (as events carry times) as a datetime; None for none or garbage."""
    from django.utils.dateparse import parse_datetime

    if not value:
        return None
    try:
        return parse_datetime(str(value))
    except ValueError:
        return None


@register.filter
def took(start: Any, end: Any = None) -> str:
    """How long from `start` to `end` (or now), both ISO texts or datetimes: '3 minutes'."""
    begun, ended = iso(start) if isinstance(start, str) else start, end
    if isinstance(end, str):
        ended = iso(end)
    if begun is None:
        return ""
    return duration_text(max(timedelta(0), (ended or timezone.now()) - begun))
